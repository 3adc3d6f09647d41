"""cnnviz top-units: per channel of a layer, the units that fire most over a folder of pictures."""

from __future__ import annotations

import argparse
from pathlib import Path

from cnnviz.commands._common import (
    ProgressBar,
    add_model_arguments,
    ctrl_c_stops,
    interrupted,
    load_from_args,
    print_json,
    show_progress,
)
from cnnviz.core.errors import CnnvizError


def _channels(text: str) -> list[int] | None:
    """'all' -> None; '0,3,5' -> [0, 3, 5] (ranges such as 2-4 too)."""
    if text.strip().lower() == "all":
        return None
    out: list[int] = []
    try:
        for part in (p.strip() for p in text.split(",")):
            if not part:
                continue
            first, dash, last = part.partition("-")
            if dash and first:
                out.extend(range(int(first), int(last) + 1))
            else:
                out.append(int(part))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"'{text}' is not a list of channels: give all, or numbers such as 0,3,5 or 2-4"
        ) from None
    if not out or min(out) < 0:
        raise argparse.ArgumentTypeError(
            f"'{text}' is not a list of channels: give all, or numbers from 0 such as 0,3,5"
        )
    return out


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} is not at least 1")
    return value


def register(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    # the defaults live with the budgets: importing the analysis here would load torch for --help
    from cnnviz.core.budget import TOP_UNITS_BATCH, TOP_UNITS_K

    parser = sub.add_parser(
        "top-units",
        help="per channel, the units that fire most over a folder of pictures",
        description="Run every picture of a folder (searched recursively; unreadable files are skipped and "
        "counted) through the model up to a layer and keep, per channel, the K units (picture, y, x) with "
        "the highest activation. Writes a PNG mosaic per channel -- each unit as the crop of its receptive "
        "field in the original picture, the part outside the picture hatched -- and top_units.json.",
    )
    add_model_arguments(parser)
    parser.add_argument(
        "--layer", required=True, metavar="NAME", help="layer name as in `cnnviz summary`"
    )
    parser.add_argument("--data", required=True, metavar="DIR", help="folder of pictures")
    parser.add_argument(
        "--channels",
        type=_channels,
        default=None,
        metavar="all|0,3,5",
        help="channels to rank (default: all)",
    )
    parser.add_argument(
        "--k",
        type=_positive,
        default=TOP_UNITS_K,
        metavar="K",
        help=f"top units per channel (default {TOP_UNITS_K})",
    )
    parser.add_argument(
        "--batch-size",
        type=_positive,
        default=TOP_UNITS_BATCH,
        metavar="B",
        help=f"pictures per forward pass (default {TOP_UNITS_BATCH})",
    )
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    parser.add_argument(
        "--out", required=True, metavar="DIR", help="folder for the mosaics and top_units.json"
    )
    parser.add_argument(
        "--tile", type=_positive, default=96, metavar="PX", help="crop size in the mosaics"
    )
    parser.add_argument(
        "--erf",
        action="store_true",
        help="lay each unit's effective receptive field over its crop (one gradient per unit: slower)",
    )
    parser.add_argument("--format", choices=("text", "json"), default="text")
    parser.set_defaults(func=run)
    return parser


def _checked_out(value: str) -> Path:
    from cnnviz.core.fileio import folder_write_problem

    if not value.strip():
        raise CnnvizError("--out is empty: give the folder to write into, such as --out top.")
    out = Path(value).expanduser()
    problem = folder_write_problem(out, may_create=True)
    if problem is not None:
        raise CnnvizError(f"cannot write into {out}: {problem}; choose a folder you can write to.")
    return out


def run(args: argparse.Namespace) -> int:
    from cnnviz.core.analysis.dataset import resolve_device, top_units
    from cnnviz.core.present.topunits import top_units_lines, write_top_units

    out = _checked_out(args.out)
    resolve_device(args.device)  # no CUDA: said before the model is loaded
    model = load_from_args(args)
    terminal = show_progress(args)
    with ctrl_c_stops() as cancel:
        with ProgressBar(terminal, "picture") as bar:
            result = top_units(
                model,
                args.data,
                args.layer,
                k=args.k,
                channels=args.channels,
                batch_size=args.batch_size,
                device=args.device,
                progress=bar,
                should_stop=cancel,
            )
        if result.cancelled:
            return interrupted()
        with ProgressBar(terminal, "mosaic") as bar:
            try:
                files = write_top_units(
                    result,
                    out,
                    tile=args.tile,
                    erf_model=model if args.erf else None,
                    progress=bar,
                    should_stop=cancel.is_set,
                )
            except InterruptedError:
                return interrupted()
    if args.format == "json":
        print_json(result.to_json())
        return 0
    for line in top_units_lines(result):
        print(line)
    print(f"  wrote {len(files) - 1} mosaic(s) and {files[-1].name} to {out}")
    return 0
