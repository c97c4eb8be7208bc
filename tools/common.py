"""What the table tools share: their usual flags.

    args = common.parser(__doc__, root="checkpoints/x", out="results/x").parse_args(argv)

gives --root (the runs' folder), --data_dir (MNIST's folder), --out (the table's path prefix) and --commands
(print the runs' commands and stop); a tool adds its own flags to the parser it gets.
"""

from __future__ import annotations

import argparse


def parser(doc: str, *, root: str, out: str | None, commands: bool = True) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--root", default=root, help="folder of the runs")
    p.add_argument("--data_dir", default=None, help="MNIST's folder (default: $JAXCLUSTER_DATA, or download)")
    p.add_argument("--out", default=out, help="path prefix of the table's .md and .csv")
    if commands:
        p.add_argument("--commands", action="store_true", help="print the runs' commands and stop")
    return p
