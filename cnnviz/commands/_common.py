"""Argument helpers shared by the sub-commands."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from cnnviz.core.errors import CnnvizError


def add_model_arguments(
    parser: argparse.ArgumentParser, *, required: bool = True, weights_default: str = "default"
) -> None:
    """--model, --weights, --trust, --input-size; ``weights_default`` is what --weights is when not given.

    Commands that need only the architecture (a table, a receptive field) pass "none", so that they never
    fetch pretrained weights unless asked.
    """
    parser.add_argument(
        "--model",
        required=required,
        default=None if required else "default",
        metavar="SPEC",
        help="'default' (bundled digits model), a torchvision name (resnet18, vgg16 ...), a timm model "
        "as timm:NAME (timm:resnet50d ...), a spec .json, a cnnviz checkpoint (.pt, or .safetensors with "
        "its .json), a TorchScript archive, a torch.export .pt2 file or an ONNX file",
    )
    if weights_default == "none":
        weights_help = (
            "'none' (the default here, as the result depends only on the architecture: random weights "
            "for a torchvision or timm name, a file keeps its own), 'default' (pretrained, downloaded into "
            "the torch hub or Hugging Face Hub cache when online) or a state_dict file (.pth, .safetensors)"
        )
    else:
        weights_help = (
            "'default' (pretrained, downloaded into the torch hub or Hugging Face Hub cache when online), "
            "'none' (random) or a state_dict file (.pth, .safetensors)"
        )
    parser.add_argument("--weights", default=weights_default, metavar="W", help=weights_help)
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
    add_budget_argument(parser)


def add_budget_argument(parser: argparse.ArgumentParser) -> None:
    """--memory-budget: the most memory a model, picture or data set may take (see cnnviz.core.budget)."""
    parser.add_argument(
        "--memory-budget",
        type=parse_budget,
        default=None,
        metavar="SIZE",
        help="refuse sizes that would need more memory than this, before allocating: e.g. 16GiB, "
        "16GB, 2e10 (bytes) or none (default: $CNNVIZ_MEMORY_BUDGET or 8GiB)",
    )


def parse_budget(text: str) -> str:
    """Check a --memory-budget value now, so that a typo is a usage error; kept as text."""
    from cnnviz.core.budget import parse_size

    try:
        parse_size(text)
    except CnnvizError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def apply_budget(args: argparse.Namespace) -> None:
    """Make --memory-budget (when given) the budget of this run."""
    from cnnviz.core.budget import set_budget

    set_budget(getattr(args, "memory_budget", None))


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
    from cnnviz.core.budget import check_input
    from cnnviz.core.models import load_model

    apply_budget(args)
    if args.input_size is not None:
        check_input(args.input_size)  # before a picture is resized to it
    model = load_model(
        args.model, weights=args.weights, trust=args.trust, input_shape=args.input_size
    )
    note = getattr(model, "note", None)
    if note:
        print(f"cnnviz: note: {note}", file=sys.stderr)
    return model


def print_json(obj: Any) -> None:
    json.dump(obj, sys.stdout, indent=2, ensure_ascii=False)
    sys.stdout.write("\n")
