"""Man pages, generated from the argument parsers themselves, so they never disagree with
`--help`: `python -m desfs.commands.manuals DIR` writes `man1/desfs.1` and
`man8/mount.desfs.8` (argparse-manpage, the `install` extra). Shell completion comes from
the same parsers: `desfs completion bash|zsh` (shtab)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from desfs import __version__
from desfs.commands.helper import helper_parser
from desfs.commands.main import build_parser


def write_manuals(parser: argparse.ArgumentParser, directory: Path) -> list[Path]:
    from argparse_manpage.manpage import Manpage

    pages = [
        (parser, directory / "man1" / "desfs.1", "1"),
        (helper_parser(), directory / "man8" / "mount.desfs.8", "8"),
    ]
    written = []
    for source, path, section in pages:
        data = {"version": __version__, "project_name": "desfs", "manual_section": section,
                "manual_title": "desfs manual", "url": "README.md"}  # fmt: skip
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(str(Manpage(source, _data=data)))
        written.append(path)
    return written


def main() -> int:
    if len(sys.argv) != 2:
        print("usage: python -m desfs.commands.manuals DIRECTORY", file=sys.stderr)
        return 2
    for path in write_manuals(build_parser(), Path(sys.argv[1])):
        print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
