"""``cnnviz convolve``: slide a kernel over a picture, print the output-size formula, save the result as PNG.

How the result becomes a picture: the image is read as RGB (or as one grey channel when it is grey), each channel is
convolved on its own with the values 0..255, and the float results are turned back into 0..255 by a rule
(``--scale``, default ``auto``):

* ``clip``: keep the value, clip to 0..255 -- right for kernels whose weights sum to 1 (identity, blurs, sharpen,
  emboss), which keep the brightness scale;
* ``abs``: the absolute value, clipped -- for zero-sum edge kernels (Sobel, outline, Laplacian), whose output is
  0 on flat areas and positive or negative at edges; both signs show as bright;
* ``signed``: mid grey is 0, darker is negative, brighter positive (value/2 + 128, clipped);
* ``stretch``: the smallest value black, the largest white.

The arithmetic is float32, as in Conv2d layers (and about ten times faster than float64 on a CPU).

``auto`` picks ``abs`` when the kernel's weights sum to 0 and ``clip`` otherwise.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, overload

from cnnviz.commands._common import add_budget_argument, apply_budget
from cnnviz.core.errors import CnnvizError

if TYPE_CHECKING:
    import numpy as np

# numpy and the lab (torch) load only when the command runs or its help is shown, so that building
# the parser for `cnnviz --version` stays light.


def _lab() -> Any:
    from cnnviz.core import lab

    return lab


class _Choices(Sequence[str]):
    """A list of choices read from the lab on first use."""

    def __init__(self, load: Callable[[], Iterable[str]]) -> None:
        self._load = load
        self._items: tuple[str, ...] | None = None

    def _all(self) -> tuple[str, ...]:
        if self._items is None:
            self._items = tuple(self._load())
        return self._items

    @overload
    def __getitem__(self, index: int) -> str: ...
    @overload
    def __getitem__(self, index: slice) -> Sequence[str]: ...
    def __getitem__(self, index: int | slice) -> str | Sequence[str]:
        return self._all()[index]

    def __len__(self) -> int:
        return len(self._all())

    def __iter__(self) -> Iterator[str]:
        return iter(self._all())

    def __contains__(self, item: object) -> bool:
        return item in self._all()


def _epilog() -> str:
    return (
        "Presets: "
        + ", ".join(_lab().KERNEL_PRESETS)
        + ". A kernel file is JSON holding a list of rows, e.g. [[0, -1, 0], [-1, 5, -1], [0, -1, 0]]. "
        "Results become 0..255 by --scale: auto = abs for kernels whose weights sum to 0 (edge detectors), "
        "clip otherwise."
    )


class _HelpWithPresets(argparse._HelpAction):
    """--help that lists the preset kernels (read from the lab only when help is asked for)."""

    def __call__(self, parser: argparse.ArgumentParser, *args: Any, **kwargs: Any) -> None:
        parser.epilog = _epilog()
        super().__call__(parser, *args, **kwargs)


def register(subparsers: Any) -> argparse.ArgumentParser:
    """Add the ``convolve`` sub-command."""
    p = subparsers.add_parser(
        "convolve",
        help="convolve a picture with a kernel and save the result",
        description=(
            "Slide a kernel over every channel of a picture with torch's conv2d (cross-correlation, as Conv2d "
            "layers compute; --flip gives true convolution), print the output-size formula with the numbers "
            "filled in, and save the result as a PNG."
        ),
        add_help=False,
    )
    p.add_argument("-h", "--help", action=_HelpWithPresets, help="show this help message and exit")
    p.add_argument("--image", metavar="PATH", help="the picture to filter (PNG, JPEG, ...)")
    p.add_argument("--kernel", metavar="NAME|FILE.json", help="a preset name or a JSON kernel file")
    p.add_argument(
        "--flip", action="store_true", help="rotate the kernel 180 degrees first (true convolution)"
    )
    p.add_argument(
        "--stride", default="1", metavar="S", help="step between windows: S or H,W (default 1)"
    )
    p.add_argument(
        "--padding",
        default="0",
        metavar="P",
        help="pixels added on every side: P, H,W, or 'same' (kernel//2, odd kernels) (default 0)",
    )
    p.add_argument(
        "--dilation", default="1", metavar="D", help="spacing of kernel taps: D or H,W (default 1)"
    )
    p.add_argument(
        "--padding-mode",
        choices=_Choices(lambda: _lab().PADDING_MODES),
        metavar="MODE",
        default="zeros",
        help="what the padding holds: %(choices)s (default zeros, as Conv2d)",
    )
    p.add_argument(
        "--scale",
        choices=_Choices(lambda: _lab().DISPLAY_RULES),
        metavar="RULE",
        default="auto",
        help="how results become 0..255: %(choices)s (default auto)",
    )
    p.add_argument(
        "--gray", action="store_true", help="convert the picture to one grey channel first"
    )
    p.add_argument(
        "--out", metavar="OUT.png", help="where to save the result (nothing is written without it)"
    )
    p.add_argument("--list-kernels", action="store_true", help="list the preset kernels and exit")
    add_budget_argument(p)
    p.add_argument(
        "--format", choices=("text", "json"), default="text", help="output format (default text)"
    )
    p.set_defaults(func=run)
    return p


def _ints(text: str, what: str) -> int | tuple[int, int]:
    parts = [t.strip() for t in str(text).split(",")]
    try:
        values = [int(t) for t in parts]
    except ValueError:
        raise CnnvizError(
            f"The {what} '{text}' is not a whole number or a pair like 2,1."
        ) from None
    if len(values) == 1:
        return values[0]
    if len(values) == 2:
        return (values[0], values[1])
    raise CnnvizError(f"The {what} '{text}' has {len(values)} numbers; give one, or two as H,W.")


def _padding(text: str, kernel: np.ndarray) -> int | tuple[int, int]:
    if str(text).strip().lower() == "same":
        kh, kw = kernel.shape
        if kh % 2 == 0 or kw % 2 == 0:
            raise CnnvizError(
                f"Padding 'same' needs an odd kernel size, but this kernel is {kh}×{kw}; give the padding as a number."
            )
        return (kh // 2, kw // 2)
    return _ints(text, "padding")


def _pair(v: int | tuple[int, int]) -> list[int]:
    return [v, v] if isinstance(v, int) else list(v)


def _list_kernels(fmt: str) -> int:
    lab = _lab()
    if fmt == "json":
        data = [
            {
                "name": p.name,
                "title": p.title,
                "description": p.description,
                "kernel": p.kernel.tolist(),
            }
            for p in lab.KERNEL_PRESETS.values()
        ]
        print(json.dumps(data, indent=2))
        return 0
    width = max(len(n) for n in lab.KERNEL_PRESETS)
    for p in lab.KERNEL_PRESETS.values():
        h, w = p.kernel.shape
        print(f"{p.name:<{width}}  {h}×{w}  {p.description}")
    return 0


def _load_picture(path: str, gray: bool) -> tuple[np.ndarray, str, tuple[int, int] | None]:
    """The picture as float32 0..255 (H x W or H x W x 3), its mode, and its original size if it was reduced."""
    import numpy as np

    from cnnviz.core.images import ORIGINAL_SIZE_KEY, open_image

    image = open_image(path, "L" if gray else None)
    pixels = np.asarray(image, dtype=np.float32)
    original = image.info.get(ORIGINAL_SIZE_KEY)
    reduced = tuple(original) if original and tuple(original) != pixels.shape[:2] else None
    return pixels, image.mode, reduced  # type: ignore[return-value]


def _rule_reason(rule: str, requested: str) -> str:
    if requested != "auto":
        return "as asked with --scale"
    if rule == "abs":
        return "auto: the kernel's weights sum to 0, so edges of both signs are shown bright"
    return "auto: the kernel's weights do not sum to 0, so values keep the brightness scale"


_RULE_TEXT = {
    "clip": "values clipped to 0..255",
    "abs": "absolute values clipped to 0..255",
    "signed": "value/2 + 128 clipped to 0..255 (mid grey is 0)",
    "stretch": "smallest value black, largest white",
}


def run(args: argparse.Namespace) -> int:
    """Convolve the picture, print the formula, write the PNG when ``--out`` is given."""
    if args.list_kernels:
        return _list_kernels(args.format)
    lab = _lab()
    apply_budget(args)
    if not args.image or not args.kernel:
        missing = " and ".join(f"--{n}" for n in ("image", "kernel") if not getattr(args, n))
        raise CnnvizError(
            f"Missing {missing}; see 'cnnviz convolve --help' (or --list-kernels for the presets)."
        )
    name, kernel = lab.resolve_kernel(args.kernel)
    stride = _ints(args.stride, "stride")
    padding = _padding(args.padding, kernel)
    dilation = _ints(args.dilation, "dilation")
    out_path = Path(args.out) if args.out else None
    if out_path is not None and out_path.suffix.lower() != ".png":
        raise CnnvizError(
            f"The output '{out_path}' must end in .png; the result is saved as a PNG picture."
        )

    pixels, mode, reduced = _load_picture(args.image, args.gray)
    h, w = pixels.shape[:2]
    kh, kw = kernel.shape
    formula = lab.output_size_formula((h, w), (kh, kw), stride, padding, dilation)
    result = lab.convolve(
        pixels,
        kernel,
        flip=args.flip,
        stride=stride,
        padding=padding,
        dilation=dilation,
        padding_mode=args.padding_mode,
        precision="float32",
    )
    rule = lab.display_rule(kernel, args.scale)
    shown = lab.to_uint8(result, rule, full_scale=255.0)
    if out_path is not None:
        from cnnviz.core.present.export import write_png

        write_png(out_path, shown)

    ho, wo = result.shape[:2]
    lo, hi = float(result.min()), float(result.max())
    if args.format == "json":
        report = {
            "image": str(args.image),
            "mode": mode,
            "input_size": [h, w],
            "kernel": {"name": name, "size": [kh, kw], "values": kernel.tolist()},
            "flip": bool(args.flip),
            "operation": "convolution" if args.flip else "cross-correlation",
            "stride": _pair(stride),
            "padding": _pair(padding),
            "dilation": _pair(dilation),
            "padding_mode": args.padding_mode,
            "output_size": [ho, wo],
            "formula": formula.splitlines(),
            "scale": rule,
            "min": lo,
            "max": hi,
            "out": str(out_path) if out_path is not None else None,
            "original_size": list(reduced) if reduced else None,
        }
        print(json.dumps(report, indent=2))
        return 0
    op = "true convolution (kernel flipped)" if args.flip else "cross-correlation, as Conv2d"
    print(f"{args.image}: {mode} {w}×{h} with kernel {name} {kh}×{kw}, {op}")
    if reduced:
        print(
            f"(the picture is {reduced[1]}×{reduced[0]}; it was read reduced to {w}×{h} to bound memory)"
        )
    print(formula)
    print(
        f"values {lo:.6g} .. {hi:.6g}; shown as {_RULE_TEXT[rule]} ({_rule_reason(rule, args.scale)})"
    )
    if out_path is not None:
        print(f"wrote {out_path} ({wo}×{ho} {mode})")
    else:
        print("nothing written; add --out FILE.png to save the result", file=sys.stderr)
    return 0
