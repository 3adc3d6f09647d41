"""``cnnviz gui``: open the desktop app (also what plain ``cnnviz`` does)."""

from __future__ import annotations

import argparse
from typing import Any


def register(subparsers: Any) -> argparse.ArgumentParser:
    from cnnviz.gui.app import add_arguments

    parser = subparsers.add_parser(
        "gui",
        help="open the window (the default when no command is given)",
        description="Open the cnnviz window with a model and a picture already run: feature maps of every layer, "
        "click a unit to see its receptive field, the per-layer table and the predictions.",
    )
    add_arguments(parser)
    parser.set_defaults(func=run)
    return parser


def run(args: argparse.Namespace) -> int:
    from cnnviz.gui.app import run as run_app

    return run_app(
        args.model, args.weights, args.image or args.image_file, args.trust, args.quit_after
    )
