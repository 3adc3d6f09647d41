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
from collections.abc import Sequence

from cnnviz._version import __version__
from cnnviz.core.errors import CnnvizError

COMMAND_MODULES = (
    "gui",
    "summary",
    "rf",
    "predict",
    "export",
    "train",
    "convolve",
    "bench",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cnnviz",
        description="See inside convolutional networks: feature maps, receptive fields, layer tables.",
    )
    parser.add_argument("--version", action="version", version=f"cnnviz {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(f"cnnviz.commands.{name}")
        except ModuleNotFoundError as exc:
            if exc.name == f"cnnviz.commands.{name}":
                continue  # command not shipped in this build
            raise
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the process exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        if "gui" in parser._subparsers._group_actions[0].choices:  # type: ignore[union-attr]
            args = parser.parse_args(["gui", *(argv or [])])
        else:
            parser.print_help()
            return 0
    try:
        return int(args.func(args) or 0)
    except CnnvizError as exc:
        print(f"cnnviz: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("cnnviz: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # Output piped into a closed reader (e.g. `| head`): not an error of ours.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    raise SystemExit(main())
