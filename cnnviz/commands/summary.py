"""cnnviz summary: the per-layer table."""

from __future__ import annotations

import argparse
import sys

from cnnviz.commands._common import add_model_arguments, load_from_args, print_json


def register(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = sub.add_parser(
        "summary",
        help="print the per-layer table (shapes, parameters, MACs, receptive fields)",
        description="Print one row per layer in execution order: output shape, parameters, MACs, kernel, "
        "stride, padding and the receptive field (size, stride, padding per axis).",
    )
    add_model_arguments(parser, weights_default="none")
    parser.add_argument("--format", choices=("table", "csv", "markdown", "json"), default="table")
    parser.set_defaults(func=run)
    return parser


def run(args: argparse.Namespace) -> int:
    from cnnviz.core.analysis.summary import summarize
    from cnnviz.core.present import tables

    model = load_from_args(args)
    # The model's own name ("digits" for the bundled one, as the app and exports call it), not the argument.
    summary = summarize(model, args.input_size or model.input_shape, name=model.name)
    if args.format == "json":
        print_json(summary.to_json())
    elif args.format == "csv":
        sys.stdout.write(tables.to_csv(summary))
    elif args.format == "markdown":
        sys.stdout.write(tables.to_markdown(summary))
    else:
        sys.stdout.write(tables.to_text(summary))
    return 0
