"""The ``chatanyone`` command line. Each verb lives in its own module with two functions:
``add_parser(subparsers)`` registers it, and the parser's ``func`` default runs it (returns an exit code).

Layer 7, on top: may import everything. ``render``/``demo``/``bench`` stay on the run-time path
(offline modules are imported only by ``prepare-data``, ``inspect``, ``eval`` and for
``render --style VIDEO``). ``-v`` shows debug logs, tracebacks and native log lines (LiteRT).
"""
from __future__ import annotations

import argparse
import importlib
import logging
import sys

# verb modules, in the order `chatanyone --help` lists them
_VERBS = ["demo", "render", "reenact", "serve", "bench", "prepare_data", "inspect", "eval"]


class CliError(ValueError):
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


# A user's mistake: a bad argument, a missing or unreadable file, a photo without a face. Shown as
# one line (exit 2); -v adds the traceback.
_USER_ERRORS = (CliError, ValueError, TypeError, OSError, ImportError)


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns the exit code: 0 done, 1 an internal error, 2 a user error,
    130 interrupted (Ctrl-C). Errors are one line on stderr; ``-v`` shows the traceback too."""
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(levelname)s %(name)s: %(message)s")
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print(f"chatanyone {args.verb}: interrupted", file=sys.stderr)
        return 130
    except _USER_ERRORS as exc:
        _report(args, exc, internal=False)
        return 2
    except Exception as exc:  # a bug: still one line, and how to see more
        _report(args, exc, internal=True)
        return 1


def _report(args, exc: BaseException, *, internal: bool) -> None:
    if args.verbose:
        import traceback

        traceback.print_exception(type(exc), exc, exc.__traceback__, file=sys.stderr)
    msg = " ".join(str(exc).split()) or type(exc).__name__
    if isinstance(exc, OSError) and exc.filename and str(exc.filename) not in msg:
        msg = f"{msg}: {exc.filename}"
    if internal:
        msg = f"internal error ({type(exc).__name__}: {msg}); run with -v for the traceback"
    print(f"chatanyone {args.verb}: error: {msg}", file=sys.stderr)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
