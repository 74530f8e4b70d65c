"""The ``chatanyone`` command line. Each verb lives in its own module with two functions:
``add_parser(subparsers)`` registers it, and the parser's ``func`` default runs it (returns an exit code).
"""
from __future__ import annotations

import argparse
import importlib
import logging
import sys

# verb modules, in the order `chatanyone --help` lists them
_VERBS = ["demo", "render", "bench", "prepare_data", "inspect", "eval"]


class CliError(Exception):
    """A user error: printed as one line, exit code 2, no traceback."""


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="chatanyone", description=__doc__.splitlines()[0])
    p.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    sub = p.add_subparsers(dest="verb", metavar="VERB")
    for name in _VERBS:
        try:
            mod = importlib.import_module(f"chatanyone.cli.{name}")
        except ModuleNotFoundError as exc:
            if exc.name == f"chatanyone.cli.{name}":
                continue  # verb not built yet
            raise
        mod.add_parser(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(levelname)s %(name)s: %(message)s")
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except CliError as exc:
        print(f"chatanyone {args.verb}: error: {exc}", file=sys.stderr)
        return 2
    except (ValueError, TypeError, FileNotFoundError, ImportError) as exc:
        print(f"chatanyone {args.verb}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
