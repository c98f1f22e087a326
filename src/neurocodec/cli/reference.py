"""Keep docs/cli.md in step with the parser: every command's ``--help``, generated.

docs/cli.md is prose around generated blocks; each block sits between the marker
``<!-- generated: neurocodec COMMAND --help -->`` and ``<!-- end generated -->`` and holds
that command's help exactly as ``build_parser`` prints it (100 columns). Run

    python -m neurocodec.cli.reference docs/cli.md           # rewrite the blocks in place
    python -m neurocodec.cli.reference docs/cli.md --check   # exit 1 if they are stale

tests/test_cli_reference.py fails when the file is out of date.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from pathlib import Path

from . import PROG, build_parser

WIDTH = 100
_BLOCK = re.compile(r"<!-- generated: neurocodec (?P<command>[a-z-]*) ?--help -->\n.*?<!-- end generated -->",
                    re.DOTALL)


def help_text(command: str = "") -> str:
    """``neurocodec [COMMAND] --help`` as printed at WIDTH columns."""
    saved = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = str(WIDTH + 2)  # argparse wraps at COLUMNS - 2
    try:
        parser = build_parser()
        if command:
            commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices
            parser = commands[command]
        return parser.format_help().rstrip() + "\n"
    finally:
        if saved is None:
            del os.environ["COLUMNS"]
        else:
            os.environ["COLUMNS"] = saved


def render(text: str) -> str:
    """``text`` with every generated block rewritten from the parser."""
    def block(match: re.Match) -> str:
        command = match.group("command")
        name = f"{PROG} {command} --help" if command else f"{PROG} --help"
        return (f"<!-- generated: {name} -->\n```text\n$ {name}\n{help_text(command)}```\n"
                "<!-- end generated -->")

    return _BLOCK.sub(block, text)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m neurocodec.cli.reference", description=__doc__.split("\n")[0])
    parser.add_argument("path", nargs="?", default="docs/cli.md", help="the page to update (default: docs/cli.md)")
    parser.add_argument("--check", action="store_true", help="only check: exit 1 if the page is out of date")
    args = parser.parse_args(argv)
    path = Path(args.path)
    text = path.read_text()
    new = render(text)
    if args.check:
        if new != text:
            print(f"{path} is out of date: run python -m neurocodec.cli.reference {path}", file=sys.stderr)
            return 1
        return 0
    if new != text:
        path.write_text(new)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
