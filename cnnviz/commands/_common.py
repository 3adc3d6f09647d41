"""Argument helpers shared by the sub-commands."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from cnnviz.core.errors import CnnvizError


def add_model_arguments(parser: argparse.ArgumentParser, *, required: bool = True) -> None:
    """--model, --weights, --trust, --input-size."""
    parser.add_argument(
        "--model",
        required=required,
        default=None if required else "default",
        metavar="SPEC",
        help="'default' (bundled digits model), a torchvision name (resnet18, vgg16 ...), a spec .json, "
        "a cnnviz checkpoint .pt, a TorchScript archive or a torch.export .pt2 file",
    )
    parser.add_argument(
        "--weights",
        default="default",
        metavar="W",
        help="'default' (pretrained, downloaded into the torch hub cache when online), 'none' (random) "
        "or a state_dict file",
    )
    parser.add_argument(
        "--trust",
        action="store_true",
        help="allow files that need full unpickling (they can run arbitrary code: only for files you trust)",
    )
    parser.add_argument(
        "--input-size",
        type=parse_shape,
        default=None,
        metavar="C,H,W",
        help="input shape (default: the model's)",
    )


def parse_shape(text: str) -> tuple[int, int, int]:
    """'3,224,224' -> (3, 224, 224)."""
    parts = [p for p in text.replace("x", ",").split(",") if p.strip()]
    try:
        values = tuple(int(p) for p in parts)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"'{text}' is not C,H,W (three whole numbers, e.g. 3,224,224)"
        ) from None
    if len(values) != 3 or min(values) < 1:
        raise argparse.ArgumentTypeError(
            f"'{text}' is not C,H,W (three positive whole numbers, e.g. 3,224,224)"
        )
    return values  # type: ignore[return-value]


def parse_pair(text: str) -> tuple[int, int]:
    """'3,4' -> (3, 4)."""
    parts = text.split(",")
    try:
        values = tuple(int(p) for p in parts)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"'{text}' is not Y,X (two whole numbers, e.g. 3,4)"
        ) from None
    if len(values) != 2:
        raise argparse.ArgumentTypeError(f"'{text}' is not Y,X (two whole numbers, e.g. 3,4)")
    return values  # type: ignore[return-value]


def load_from_args(args: argparse.Namespace) -> Any:
    """The LoadedModel that --model/--weights/--trust/--input-size name."""
    from cnnviz.core.models import load_model

    return load_model(
        args.model, weights=args.weights, trust=args.trust, input_shape=args.input_size
    )


def print_json(obj: Any) -> None:
    json.dump(obj, sys.stdout, indent=2, ensure_ascii=False)
    sys.stdout.write("\n")


def fail(message: str) -> CnnvizError:
    return CnnvizError(message)
