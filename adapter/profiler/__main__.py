"""`python -m adapter.profiler profile ...`: the profile command without the rest of the adapter."""

from __future__ import annotations

import argparse
import logging
import sys

from adapter.profiler.cli import register


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m adapter.profiler")
    subparsers = parser.add_subparsers(dest="command", required=True)
    register(subparsers)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    status: int = args.func(args)
    return status


if __name__ == "__main__":
    sys.exit(main())
