"""The docs stay true to the tree: README length, links, commands, the flag reference, quoted results tables,
and the docs pages that code points at.

Quoted results tables. A marker line names the results/ file(s) a block quotes; the block ends at
`<!-- end -->`. Three kinds:

    <!-- results/dec_mnist.md -->                                  the block is the file's text, verbatim
    <!-- results/a.md results/b.md columns: method | ACC -->       a table with exactly these columns; each of
                                                                   its rows is a row of one of the files,
                                                                   cut down to these columns (by header name)
    <!-- results/a.md results/b.md numbers -->                     every number outside a row's first cell
                                                                   occurs in one of the files, or is a ratio
                                                                   "<r>x" of two numbers of its row, rounded

Regenerate the file (its command is in results/README.md) and update the quote; never edit either by hand.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
PAGES = [README, ROOT / "results" / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
MAX_README_LINES = 250

MARKER = re.compile(r"^<!-- (results/\S+\.md(?: results/\S+\.md)*)(?: (columns: .+|numbers))? -->$")
END = "<!-- end -->"
NUMBER = re.compile(r"(?<![\w.])\d+(?:\.\d+)?(?:e[+-]?\d+)?x?(?![\w.]*\d)")
ABSL_FLAGS = {"flagfile", "helpfull", "help", "helpshort", "verbosity", "v", "logtostderr", "alsologtostderr"}


def _rel(path: Path) -> str:
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


# ----------------------------------------------------------------------------------------------- quoted tables


def quotes(path: Path):
    """(line number, [results files], kind, columns, block lines) for every marker in `path`."""
    lines = path.read_text(encoding="utf-8").splitlines()
    for i, line in enumerate(lines):
        m = MARKER.match(line.strip())
        if not m:
            continue
        try:
            end = lines.index(END, i + 1)
        except ValueError:
            pytest.fail(f"{_rel(path)}:{i + 1}: marker {line.strip()} has no {END} after it")
        kind = (m.group(2) or "verbatim").split(":")[0]
        columns = [c.strip() for c in m.group(2).split(":", 1)[1].split("|")] if kind == "columns" else None
        yield i + 1, [ROOT / f for f in m.group(1).split()], kind, columns, lines[i + 1 : end]


def _strip_blank(lines):
    lines = list(lines)
    while lines and not lines[0].strip():
        lines.pop(0)
    while lines and not lines[-1].strip():
        lines.pop()
    return lines


def _cells(line: str) -> list[str]:
    return [c.strip() for c in line.strip().strip("|").split("|")]


def _table(lines) -> tuple[list[str], list[list[str]]]:
    """(header, rows) of the first markdown table in `lines`."""
    rows = [_cells(x) for x in lines if x.strip().startswith("|")]
    rows = [r for r in rows if not all(set(c) <= set("-: ") for c in r)]
    return (rows[0], rows[1:]) if rows else ([], [])


def _ratio_ok(token: str, row_numbers: list[float]) -> bool:
    digits = len(token[:-1].partition(".")[2])
    want = float(token[:-1])
    return any(
        b and round(a / b, digits) == want
        for i, a in enumerate(row_numbers)
        for j, b in enumerate(row_numbers)
        if i != j
    )


def check_quote(where: str, files: list[Path], kind: str, columns, block: list[str]) -> list[str]:
    """What is wrong with one quoted block, as messages (none: it matches its files)."""
    missing = [f for f in files if not f.exists()]
    if missing:
        return [f"{where}: quotes {', '.join(_rel(f) for f in missing)}, which does not exist"]
    texts = [f.read_text(encoding="utf-8") for f in files]
    if kind == "verbatim":
        if len(files) != 1:
            return [f"{where}: a verbatim quote names one file"]
        if _strip_blank(block) != _strip_blank(texts[0].splitlines()):
            return [f"{where}: differs from {_rel(files[0])}: copy the file again"]
        return []
    if kind == "columns":
        header, rows = _table(block)
        if header != columns:
            return [f"{where}: the table's header {header} is not the marker's columns {columns}"]
        allowed = set()
        for f, text in zip(files, texts):
            f_header, f_rows = _table(text.splitlines())
            absent = [c for c in columns if c not in f_header]
            if absent:
                return [f"{where}: {_rel(f)} has no column {absent}"]
            allowed |= {tuple(r[f_header.index(c)] for c in columns) for r in f_rows}
        return [f"{where}: row {r} is in none of {[_rel(f) for f in files]}" for r in rows if tuple(r) not in allowed]
    known = set(NUMBER.findall("\n".join(texts)))
    errors = []
    for line in block:
        cells = _cells(line)[1:] if line.strip().startswith("|") else [line]
        tokens = NUMBER.findall(" ".join(cells))
        plain = [float(t) for t in tokens if not t.endswith("x")]
        for t in tokens:
            if t not in known and not (t.endswith("x") and _ratio_ok(t, plain)):
                errors.append(f"{where}: {t} (in {line.strip()[:80]!r}) occurs in none of {[_rel(f) for f in files]}")
    return errors


def test_quoted_results_tables_match_their_files():
    errors, n = [], 0
    for page in PAGES:
        for line_no, files, kind, columns, block in quotes(page):
            n += 1
            errors += check_quote(f"{_rel(page)}:{line_no}", files, kind, columns, block)
    assert n >= 10, "the README and docs quote the results tables; were the markers lost?"
    assert not errors, "\n".join(errors)


def test_quote_checker_catches_drift(tmp_path):
    f = tmp_path / "t.md"
    f.write_text("Caption.\n\n| method | ACC | time |\n|---|---|---|\n| ours | 0.90 | 2.0 |\n| peer | 0.80 | 6.0 |\n")
    ok = f.read_text(encoding="utf-8").splitlines()
    assert check_quote("x", [f], "verbatim", None, ok) == []
    assert check_quote("x", [f], "verbatim", None, [x.replace("0.90", "0.91") for x in ok])
    assert (
        check_quote("x", [f], "columns", ["method", "ACC"], ["| method | ACC |", "|---|---|", "| ours | 0.90 |"]) == []
    )
    assert check_quote("x", [f], "columns", ["method", "ACC"], ["| method | ACC |", "|---|---|", "| ours | 0.80 |"])
    assert check_quote("x", [f], "numbers", None, ["| k-means, K=10 | 2.0 s | peer 6.0 s | 3.0x |"]) == []
    assert check_quote("x", [f], "numbers", None, ["| k-means | 2.5 s | peer 6.0 s | 2.4x |"])


# ---------------------------------------------------------------------------------------------------- README


def test_readme_is_a_short_guide():
    n = len(README.read_text(encoding="utf-8").splitlines())
    assert n <= MAX_README_LINES, f"README.md has {n} lines; at most {MAX_README_LINES}: move detail to docs/"


# ----------------------------------------------------------------------------------------------------- links

FENCE = re.compile(r"^```.*?^```", re.DOTALL | re.MULTILINE)
CODE_SPAN = re.compile(r"`[^`\n]*`")
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")


def _prose(text: str) -> str:
    return CODE_SPAN.sub("", FENCE.sub("", text))


def anchors(path: Path) -> set[str]:
    """GitHub's heading anchors of a markdown file (lower case, punctuation dropped, spaces to hyphens)."""
    seen: dict[str, int] = {}
    out = set()
    for line in FENCE.sub("", path.read_text(encoding="utf-8")).splitlines():
        m = re.match(r"^#{1,6}\s+(.*?)\s*#*\s*$", line)
        if not m:
            continue
        slug = "".join(c for c in m.group(1).lower() if c.isalnum() or c in " -_").replace(" ", "-")
        out.add(slug if slug not in seen else f"{slug}-{seen[slug]}")
        seen[slug] = seen.get(slug, 0) + 1
    return out


