"""cnnviz samples: the pictures bundled with cnnviz, listed or copied into a folder."""

from __future__ import annotations

import argparse

from cnnviz.commands._common import print_json


def register(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = sub.add_parser(
        "samples",
        help="list the sample pictures bundled with cnnviz, or copy them into a folder",
        description="List the pictures that come with cnnviz (digits for the bundled model, photos for "
        "torchvision models): name, size and what each shows. With --copy DIR, copy them into DIR "
        "(digits/ and photos/ inside it) to open or edit them. Identical files already there are kept; "
        "different ones are refused unless --force.",
    )
    parser.add_argument(
        "--copy",
        metavar="DIR",
        default=None,
        help="copy the pictures into this folder (created if missing)",
    )
    parser.add_argument(
        "--force",
        action="store_true",
        help="with --copy: replace files in DIR that differ from the samples",
    )
    parser.add_argument("--format", choices=("text", "json"), default="text")
    parser.set_defaults(func=run)
    return parser


def run(args: argparse.Namespace) -> int:
    from cnnviz.core.errors import CnnvizError
    from cnnviz.core.images.samples import copy_samples, sample_catalogue
    from cnnviz.core.text import dims, nbytes

    if args.force and args.copy is None:
        raise CnnvizError("--force only applies with --copy DIR: give the folder to copy into")
    samples = sample_catalogue()
    if args.copy is not None:
        report = copy_samples(args.copy, force=args.force)
        if args.format == "json":
            print_json({
                "folder": str(report.folder),
                "written": [str(p) for p in report.written],
                "unchanged": [str(p) for p in report.unchanged],
            })  # fmt: skip
            return 0
        kept = f" ({len(report.unchanged)} already there)" if report.unchanged else ""
        print(f"copied {len(report.written)} sample picture(s) into {report.folder}{kept}")
        return 0
    if args.format == "json":
        print_json([s.to_json() for s in samples])
        return 0
    if not samples:
        raise CnnvizError(
            "this installation of cnnviz has no sample pictures; reinstall cnnviz to get them"
        )
    kinds: dict[str, int] = {}
    for s in samples:
        kinds[s.kind] = kinds.get(s.kind, 0) + 1
    counts = " and ".join(f"{n} {kind}" for kind, n in kinds.items())
    print(f"{counts} bundled with cnnviz, in {samples[0].path.parent.parent}:")
    width = max(len(s.name) for s in samples)
    sizes = [dims((s.width, s.height)) for s in samples]
    size_w = max(len(t) for t in sizes)
    for s, size in zip(samples, sizes, strict=True):
        print(f"  {s.name:<{width}}  {size:>{size_w}}  {nbytes(s.size):>9}  {s.shows}")
    print(
        "Sizes are width×height pixels. Open one with: cnnviz gui PATH; copy them all with: cnnviz samples --copy DIR"
    )
    return 0
