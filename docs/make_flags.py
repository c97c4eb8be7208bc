"""Writes docs/flags.md, the flag reference of every experiment binary, from the absl flag definitions.

    python docs/make_flags.py            # (re)write docs/flags.md
    python docs/make_flags.py --check    # exit 1 when docs/flags.md differs from what would be written

A binary is a module experiments/<name>.py with an `if __name__ == "__main__":` block (found by parsing, not
listed here). Each is imported in a process of its own, since two binaries may define the same flag name; the
processes are forked from one that has already imported the heavy dependencies and the library, so the whole
reference takes a few seconds. Only flags defined by experiments/ modules are listed, not absl's own.
"""

from __future__ import annotations

import ast
import importlib
import json
import os
import pkgutil
import subprocess
import sys
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "docs" / "flags.md"
SHARED = "experiments.common"


def binaries() -> list[str]:
    """Module names of the binaries under experiments/, sorted."""
    names = []
    for path in sorted((ROOT / "experiments").glob("*.py")):
        tree = ast.parse(path.read_text(), str(path))
        for node in tree.body:
            if (
                isinstance(node, ast.If)
                and isinstance(node.test, ast.Compare)
                and isinstance(node.test.left, ast.Name)
                and node.test.left.id == "__name__"
                and any(isinstance(c, ast.Constant) and c.value == "__main__" for c in node.test.comparators)
            ):
                names.append(f"experiments.{path.stem}")
                break
    return names


def _default(flag) -> str:
    v = flag.default
    if v is None:
        return "none"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (list, tuple)):
        return ",".join(str(e) for e in v) if v else "(empty)"
    return str(v)


def _type(flag) -> str:
    values = getattr(flag.parser, "enum_values", None)
    if values:
        return "enum: " + ", ".join(str(e) for e in values)
    return flag.flag_type()


def describe(module: str) -> list[dict]:
    """The flags `module` brings (imported in this process), one dict per flag defined under experiments/."""
    from absl import flags

    importlib.import_module(module)
    out = []
    for defining, fl in flags.FLAGS.flags_by_module_dict().items():
        if not defining.startswith("experiments."):
            continue
        for f in fl:
            help_text = " ".join((f.help or "").split())
            values = getattr(f.parser, "enum_values", None)
            if values:  # absl writes the values in front of an enum's help; the type column has them
                help_text = help_text.removeprefix(f"<{'|'.join(values)}>: ")
            out.append(
                {"name": f.name, "type": _type(f), "default": _default(f), "help": help_text, "module": defining}
            )
    return out


def _preload() -> None:
    """Imports what every binary needs but that defines no flags of ours, so forked children start warm."""
    import research

    for m in pkgutil.walk_packages(research.__path__, "research."):
        importlib.import_module(m.name)


def collect(modules: list[str]) -> dict[str, list[dict]]:
    """{binary: its flags}, each binary imported in a fresh child process."""
    sys.path.insert(0, str(ROOT))
    if not hasattr(os, "fork"):
        return {m: _collect_subprocess(m) for m in modules}
    _preload()
    children = {}
    for m in modules:
        r, w = os.pipe()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # fork with threads: the child only imports
            pid = os.fork()
        if pid == 0:  # child
            os.close(r)
            code = 0
            try:
                payload = json.dumps(describe(m))
            except BaseException as e:  # noqa: BLE001 - reported by the parent
                payload, code = json.dumps({"error": f"{type(e).__name__}: {e}"}), 1
            with os.fdopen(w, "w") as f:
                f.write(payload)
            os._exit(code)
        os.close(w)
        children[m] = (pid, r)
    out, errors = {}, []
    for m, (pid, r) in children.items():
        with os.fdopen(r) as f:
            text = f.read()
        _, status = os.waitpid(pid, 0)
        got = json.loads(text) if text else {"error": f"exit status {status}"}
        if isinstance(got, dict):
            errors.append(f"{m}: {got['error']}")
        else:
            out[m] = got
    if errors:
        raise SystemExit("could not import:\n  " + "\n  ".join(errors))
    return out


def _collect_subprocess(module: str) -> list[dict]:
    code = f"import json, sys; sys.path.insert(0, {str(ROOT)!r}); sys.path.insert(0, {str(ROOT / 'docs')!r}); "
    code += f"import make_flags; print(json.dumps(make_flags.describe({module!r})))"
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=False)
    if res.returncode:
        raise SystemExit(f"could not import {module}:\n{res.stderr}")
    return json.loads(res.stdout.splitlines()[-1])


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("<", "&lt;").replace(">", "&gt;")


def _table(rows: list[dict], with_module: bool) -> list[str]:
    head = "| flag | type | default | " + ("from | " if with_module else "") + "meaning |"
    lines = [head, "|" + "---|" * head.count(" | ") + "---|"]
    for f in rows:
        mod = f"{f['module'].removeprefix('experiments.')} | " if with_module else ""
        lines.append(f"| `--{f['name']}` | {_cell(f['type'])} | `{_cell(f['default'])}` | {mod}{_cell(f['help'])} |")
    return lines


def _anchor(heading: str) -> str:
    return "".join(c for c in heading.lower() if c.isalnum() or c in " -_").replace(" ", "-")


INTRO = (
    "Generated by `python docs/make_flags.py` from the absl definitions of the binaries in `experiments/`; "
    "`python docs/make_flags.py --check` (run by `tests/test_docs.py`) fails when this page is stale. "
    "What the binaries do, their outputs and flagfiles: [experiments.md](experiments.md). "
    "Every binary also takes absl's own flags (`--flagfile`, `--helpfull`, `--verbosity`, ...), not listed here."
)


def render(found: dict[str, list[dict]]) -> str:
    shared = []
    for fl in found.values():
        shared = shared or [f for f in fl if f["module"] == SHARED]
    shared_heading = f"Shared flags ({SHARED})"
    links = ", ".join(f"[{m.removeprefix('experiments.')}](#{_anchor(m)})" for m in found)
    lines = ["# Flag reference", "", INTRO, "", f"Binaries: {links}.", ""]
    if shared:
        where = f"Defined in `{SHARED.replace('.', '/')}.py`; taken by every binary that says so below."
        lines += [f"## {shared_heading}", "", where, "", *_table(shared, False), ""]
    for m, fl in found.items():
        own = [f for f in fl if f["module"] != SHARED]
        own.sort(key=lambda f: (f["module"] != m, f["module"], f["name"]))
        intro = f"`python -m {m}`"
        if any(f["module"] == SHARED for f in fl):
            intro += f": the [shared flags](#{_anchor(shared_heading)}), and"
        lines += [f"## {m}", "", intro + (":" if own else " (no flags of its own)."), ""]
        if own:
            lines += [*_table(own, any(f["module"] != m for f in own)), ""]
    return "\n".join(lines).rstrip("\n") + "\n"


def main(argv: list[str]) -> int:
    check = "--check" in argv[1:]
    text = render(collect(binaries()))
    if check:
        if not OUT.exists() or OUT.read_text() != text:
            print(f"{OUT.relative_to(ROOT)} is stale: run `python docs/make_flags.py`.", file=sys.stderr)
            return 1
        return 0
    OUT.write_text(text)
    print(f"wrote {OUT.relative_to(ROOT)} ({len(text.splitlines())} lines)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