def test_relative_links_point_at_existing_files_and_headings():
    errors = []
    for page in PAGES:
        for target in LINK.findall(_prose(page.read_text(encoding="utf-8"))):
            if re.match(r"^[a-z]+:", target):
                continue  # http:, https:, mailto:
            file_part, _, anchor = target.partition("#")
            dest = (page.parent / file_part).resolve() if file_part else page
            if not dest.exists():
                errors.append(f"{_rel(page)}: link to {target}: no such file")
            elif anchor and dest.suffix == ".md" and anchor not in anchors(dest):
                errors.append(f"{_rel(page)}: link to {target}: no heading with that anchor in {_rel(dest)}")
    assert not errors, "\n".join(errors)


def test_docs_pages_named_in_code_exist():
    """Docstrings and comments point readers at docs/ pages (`docs/design/kmeans.md#spherical-k-means`)."""
    errors = []
    for path in sorted([*ROOT.glob("research/**/*.py"), *ROOT.glob("experiments/**/*.py"), *ROOT.glob("bench/*.py")]):
        for target in re.findall(r"\bdocs/[\w/.-]+\.md(?:#[\w-]+)?", path.read_text(encoding="utf-8")):
            file_part, _, anchor = target.partition("#")
            dest = ROOT / file_part
            if not dest.exists():
                errors.append(f"{_rel(path)}: names {target}: no such file")
            elif anchor and anchor not in anchors(dest):
                errors.append(f"{_rel(path)}: names {target}: no heading with that anchor")
    assert not errors, "\n".join(errors)


