"""cnnviz predict: the most likely classes for one or more images."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from cnnviz.commands._common import add_model_arguments, load_from_args, print_json
from cnnviz.core.errors import CnnvizError


def register(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = sub.add_parser(
        "predict",
        help="print the top classes and probabilities for images",
        description="Run each image through the model and print its most likely classes, best first. "
        "An image that cannot be read is reported on stderr; the others are still predicted and the exit "
        "status is 2.",
    )
    add_model_arguments(parser, required=False)
    parser.add_argument(
        "--top", type=int, default=5, metavar="K", help="classes to show per image (default 5)"
    )
    parser.add_argument("--format", choices=("text", "json"), default="text")
    parser.add_argument("images", nargs="+", metavar="IMAGE", help="image files")
    parser.set_defaults(func=run)
    return parser


def run(args: argparse.Namespace) -> int:
    from cnnviz.core.analysis.predict import predict

    if args.top < 1:
        raise CnnvizError(f"--top {args.top} shows nothing: use 1 or more.")
    model = load_from_args(args)
    results: list[dict[str, Any]] = []
    failed = 0
    for path in args.images:
        try:
            predictions = predict(model, path, top=args.top)
        except CnnvizError as exc:
            failed += 1
            # Name the picture once: most messages about a picture already do.
            where = "" if path in str(exc) else f"{path}: "
            print(f"cnnviz: error: {where}{exc}", file=sys.stderr)
            continue
        results.append({"image": path, "predictions": [p.to_dict() for p in predictions]})
        if args.format == "text":
            print(path)
            width = max(len(p.label) for p in predictions)
            for p in predictions:
                print(f"  {p.label:<{width}}  {p.probability:7.2%}  (index {p.index})")
    if args.format == "json":
        print_json(results)
    return 2 if failed else 0
