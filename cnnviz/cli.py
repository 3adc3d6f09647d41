"""The ``cnnviz`` command line: parse, call the core, format.

Each sub-command lives in ``cnnviz.commands.<name>`` and provides
``register(subparsers) -> argparse.ArgumentParser`` whose parser sets ``func``
(a callable taking the parsed namespace and returning an exit code).
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import warnings
from collections.abc import Sequence
from typing import Any, NoReturn

from cnnviz._version import __version__
from cnnviz.core.errors import CnnvizError, is_out_of_memory, one_line

COMMAND_MODULES = (
    "gui",
    "summary",
    "rf",
    "predict",
    "export",
    "train",
    "convolve",
    "samples",
    "top_units",
    "erf",
)


VERBOSE_HELP = "on an error, also print its cause and the traceback (for reporting a problem)"


class _Parser(argparse.ArgumentParser):
    """An argument parser whose usage errors are one line, like every other user error.

    Sub-command parsers are made of the same class (argparse's default ``parser_class``).
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.commands: dict[str, argparse.ArgumentParser] = {}

    def error(self, message: str) -> NoReturn:
        where = "" if self.prog == "cnnviz" else f"{self.prog}: "
        self.exit(2, f"cnnviz: error: {where}{message} (see '{self.prog} --help')\n")

    def parse_args(  # type: ignore[override]
        self, args: Sequence[str] | None = None, namespace: argparse.Namespace | None = None
    ) -> argparse.Namespace:
        # Arguments a sub-command does not know are left over at the top: name that sub-command's help.
        parsed, extras = self.parse_known_args(args, namespace)
        if extras:
            owner = self.commands.get(getattr(parsed, "command", None) or "", self)
            owner.error(f"unrecognized arguments: {' '.join(extras)}")
        return parsed


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="cnnviz",
        description="See inside convolutional networks: feature maps, receptive fields, layer tables.",
    )
    parser.add_argument("--version", action="version", version=f"cnnviz {__version__}")
    parser.add_argument("--verbose", action="store_true", help=VERBOSE_HELP)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        module = importlib.import_module(f"cnnviz.commands.{name}")
        command = module.register(sub)
        parser.commands[command.prog.rsplit(" ", 1)[-1]] = command
        # Also accepted after the sub-command; SUPPRESS keeps the sub-parser from resetting a
        # `cnnviz --verbose COMMAND` back to False with its own default.
        command.add_argument(
            "--verbose", action="store_true", default=argparse.SUPPRESS, help=VERBOSE_HELP
        )
    return parser


def _print_details(exc: BaseException) -> None:
    """The traceback of ``exc`` and of every exception chained to it (``--verbose``)."""
    import traceback

    print("cnnviz: details follow (traceback, most recent call last):", file=sys.stderr)
    traceback.print_exception(exc, file=sys.stderr)


def _report(exc: BaseException, verbose: bool) -> int:
    """Print one line for ``exc`` (and with ``verbose`` the details); return the exit code."""
    if isinstance(exc, CnnvizError):
        print(f"cnnviz: error: {exc}", file=sys.stderr)
        code = 2
    elif is_out_of_memory(exc):
        print(
            "cnnviz: error: ran out of memory; use a smaller model, input or batch, or close other "
            "programs",
            file=sys.stderr,
        )
        code = 2
    else:
        # A bug, not a user error: show it, briefly, and say how to see all of it.
        hint = "" if verbose else " (run with --verbose for the details)"
        print(
            f"cnnviz: internal error: {type(exc).__name__}: {one_line(exc, 500, whole=True)}{hint}",
            file=sys.stderr,
        )
        code = 1
    if verbose:
        _print_details(exc)
    return code


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the process exit code.

    User errors print one line ``cnnviz: error: ...`` and return 2; running out of memory is one line and
    2 as well; any other exception is a bug: one line ``cnnviz: internal error: ...`` and 1. With
    ``--verbose`` the chained causes and the traceback follow the line.
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:  # plain `cnnviz` opens the app
        verbose = args.verbose
        args = parser.parse_args(["gui", *[a for a in (argv or []) if a != "--verbose"]])
        args.verbose = verbose
    verbose = bool(getattr(args, "verbose", False))
    try:
        with warnings.catch_warnings():
            if not verbose:
                # Libraries' notices (deprecations, pickle protocols) are not for the user of a command:
                # they would break its one-line errors. --verbose shows them.
                warnings.simplefilter("ignore")
            return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("cnnviz: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # Output piped into a closed reader (e.g. `| head`): not an error of ours.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0
    except Exception as exc:  # noqa: BLE001 - every failure ends in one line, never a raw traceback
        return _report(exc, verbose)


if __name__ == "__main__":
    raise SystemExit(main())