# ----------------------------------------------------------------------------------------- flags and commands


def test_flag_reference_is_current():
    res = subprocess.run(
        [sys.executable, "docs/make_flags.py", "--check"],
        check=False,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert res.returncode == 0, res.stdout + res.stderr


def documented_flags() -> dict[str, set[str]]:
    """{binary name: its flags}, read from docs/flags.md (kept current by the test above)."""
    out: dict[str, set[str]] = {}
    section = None
    for line in (ROOT / "docs" / "flags.md").read_text(encoding="utf-8").splitlines():
        if line.startswith("## "):
            m = re.match(r"## experiments\.(\w+)$", line)
            section = m.group(1) if m else "_shared" if "Shared flags" in line else None
            out.setdefault(section, set())
        elif section and (m := re.match(r"\| `--(\w+)`", line)):
            out[section].add(m.group(1))
        elif section and section != "_shared" and "[shared flags]" in line:
            out[section].add("_shared")
    shared = out.pop("_shared", set())
    return {b: (f - {"_shared"}) | (shared if "_shared" in f else set()) for b, f in out.items() if b}


def commands(text: str):
    """`python -m experiments.<binary> ...` commands in a page, continuation lines joined: (binary, arguments)."""
    text = text.replace("\\\n", " ")
    for m in re.finditer(r"python -m experiments\.(\w+)([^`\n#;&|]*)", text):
        yield m.group(1), m.group(2)


def test_commands_in_the_docs_name_existing_binaries_flags_and_flagfiles():
    known = documented_flags()
    errors = []
    for page in PAGES:
        for binary, args in commands(page.read_text(encoding="utf-8")):
            if binary not in known:
                errors.append(f"{_rel(page)}: experiments.{binary} is not a binary")
                continue
            names = re.findall(r"(?<![\w-])--(\w+)", args)
            for flagfile in re.findall(r"--flagfile=(\S+)", args):
                path = ROOT / flagfile
                if not path.exists():
                    errors.append(f"{_rel(page)}: {flagfile} does not exist")
                    continue
                names += re.findall(r"^--(\w+)", path.read_text(encoding="utf-8"), re.MULTILINE)
            for name in names:
                bare = name[2:] if name.startswith("no") and name[2:] in known[binary] else name
                if bare not in known[binary] | ABSL_FLAGS:
                    errors.append(f"{_rel(page)}: experiments.{binary} has no flag --{name} (docs/flags.md)")
    assert not errors, "\n".join(sorted(set(errors)))
