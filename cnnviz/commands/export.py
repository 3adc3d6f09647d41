"""cnnviz export: feature-map grids (and a unit's receptive-field overlay) as files, drawn like the app draws them."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from cnnviz.commands._common import add_model_arguments, load_from_args, parse_pair, print_json
from cnnviz.core.errors import CnnvizError


def register(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    from cnnviz.core.present.view import COLORMAPS, NORMALIZATIONS

    parser = sub.add_parser(
        "export",
        help="write feature-map grids and receptive-field overlays as PNG/SVG",
        description="Run a picture through a model and write each chosen layer's feature maps as one grid PNG. "
        "With --unit (one unit of the map) or --point (in every layer the unit over that picture point), also "
        "the unit's receptive field drawn on the original picture (theoretical box, the part in padding, its "
        "centre and the effective-RF heatmap) and a JSON with the same fields as `cnnviz rf`. "
        "manifest.json lists everything written.",
    )
    add_model_arguments(parser)
    parser.add_argument(
        "--image", required=True, metavar="PATH", help="the picture to run through the model"
    )
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument(
        "--layer", action="append", metavar="NAME", help="a layer name (repeat for more layers)"
    )
    which.add_argument(
        "--all-layers", action="store_true", help="every layer the model runs, in order"
    )
    spot = parser.add_mutually_exclusive_group()
    spot.add_argument(
        "--unit",
        type=parse_pair,
        default=None,
        metavar="Y,X",
        help="also export the receptive field of this unit (a position in the layer's map: for one layer)",
    )
    spot.add_argument(
        "--point",
        type=parse_pair,
        default=None,
        metavar="Y,X",
        help="a point of the picture (row, column in its pixels): in every layer, also export the "
        "receptive field of the unit centred nearest to it, so all layers look at the same spot",
    )
    parser.add_argument(
        "--cmap", default="viridis", choices=COLORMAPS, help="colormap (default: viridis)"
    )
    parser.add_argument("--norm", default="channel", choices=NORMALIZATIONS,
                        help="normalise each channel or the whole layer (default: channel)")  # fmt: skip
    parser.add_argument(
        "--sort", action="store_true", help="order the maps by mean activation, highest first"
    )
    parser.add_argument(
        "--svg",
        action="store_true",
        help="also write SVG versions (picture embedded, marks as vectors)",
    )
    parser.add_argument(
        "--no-erf", action="store_true", help="skip the effective-RF heatmap (no gradient pass)"
    )
    parser.add_argument(
        "--out", required=True, metavar="DIR", help="output folder (created if missing)"
    )
    parser.add_argument("--format", choices=("text", "json"), default="text",
                        help="what to print: a list of files (text) or the manifest (json)")  # fmt: skip
    parser.set_defaults(func=run)
    return parser


def _progress(enabled: bool) -> Any:
    if not enabled:
        return None, None
    from tqdm import tqdm

    bar = tqdm(unit="layer", file=sys.stderr, leave=False)

    def report(done: int, total: int, name: str) -> None:
        bar.total = total
        bar.set_postfix_str(name, refresh=False)
        bar.update(done - bar.n)

    return report, bar


def _checked_output_folder(value: str) -> Path:
    """The folder of ``--out``, refused before the model is loaded if nothing can be written there."""
    from cnnviz.core.fileio import folder_write_problem

    if not value.strip():
        raise CnnvizError("--out is empty: give the folder to write into, such as --out export.")
    out = Path(value).expanduser()
    problem = folder_write_problem(out, may_create=True)
    if problem is not None:
        raise CnnvizError(f"cannot export into {out}: {problem}; choose a folder you can write to.")
    return out


def run(args: argparse.Namespace) -> int:
    from cnnviz.core.images import load_image
    from cnnviz.core.present.export import export_layers
    from cnnviz.core.text import dims

    out = _checked_output_folder(args.out)
    model = load_from_args(args)
    image = load_image(args.image, model.preprocess)
    report, bar = _progress(args.format == "text" and sys.stderr.isatty())
    formats = ("png", "svg") if args.svg else ("png",)
    try:
        result = export_layers(
            model, image, out, layers=None if args.all_layers else args.layer, unit=args.unit, point=args.point,
            cmap=args.cmap, norm=args.norm, sort=args.sort, effective_rf=not args.no_erf, formats=formats,
            progress=report,
        )  # fmt: skip
    finally:
        if bar is not None:
            bar.close()
    manifest = result.manifest
    if args.format == "json":
        print_json(dict(manifest, out_dir=str(result.out_dir)))
        return 0
    layers = manifest["layers"]
    if not layers:
        raise CnnvizError("no layer was exported")
    print(f"{model.name} on {image.path}: {len(layers)} layer(s) written to {result.out_dir}")
    for entry in layers:
        files = ", ".join(entry["files"].values())
        shape = dims(entry["shape"])
        line = f"  {entry['layer']} ({entry.get('type') or '?'}, {shape}): {files}"
        if args.point is not None and "unit" in entry:
            line += f"  [unit (y={entry['unit'][0]}, x={entry['unit'][1]})]"
        if "rf_skipped" in entry:
            line += f"  [no receptive field: {entry['rf_skipped']}]"
        print(line)
    print("  manifest.json lists every file")
    return 0
