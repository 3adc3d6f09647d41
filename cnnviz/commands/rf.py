"""cnnviz rf: the receptive field of one unit."""

from __future__ import annotations

import argparse

from cnnviz.commands._common import add_model_arguments, load_from_args, parse_pair, print_json


def register(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = sub.add_parser(
        "rf",
        help="the receptive field of one unit of a layer",
        description="Where unit (Y, X) of a layer looks in the input: the box of the formula "
        "y*S-P .. y*S-P+r-1 per axis, the box clipped to the input, the exact support, the share in padding, "
        "and with --image the box in the original picture's pixels.",
    )
    add_model_arguments(parser, weights_default="none")
    parser.add_argument(
        "--layer", required=True, metavar="NAME", help="layer name as in `cnnviz summary`"
    )
    parser.add_argument(
        "--unit", required=True, type=parse_pair, metavar="Y,X", help="unit position in the map"
    )
    parser.add_argument(
        "--image", default=None, metavar="PATH", help="map the box onto this picture"
    )
    parser.add_argument("--format", choices=("text", "json"), default="text")
    parser.set_defaults(func=run)
    return parser


def run(args: argparse.Namespace) -> int:
    from cnnviz.core.analysis.receptive import receptive_field
    from cnnviz.core.present.captions import box_text, layer_title, unit_notes
    from cnnviz.core.text import dims

    model = load_from_args(args)
    geometry = None
    if args.image is not None:
        from cnnviz.core.images import load_image

        geometry = load_image(args.image, model.preprocess).geometry
    box = receptive_field(model, args.layer, args.unit, model.input_shape, geometry)
    data = box.to_json()
    if args.format == "json":
        print_json(data)
        return 0
    print(
        f"{layer_title(box.layer)}, unit (y={box.unit[0]}, x={box.unit[1]}) on a {dims(box.input_shape)} input"
    )
    if box.global_:
        print("global: every unit of this layer sees the whole input")
    else:
        print(f"size r = {data['size'][0]}×{data['size'][1]}, stride S = {data['stride'][0]}×{data['stride'][1]}, "
              f"padding P = {data['padding'][0]}×{data['padding'][1]}")  # fmt: skip
        print(f"box:          {box_text(box.box)}  (top, left = y·S − P, x·S − P)")
        print(f"clipped box:  {box_text(box.clipped_box)}")
        print(f"support:      {box_text(box.support_box)}  (input pixels the unit can depend on)")
        print(f"in padding:   {box.padding_fraction:.1%} of the box")
    if box.image_box is not None:
        print(f"in the image: {box_text(box.image_box)}  (original pixels)")
    elif geometry is not None:
        print("in the image: none (the box lies entirely in the padding)")
    for note in unit_notes(box):
        print(f"note:         {note}")
    return 0
