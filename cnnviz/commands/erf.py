"""cnnviz erf: the effective receptive field of a unit averaged over a folder of pictures, or its growth with depth."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

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


def _unit(text: str) -> Any:
    from cnnviz.commands._common import parse_pair

    if text.strip().lower() in ("center", "centre"):
        return "center"
    try:
        return parse_pair(text)
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(
            f"'{text}' is not center or Y,X (two whole numbers, e.g. 3,4)"
        ) from None


def register(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    # the defaults live with the budgets: importing the analysis here would load torch for --help
    from cnnviz.core.budget import ERF_BATCH as DEFAULT_BATCH
    from cnnviz.core.budget import ERF_PICTURES as DEFAULT_PICTURES

    parser = sub.add_parser(
        "erf",
        help="the effective receptive field of a unit over a folder of pictures, or how it grows with depth",
        description="Average over the pictures of a folder the input-gradient magnitude of one unit "
        "(its activation summed over the layer's channels; |gradient| summed over colour channels) and "
        "write it as a heatmap with the theoretical receptive field drawn on top, plus the high-contribution "
        "area ratio: for 20%, 30%, 50% and 99%, the smallest centred square (odd side, clipped to the input) "
        "holding that share of the total, as a share of the input's area. With --all-layers, the centre unit "
        "of every layer with a spatial map, plotted against depth next to the theoretical field (a PNG and a "
        "JSON list beside it).",
    )
    add_model_arguments(parser)
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument("--layer", metavar="NAME", help="layer name as in `cnnviz summary`")
    which.add_argument(
        "--all-layers",
        action="store_true",
        help="every layer with a spatial map (its centre unit): the growth-with-depth plot",
    )
    parser.add_argument(
        "--data", required=True, metavar="DIR", help="folder of pictures (searched recursively)"
    )
    parser.add_argument(
        "--unit",
        type=_unit,
        default="center",
        metavar="center|Y,X",
        help="the unit: 'center' (the middle of the layer's map, the default) or its position Y,X",
    )
    parser.add_argument(
        "--n",
        type=int,
        default=DEFAULT_PICTURES,
        metavar="N",
        help=f"average over the first N pictures (default {DEFAULT_PICTURES}; all when there are fewer)",
    )
    parser.add_argument(
        "--batch-size",
        type=int,
        default=DEFAULT_BATCH,
        metavar="B",
        help=f"pictures per forward and backward pass (default {DEFAULT_BATCH}; lowered to fit the memory "
        "budget)",
    )
    parser.add_argument(
        "--device",
        default="auto",
        metavar="DEVICE",
        help="auto (a CUDA GPU when there is one, the default), cpu, cuda or cuda:N",
    )
    parser.add_argument(
        "--out",
        required=True,
        metavar="PNG",
        help="the picture to write (.png or .svg); with --all-layers the JSON list goes beside it (.json)",
    )
    parser.add_argument("--format", choices=("text", "json"), default="text",
                        help="what to print: a summary (text) or the result (json)")  # fmt: skip
    parser.set_defaults(func=run)
    return parser


def _check_out(out: Path, *extra: Path) -> None:
    from cnnviz.core.fileio import folder_write_problem, write_target_problem

    if out.suffix.lower() not in (".png", ".svg"):
        raise CnnvizError(f"--out must name a .png or .svg file, not '{out.name}'")
    for target in (out, *extra):
        problem = write_target_problem(target)
        if problem:
            raise CnnvizError(f"cannot write '{target}': it {problem}; give a file name")
    problem = folder_write_problem(out.parent if str(out.parent) else Path("."))
    if problem:
        raise CnnvizError(f"cannot write into '{out.parent}': {problem}")


def run(args: argparse.Namespace) -> int:
    from cnnviz.core.analysis.dataset import resolve_device
    from cnnviz.core.analysis.dataset.erf import dataset_erf, erf_growth

    out = Path(args.out)
    side = out.with_suffix(".json")
    if args.all_layers and args.unit != "center":
        raise CnnvizError(
            "--unit is for one layer; --all-layers takes the centre unit of every layer"
        )
    _check_out(out, *([side] if args.all_layers else []))
    device = resolve_device(args.device)
    model = load_from_args(args)
    model.module.to(device)
    name = getattr(model, "name", None) or args.model
    if args.all_layers:
        return _growth(args, model, name, out, side, erf_growth)
    with ctrl_c_stops() as cancel, ProgressBar(show_progress(args), "picture") as bar:
        try:
            result = dataset_erf(
                model, args.data, args.layer, args.unit, n=args.n, batch_size=args.batch_size,
                should_stop=cancel.is_set, progress=bar,
            )  # fmt: skip
        except InterruptedError:  # stopped before the first pass
            return interrupted()
    if cancel.is_set():
        return interrupted()
    from cnnviz.core.present.erfplot import erf_heatmap_figure
    from cnnviz.core.present.export import write_figure

    write_figure(out, erf_heatmap_figure(result, model_name=name))
    if args.format == "json":
        print_json(result.to_json())
        return 0
    _summary(result)
    print(f"wrote {out}")
    return 0


def _summary(result: Any) -> None:
    from cnnviz.core.present.captions import box_text, layer_title
    from cnnviz.core.present.erfplot import ratio_text
    from cnnviz.core.text import dims

    kind = f" ({result.layer_type})" if result.layer_type else ""
    print(
        f"{layer_title(result.layer)}{kind}, unit (y={result.unit[0]}, x={result.unit[1]}) of its "
        f"{dims(result.map_size)} map, over {result.images} picture(s) of {dims(result.input_shape)}"
    )
    for t, ratio in result.area_ratio.items():
        print(f"  {round(100 * t):>2d}% of the contribution: {ratio_text(ratio):>6} of the input "
              f"(a square of side {result.side[t]})")  # fmt: skip
    if result.theoretical_box is not None:
        square = result.theoretical_square
        whole = f", its centred square {ratio_text(square[1])}" if square else ""
        print(
            f"  theoretical field: {box_text(result.theoretical_box)}, "
            f"{ratio_text(result.theoretical_ratio)} of the input{whole}"
        )
    if result.skipped:
        print(
            f"skipped {len(result.skipped)} unreadable file(s), e.g. {result.skipped[0][1]}",
            file=sys.stderr,
        )


def _growth(
    args: argparse.Namespace, model: Any, name: str, out: Path, side: Path, erf_growth: Any
) -> int:
    from cnnviz.core.fileio import write_json
    from cnnviz.core.present.erfplot import erf_growth_figure, ratio_text
    from cnnviz.core.present.export import write_figure

    with ctrl_c_stops() as cancel, ProgressBar(show_progress(args), "picture") as bar:
        try:
            growth = erf_growth(
                model, args.data, n=args.n, batch_size=args.batch_size, should_stop=cancel.is_set,
                progress=bar,
            )  # fmt: skip
        except InterruptedError:  # stopped before the first pass
            return interrupted()
    if cancel.is_set():
        return interrupted()
    data = growth.to_json()
    write_json(side, data)
    write_figure(out, erf_growth_figure(growth, model_name=name))
    if args.format == "json":
        print_json(data)
        return 0
    print(
        f"{len(growth.points)} layers with a spatial map, centre unit, over {growth.images} picture(s):"
    )
    width = max([5, *(len(p.layer) for p in growth.points)])
    kinds = max([4, *(len(p.layer_type) for p in growth.points)])
    print(f"  {'layer':<{width}}  {'type':<{kinds}}  theoretical     20%     50%     99%")
    for p in growth.points:
        theory = ratio_text(p.theoretical_square[1]) if p.theoretical_square else "–"
        cells = "".join(f"{ratio_text(p.area_ratio[t]):>8}" for t in (0.2, 0.5, 0.99))
        print(f"  {p.layer:<{width}}  {p.layer_type:<{kinds}}  {theory:>11}{cells}")
    if growth.silent:
        print(f"no effective field (zero gradient on every picture): {', '.join(growth.silent)}")
    print(f"wrote {out} and {side}")
    return 0
