"""Helpers shared by the sub-commands: arguments, the model, JSON, progress bars and Ctrl+C."""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
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


INTERRUPTED = 130
"""The exit status of a run stopped by Ctrl+C (128 + SIGINT), as shells report it."""


class ProgressBar:
    """A progress bar on stderr, only when ``enabled`` (stderr is a terminal): never in pipes or logs.

    Called as ``bar(done, total)``, so it is the ``progress`` callback of a folder run; also a context manager
    that closes the bar.
    """

    def __init__(self, enabled: bool, unit: str):
        self.bar: Any = None
        if enabled:
            from tqdm import tqdm

            self.bar = tqdm(unit=unit, file=sys.stderr, leave=False)

    def __call__(self, done: int, total: int) -> None:
        if self.bar is not None:
            self.bar.total = total
            self.bar.update(done - self.bar.n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None

    def __enter__(self) -> ProgressBar:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def show_progress(args: argparse.Namespace) -> bool:
    """True when a progress bar helps: text output and stderr a terminal."""
    return getattr(args, "format", "text") == "text" and sys.stderr.isatty()


@contextmanager
def ctrl_c_stops() -> Iterator[threading.Event]:
    """An event the first Ctrl+C sets, so that a run stops after its current batch; a second one aborts at once.

    The run is given the event as its ``should_stop``/``cancel``; the previous SIGINT handler comes back on exit.
    Outside the main thread (where signals cannot be caught) the event is simply never set.
    """
    cancel = threading.Event()

    def on_sigint(signum: int, frame: Any) -> None:
        if cancel.is_set():  # a second Ctrl+C: stop at once
            raise KeyboardInterrupt
        cancel.set()
        print(
            "\ncnnviz: stopping after this batch (Ctrl+C again to abort) ...",
            file=sys.stderr,
            flush=True,
        )

    previous = None
    if threading.current_thread() is threading.main_thread():
        previous = signal.signal(signal.SIGINT, on_sigint)
    try:
        yield cancel
    finally:
        if previous is not None:
            signal.signal(signal.SIGINT, previous)


def interrupted() -> int:
    """Say that the run was stopped before writing anything; the exit status to return."""
    print("cnnviz: interrupted; nothing was written.", file=sys.stderr)
    return INTERRUPTED
