"""``python -m neurocodec.train DATA_DIR RUN_DIR [options]``: the same command as ``neurocodec
train`` (which is what torchrun starts in each process), without the rest of the CLI."""

from __future__ import annotations

import argparse
import sys

from .command import CommandFailed, add_arguments, flag_of, run_command
from .config import TrainConfigError

PROG = "python -m neurocodec.train"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=PROG, description="Train a model with the rate-distortion loss "
                                     "(the same options as 'neurocodec train'; docs/cli.md).")
    add_arguments(parser)
    parser.add_argument("--debug", action="store_true", help="show the traceback of an error")
    args = parser.parse_args(argv)
    try:
        return run_command(args, say=lambda line: print(line, flush=True))
    except TrainConfigError as error:
        if args.debug:
            raise
        print(f"{PROG}: error: {error.render(flag_of)}", file=sys.stderr)
        return 2
    except CommandFailed as error:
        if args.debug:
            raise
        print(f"{PROG}: error: {error}", file=sys.stderr)
        return error.code


if __name__ == "__main__":
    raise SystemExit(main())
