"""Writes constraints.txt: the exact versions of jaxcluster's dependencies, as installed in this environment.

    python tools/make_constraints.py             # (re)write constraints.txt at the repository root
    python tools/make_constraints.py --stdout    # print it instead

It pins every distribution that setup.py's install_requires and the "test" and "tensorboard" extras pull in,
their own requirements followed transitively (markers evaluated for this interpreter and platform), at the
version installed here; a header names the date, the Python and the platform. Reproduce with
`pip install -e '.[test]' -c constraints.txt` (docs/reproducing.md). Reads setup.py by parsing, not running it.
"""

from __future__ import annotations

import argparse
import ast
import datetime
import platform
import sys
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "constraints.txt"
EXTRAS = ("test", "tensorboard")


def setup_requirements(setup_py: Path = ROOT / "setup.py") -> tuple[list[str], dict[str, list[str]]]:
    """(install_requires, extras_require) as written in setup.py's setup() call (literals only)."""
    tree = ast.parse(setup_py.read_text(), str(setup_py))
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", "")) == "setup":
            kw = {k.arg: k.value for k in node.keywords}
            return ast.literal_eval(kw["install_requires"]), ast.literal_eval(kw.get("extras_require", "{}"))
    raise ValueError(f"no setup() call in {setup_py}")


def roots(extras=EXTRAS) -> list[Requirement]:
    """The requirements to pin from: install_requires and the named extras of setup.py."""
    install, extra = setup_requirements()
    return [Requirement(r) for r in [*install, *(r for name in extras for r in extra[name])]]


def pins(requirements: list[Requirement]) -> dict[str, str]:
    """{canonical name: installed version} of the requirements and all they require, markers applied."""
    found, todo = {}, [(r, "") for r in requirements]
    while todo:
        req, extra = todo.pop()
        if req.marker is not None and not req.marker.evaluate({"extra": extra}):
            continue
        name = canonicalize_name(req.name)
        try:
            dist = metadata.distribution(req.name)
        except metadata.PackageNotFoundError:
            raise SystemExit(f"{req.name} (required as {req}) is not installed here; install it first.") from None
        asked = {(name, e) for e in ("", *req.extras)}
        if asked <= found.keys():
            continue
        found |= {key: dist.version for key in asked}
        for text in dist.requires or []:
            todo += [(Requirement(text), e) for e in ("", *req.extras)]
    return {name: version for (name, _), version in sorted(found.items())}


def render(versions: dict[str, str], today: datetime.date | None = None) -> str:
    """The text of constraints.txt: a header, then one `name==version` per line."""
    today = today or datetime.date.today()
    header = [
        f"# jaxcluster's dependencies (install_requires and the extras {', '.join(EXTRAS)}), transitively, at the",
        "# versions that made the committed results. Use: pip install -e '.[test]' -c constraints.txt",
        f"# Written by tools/make_constraints.py on {today.isoformat()} with Python {platform.python_version()}",
        f"# on {platform.platform()} ({sys.platform}); see docs/reproducing.md.",
    ]
    return "\n".join(header + [f"{n}=={v}" for n, v in sorted(versions.items())]) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--stdout", action="store_true", help="print instead of writing constraints.txt")
    text = render(pins(roots()))
    if ap.parse_args().stdout:
        print(text, end="")
    else:
        OUT.write_text(text)
        print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
