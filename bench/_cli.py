"""What every benchmark's command line shares."""

from __future__ import annotations

import argparse


def int_list(text: str) -> list[int]:
    """ "1,10,100" -> [1, 10, 100]."""
    return [int(n) for n in text.split(",")]


def parser(doc: str | None) -> argparse.ArgumentParser:
    """A parser described by the module's first docstring line, with --dir for the databases."""
    p = argparse.ArgumentParser(description=doc.splitlines()[0] if doc else None)
    p.add_argument("--dir", help="where the databases go (default: the system temp dir)")
    return p
