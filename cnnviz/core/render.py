"""Feature-map mosaics, colormaps and receptive-field overlays as NumPy RGBA arrays.

Everything the desktop app draws from numbers, and everything ``cnnviz export`` writes, goes through this module,
so a PNG exported from the command line shows exactly what the window showed. Qt-free by design.

Three building blocks:

* **Colormaps** (:data:`COLORMAPS`): 256-entry lookup tables. viridis, magma, inferno and plasma are the
  matplotlib tables by Nathaniel J. Smith, Stefan van der Walt and Eric Firing (CC0); coolwarm is Kenneth
  Moreland's diverging map (its published 33-point table, interpolated); gray is a linear ramp.
* **Mosaics** (:func:`feature_mosaic`): all channels of a layer tiled into one near-square image with 1-pixel gaps,
  normalised per channel or per layer, optionally sorted by mean activation. :class:`MosaicLayout` maps mosaic
  pixels back to (channel, y, x) and back again.
* **Figures** (:class:`Figure`): a raster plus vector shapes plus caption lines, rendered to RGBA
  (:func:`render_figure`) or to SVG (:func:`figure_to_svg`). :func:`feature_grid_figure` and
  :func:`rf_overlay_figure` build the two kinds of picture the app exports.
"""

from __future__ import annotations

import base64
import io
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import cache, lru_cache
from typing import Any
from xml.sax.saxutils import escape

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from cnnviz.core.errors import CnnvizError
from cnnviz.core.present.view import COLORMAPS, DIVERGING, NORMALIZATIONS

__all__ = [
    "COLORMAPS",
    "DIVERGING",
    "NORMALIZATIONS",
    "FeatureMosaic",
    "Figure",
    "MosaicLayout",
    "Shape",
    "apply_colormap",
    "colormap_lut",
    "feature_grid_figure",
    "feature_mosaic",
    "figure_to_svg",
    "grid_shape",
    "heatmap_rgba",
    "mosaic_layout",
    "normalize",
    "render_figure",
    "rf_overlay_figure",
    "tile",
    "to_maps",
    "unit_caption",
    "value_ranges",
]

RGBA = tuple[int, int, int, int]

# --------------------------------------------------------------------------------------------------------------
# Colormaps

# matplotlib's viridis, magma, inferno and plasma (CC0), 256 colours each as RRGGBB hex.
_LUT_HEX: dict[str, str] = {
    "viridis": (
        "44015444025645045745055946075a46085c460a5d460b5e470d60470e61471063471164471365481467"
        "48166848176948186a481a6c481b6d481c6e481d6f481f70482071482173482374482475482576482677"
        "482878482979472a7a472c7a472d7b472e7c472f7d46307e46327e46337f463480453581453781453882"
        "443983443a83443b84433d84433e85423f854240864241864142874144874045884046883f47883f4889"
        "3e49893e4a893e4c8a3d4d8a3d4e8a3c4f8a3c508b3b518b3b528b3a538b3a548c39558c39568c38588c"
        "38598c375a8c375b8d365c8d365d8d355e8d355f8d34608d34618d33628d33638d32648e32658e31668e"
        "31678e31688e30698e306a8e2f6b8e2f6c8e2e6d8e2e6e8e2e6f8e2d708e2d718e2c718e2c728e2c738e"
        "2b748e2b758e2a768e2a778e2a788e29798e297a8e297b8e287c8e287d8e277e8e277f8e27808e26818e"
        "26828e26828e25838e25848e25858e24868e24878e23888e23898e238a8d228b8d228c8d228d8d218e8d"
        "218f8d21908d21918c20928c20928c20938c1f948c1f958b1f968b1f978b1f988b1f998a1f9a8a1e9b8a"
        "1e9c891e9d891f9e891f9f881fa0881fa1881fa1871fa28720a38620a48621a58521a68522a78522a884"
        "23a98324aa8325ab8225ac8226ad8127ad8128ae8029af7f2ab07f2cb17e2db27d2eb37c2fb47c31b57b"
        "32b67a34b67935b77937b87838b9773aba763bbb753dbc743fbc7340bd7242be7144bf7046c06f48c16e"
        "4ac16d4cc26c4ec36b50c46a52c56954c56856c66758c7655ac8645cc8635ec96260ca6063cb5f65cb5e"
        "67cc5c69cd5b6ccd5a6ece5870cf5773d05675d05477d1537ad1517cd2507fd34e81d34d84d44b86d549"
        "89d5488bd6468ed64590d74393d74195d84098d83e9bd93c9dd93ba0da39a2da37a5db36a8db34aadc32"
        "addc30b0dd2fb2dd2db5de2bb8de29bade28bddf26c0df25c2df23c5e021c8e020cae11fcde11dd0e11c"
        "d2e21bd5e21ad8e219dae319dde318dfe318e2e418e5e419e7e419eae51aece51befe51cf1e51df4e61e"
        "f6e620f8e621fbe723fde725"
    ),
    "magma": (
        "00000401000501010601010802010902020b02020d03030f03031204041405041606051806051a07061c"
        "08071e0907200a08220b09240c09260d0a290e0b2b100b2d110c2f120d31130d34140e36150e38160f3b"
        "180f3d19103f1a10421c10441d11471e114920114b21114e22115024125325125527125829115a2a115c"
        "2c115f2d11612f116331116533106734106936106b38106c390f6e3b0f703d0f713f0f72400f74420f75"
        "440f764510774710784910784a10794c117a4e117b4f127b51127c52137c54137d56147d57157e59157e"
        "5a167e5c167f5d177f5f187f601880621980641a80651a80671b80681c816a1c816b1d816d1d816e1e81"
        "701f81721f817320817521817621817822817922827b23827c23827e2482802582812581832681842681"
        "8627818827818928818b29818c29818e2a81902a81912b81932b80942c80962c80982d80992d809b2e7f"
        "9c2e7f9e2f7fa02f7fa1307ea3307ea5317ea6317da8327daa337dab337cad347cae347bb0357bb2357b"
        "b3367ab5367ab73779b83779ba3878bc3978bd3977bf3a77c03a76c23b75c43c75c53c74c73d73c83e73"
        "ca3e72cc3f71cd4071cf4070d0416fd2426fd3436ed5446dd6456cd8456cd9466bdb476adc4869de4968"
        "df4a68e04c67e24d66e34e65e44f64e55064e75263e85362e95462ea5661eb5760ec5860ed5a5fee5b5e"
        "ef5d5ef05f5ef1605df2625df2645cf3655cf4675cf4695cf56b5cf66c5cf66e5cf7705cf7725cf8745c"
        "f8765cf9785df9795df97b5dfa7d5efa7f5efa815ffb835ffb8560fb8761fc8961fc8a62fc8c63fc8e64"
        "fc9065fd9266fd9467fd9668fd9869fd9a6afd9b6bfe9d6cfe9f6dfea16efea36ffea571fea772fea973"
        "feaa74feac76feae77feb078feb27afeb47bfeb67cfeb77efeb97ffebb81febd82febf84fec185fec287"
        "fec488fec68afec88cfeca8dfecc8ffecd90fecf92fed194fed395fed597fed799fed89afdda9cfddc9e"
        "fddea0fde0a1fde2a3fde3a5fde5a7fde7a9fde9aafdebacfcecaefceeb0fcf0b2fcf2b4fcf4b6fcf6b8"
        "fcf7b9fcf9bbfcfbbdfcfdbf"
    ),
    "inferno": (
        "00000401000501010601010802010a02020c02020e03021004031204031405041706041907051b08051d"
        "09061f0a07220b07240c08260d08290e092b10092d110a30120a32140b34150b37160b39180c3c190c3e"
        "1b0c411c0c431e0c451f0c48210c4a230c4c240c4f260c51280b53290b552b0b572d0b592f0a5b310a5c"
        "320a5e340a5f3609613809623909633b09643d09653e0966400a67420a68440a68450a69470b6a490b6a"
        "4a0c6b4c0c6b4d0d6c4f0d6c510e6c520e6d540f6d550f6d57106e59106e5a116e5c126e5d126e5f136e"
        "61136e62146e64156e65156e67166e69166e6a176e6c186e6d186e6f196e71196e721a6e741a6e751b6e"
        "771c6d781c6d7a1d6d7c1d6d7d1e6d7f1e6c801f6c82206c84206b85216b87216b88226a8a226a8c2369"
        "8d23698f24699025689225689326679526679727669827669a28659b29649d29649f2a63a02a63a22b62"
        "a32c61a52c60a62d60a82e5fa92e5eab2f5ead305dae305cb0315bb1325ab3325ab43359b63458b73557"
        "b93556ba3655bc3754bd3853bf3952c03a51c13a50c33b4fc43c4ec63d4dc73e4cc83f4bca404acb4149"
        "cc4248ce4347cf4446d04545d24644d34743d44842d54a41d74b3fd84c3ed94d3dda4e3cdb503bdd513a"
        "de5238df5337e05536e15635e25734e35933e45a31e55c30e65d2fe75e2ee8602de9612bea632aeb6429"
        "eb6628ec6726ed6925ee6a24ef6c23ef6e21f06f20f1711ff1731df2741cf3761bf37819f47918f57b17"
        "f57d15f67e14f68013f78212f78410f8850ff8870ef8890cf98b0bf98c0af98e09fa9008fa9207fa9407"
        "fb9606fb9706fb9906fb9b06fb9d07fc9f07fca108fca309fca50afca60cfca80dfcaa0ffcac11fcae12"
        "fcb014fcb216fcb418fbb61afbb81dfbba1ffbbc21fbbe23fac026fac228fac42afac62df9c72ff9c932"
        "f9cb35f8cd37f8cf3af7d13df7d340f6d543f6d746f5d949f5db4cf4dd4ff4df53f4e156f3e35af3e55d"
        "f2e661f2e865f2ea69f1ec6df1ed71f1ef75f1f179f2f27df2f482f3f586f3f68af4f88ef5f992f6fa96"
        "f8fb9af9fc9dfafda1fcffa4"
    ),
    "plasma": (
        "0d088710078813078916078a19068c1b068d1d068e20068f2206902406912605912805922a05932c0594"
        "2e05952f059631059733059735049837049938049a3a049a3c049b3e049c3f049c41049d43039e44039e"
        "46039f48039f4903a04b03a14c02a14e02a25002a25102a35302a35502a45601a45801a45901a55b01a5"
        "5c01a65e01a66001a66100a76300a76400a76600a76700a86900a86a00a86c00a86e00a86f00a87100a8"
        "7201a87401a87501a87701a87801a87a02a87b02a87d03a87e03a88004a88104a78305a78405a78606a6"
        "8707a68808a68a09a58b0aa58d0ba58e0ca48f0da4910ea3920fa39410a29511a19613a19814a099159f"
        "9a169f9c179e9d189d9e199da01a9ca11b9ba21d9aa31e9aa51f99a62098a72197a82296aa2395ab2494"
        "ac2694ad2793ae2892b02991b12a90b22b8fb32c8eb42e8db52f8cb6308bb7318ab83289ba3388bb3488"
        "bc3587bd3786be3885bf3984c03a83c13b82c23c81c33d80c43e7fc5407ec6417dc7427cc8437bc9447a"
        "ca457acb4679cc4778cc4977cd4a76ce4b75cf4c74d04d73d14e72d24f71d35171d45270d5536fd5546e"
        "d6556dd7566cd8576bd9586ada5a6ada5b69db5c68dc5d67dd5e66de5f65de6164df6263e06363e16462"
        "e26561e26660e3685fe4695ee56a5de56b5de66c5ce76e5be76f5ae87059e97158e97257ea7457eb7556"
        "eb7655ec7754ed7953ed7a52ee7b51ef7c51ef7e50f07f4ff0804ef1814df1834cf2844bf3854bf3874a"
        "f48849f48948f58b47f58c46f68d45f68f44f79044f79143f79342f89441f89540f9973ff9983ef99a3e"
        "fa9b3dfa9c3cfa9e3bfb9f3afba139fba238fca338fca537fca636fca835fca934fdab33fdac33fdae32"
        "fdaf31fdb130fdb22ffdb42ffdb52efeb72dfeb82cfeba2cfebb2bfebd2afebe2afec029fdc229fdc328"
        "fdc527fdc627fdc827fdca26fdcb26fccd25fcce25fcd025fcd225fbd324fbd524fbd724fad824fada24"
        "f9dc24f9dd25f8df25f8e125f7e225f7e425f6e626f6e826f5e926f5eb27f4ed27f3ee27f3f027f2f227"
        "f1f426f1f525f0f724f0f921"
    ),
}

# Kenneth Moreland, "Diverging Color Maps for Scientific Visualization" (2009), the 33 published samples.
_COOLWARM_33 = (
    (59, 76, 192), (68, 90, 204), (77, 104, 215), (87, 117, 225), (98, 130, 234), (108, 142, 241),
    (119, 154, 247), (130, 165, 251), (141, 176, 254), (152, 185, 255), (163, 194, 255), (174, 201, 253),
    (184, 208, 249), (194, 213, 244), (204, 217, 238), (213, 219, 230), (221, 221, 221), (229, 216, 209),
    (236, 211, 197), (241, 204, 185), (245, 196, 173), (247, 187, 160), (247, 177, 148), (247, 166, 135),
    (244, 154, 123), (241, 141, 111), (236, 127, 99), (229, 112, 88), (222, 96, 77), (213, 80, 66),
    (203, 62, 56), (192, 40, 47), (180, 4, 38),
)  # fmt: skip


@cache
def _lut(name: str) -> np.ndarray:
    if name in _LUT_HEX:
        raw = bytes.fromhex(_LUT_HEX[name])
        table = np.frombuffer(raw, dtype=np.uint8).reshape(256, 3)
    elif name == "gray":
        ramp = np.arange(256, dtype=np.uint8)
        table = np.stack([ramp, ramp, ramp], axis=1)
    elif name == "coolwarm":
        anchors = np.asarray(_COOLWARM_33, dtype=np.float64)
        pos = np.linspace(0.0, 1.0, len(anchors))
        t = np.linspace(0.0, 1.0, 256)
        table = np.stack([np.interp(t, pos, anchors[:, k]) for k in range(3)], axis=1)
        table = np.round(table).astype(np.uint8)
    else:
        raise KeyError(name)
    table = np.ascontiguousarray(table)
    table.setflags(write=False)
    return table


def colormap_lut(name: str) -> np.ndarray:
    """The 256x3 uint8 lookup table of colormap ``name`` (read-only)."""
    if name not in COLORMAPS:
        raise CnnvizError(f"unknown colormap '{name}'; choose one of {', '.join(COLORMAPS)}")
    return _lut(name)


@lru_cache(maxsize=32)
def _rgba_table(cmap: str, background: tuple[int, ...]) -> np.ndarray:
    rgba = np.empty((257, 4), dtype=np.uint8)
    rgba[:256, :3] = colormap_lut(cmap)
    rgba[:256, 3] = 255
    rgba[256] = background
    table = rgba.view(np.uint32).reshape(257)
    table.setflags(write=False)
    return table


def apply_colormap(
    values: np.ndarray, cmap: str = "viridis", *, background: RGBA = (0, 0, 0, 0)
) -> np.ndarray:
    """Colour ``values`` (floats in [0, 1]; NaN = no data) -> uint8 RGBA array of the same height and width.

    NaN pixels (mosaic gaps, empty tiles) get ``background``; values outside [0, 1] are clamped.
    """
    table = _rgba_table(cmap, tuple(int(c) for c in background))
    v = np.asarray(values, dtype=np.float32)
    scaled = v * np.float32(255.0) + np.float32(0.5)
    nan = np.isnan(v)
    has_nan = bool(nan.any())
    if has_nan:
        scaled[nan] = 0.0
    np.clip(scaled, 0.0, 255.0, out=scaled)
    idx = scaled.astype(np.intp)
    if has_nan:
        idx[nan] = 256
    # One 32-bit gather per pixel: the table packs RGBA into uint32, entry 256 is the background.
    return table[idx].view(np.uint8).reshape(*v.shape, 4)


# --------------------------------------------------------------------------------------------------------------
# Normalisation


def to_maps(activation: Any) -> np.ndarray:
    """A layer output -> float32 ``(C, H, W)`` NumPy array (a copy or a view; never modify it).

    Accepts a torch tensor or array with a batch of one: ``1xCxHxW`` -> ``CxHxW``; a vector ``1xN`` ->
    ``N`` tiles of 1x1; a ``1xLxD`` sequence -> one ``LxD`` map; higher ranks fold the extra axes into channels.
    Tuples of outputs use the first.
    """
    if isinstance(activation, (tuple, list)):
        if not activation:
            raise CnnvizError("this layer has no output to show")
        activation = activation[0]
    if hasattr(activation, "detach"):
        activation = activation.detach()
        if getattr(activation, "dtype", None) is not None and not activation.is_floating_point():
            activation = activation.float()
        activation = activation.float().cpu().numpy()
    arr = np.asarray(activation)
    if arr.dtype != np.float32:
        arr = arr.astype(np.float32)
    if arr.ndim >= 2 and arr.shape[0] == 1:
        arr = arr[0]
    if arr.ndim == 0:
        return arr.reshape(1, 1, 1)
    if arr.ndim == 1:
        return arr.reshape(-1, 1, 1)
    if arr.ndim == 2:
        return arr[None]
    if arr.ndim == 3:
        return arr
    return arr.reshape(-1, arr.shape[-2], arr.shape[-1])


def value_ranges(
    maps: np.ndarray, mode: str = "channel", *, symmetric: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel ``(lo, hi)`` arrays (float64, length C) used to normalise ``maps`` (C, H, W).

    ``mode="layer"`` gives every channel the range of the whole layer. ``symmetric`` makes each range
    ``(-m, m)`` with ``m`` the largest absolute value, for diverging colormaps. Non-finite values are ignored.
    """
    if mode not in NORMALIZATIONS:
        raise CnnvizError(
            f"unknown normalisation '{mode}'; choose one of {', '.join(NORMALIZATIONS)}"
        )
    c = maps.shape[0]
    flat = maps.reshape(c, -1)
    finite = np.isfinite(flat)
    if not finite.all():
        lo = np.where(finite, flat, np.inf).min(axis=1).astype(np.float64)
        hi = np.where(finite, flat, -np.inf).max(axis=1).astype(np.float64)
        empty = ~finite.any(axis=1)
        lo[empty], hi[empty] = 0.0, 0.0
    elif flat.shape[1] == 0:
        lo = hi = np.zeros(c)
    else:
        lo = flat.min(axis=1).astype(np.float64)
        hi = flat.max(axis=1).astype(np.float64)
    if mode == "layer" and c:
        lo = np.full(c, lo.min())
        hi = np.full(c, hi.max())
    if symmetric:
        m = np.maximum(np.abs(lo), np.abs(hi))
        lo, hi = -m, m
    return lo, hi


def normalize(
    maps: np.ndarray, lo: np.ndarray, hi: np.ndarray, *, constant: float = 0.0
) -> np.ndarray:
    """``(maps - lo) / (hi - lo)`` per channel as float32 in [0, 1]; NaN stays NaN.

    A channel whose range is empty (a constant map, e.g. a dead ReLU) becomes ``constant`` (0 = the colormap's
    low end; 0.5 for diverging maps, where the constant is zero).
    """
    lo = np.asarray(lo, dtype=np.float64).reshape(-1, 1, 1)
    hi = np.asarray(hi, dtype=np.float64).reshape(-1, 1, 1)
    span = hi - lo
    flat_channel = span <= 0
    scale = np.where(flat_channel, 0.0, 1.0 / np.where(flat_channel, 1.0, span)).astype(np.float32)
    out = (maps - lo.astype(np.float32)) * scale
    if flat_channel.any():
        out[np.broadcast_to(flat_channel, out.shape) & ~np.isnan(out)] = constant
    np.clip(out, 0.0, 1.0, out=out)
    return out


# --------------------------------------------------------------------------------------------------------------
# Mosaic layout


def grid_shape(
    n: int, tile_h: int = 1, tile_w: int = 1, *, gap: int = 1, aspect: float = 1.0
) -> tuple[int, int]:
    """``(rows, cols)`` that tile ``n`` maps of ``tile_h x tile_w`` (with ``gap`` pixels between) into the
    rectangle closest to ``aspect`` (width / height); ties go to fewer empty slots."""
    if n <= 0:
        return (0, 0)
    cols = np.arange(1, n + 1)
    rows = -(-n // cols)
    width = cols * tile_w + (cols - 1) * gap
    height = rows * tile_h + (rows - 1) * gap
    score = np.abs(np.log((width / height) / aspect)) + 1e-3 * (rows * cols - n) / n
    best = int(np.argmin(score))
    c = int(cols[best])
    return (int(-(-n // c)), c)


@dataclass(frozen=True)
class MosaicLayout:
    """Where each channel of a layer sits in a mosaic: ``order[slot]`` is the channel drawn in slot ``slot``
    (slots run row by row). Pixel coordinates are mosaic pixels; pixel ``i`` spans ``[i, i + 1)``."""

    channels: int
    rows: int
    cols: int
    tile_h: int
    tile_w: int
    gap: int
    order: tuple[int, ...]
    _slots: dict[int, int] = field(default_factory=dict, repr=False, compare=False)

    def __post_init__(self) -> None:
        self._slots.update({ch: slot for slot, ch in enumerate(self.order)})

    @property
    def height(self) -> int:
        return max(0, self.rows * (self.tile_h + self.gap) - self.gap)

    @property
    def width(self) -> int:
        return max(0, self.cols * (self.tile_w + self.gap) - self.gap)

    def slot(self, channel: int) -> int:
        """The slot (row-major position) where ``channel`` is drawn."""
        return self._slots[int(channel)]

    def tile_origin(self, channel: int) -> tuple[int, int]:
        """Top-left mosaic pixel of ``channel``'s tile."""
        s = self.slot(channel)
        r, c = divmod(s, self.cols)
        return (r * (self.tile_h + self.gap), c * (self.tile_w + self.gap))

    def locate(self, y: float, x: float) -> tuple[int, int, int] | None:
        """Mosaic point ``(y, x)`` -> ``(channel, unit_y, unit_x)``, or None on a gap, an empty slot or outside."""
        if not (0 <= y < self.height and 0 <= x < self.width):
            return None
        yi, xi = int(math.floor(y)), int(math.floor(x))
        r, uy = divmod(yi, self.tile_h + self.gap)
        c, ux = divmod(xi, self.tile_w + self.gap)
        if uy >= self.tile_h or ux >= self.tile_w:
            return None
        s = r * self.cols + c
        if s >= len(self.order):
            return None
        return (self.order[s], uy, ux)

    def unit_rect(self, channel: int, y: int, x: int) -> tuple[int, int, int, int]:
        """Pixel-edge rectangle ``(y0, x0, y1, x1)`` of unit ``(y, x)`` of ``channel`` in the mosaic."""
        oy, ox = self.tile_origin(channel)
        return (oy + y, ox + x, oy + y + 1, ox + x + 1)


def mosaic_layout(
    channels: int,
    tile_h: int,
    tile_w: int,
    *,
    gap: int = 1,
    order: Sequence[int] | None = None,
    aspect: float = 1.0,
) -> MosaicLayout:
    """A near-square :class:`MosaicLayout` for ``channels`` tiles (``order`` permutes them; default 0..C-1)."""
    if order is None:
        order = range(channels)
    order = tuple(int(v) for v in order)
    if sorted(order) != list(range(channels)):
        raise ValueError("order must be a permutation of the channel indices")
    rows, cols = grid_shape(channels, tile_h, tile_w, gap=gap, aspect=aspect)
    return MosaicLayout(channels, rows, cols, tile_h, tile_w, gap, order)


def tile(values: np.ndarray, layout: MosaicLayout, fill: float = np.nan) -> np.ndarray:
    """Arrange ``values`` (C, H, W) into one ``layout.height x layout.width`` float32 image; gaps get ``fill``."""
    c, h, w = values.shape
    if (c, h, w) != (layout.channels, layout.tile_h, layout.tile_w):
        raise ValueError(f"values of shape {values.shape} do not match the layout")
    g = layout.gap
    slots = layout.rows * layout.cols
    block = np.full((slots, h + g, w + g), fill, dtype=np.float32)
    block[: len(layout.order), :h, :w] = values[list(layout.order)] if c else 0
    grid = block.reshape(layout.rows, layout.cols, h + g, w + g).transpose(0, 2, 1, 3)
    big = grid.reshape(layout.rows * (h + g), layout.cols * (w + g))
    return np.ascontiguousarray(big[: layout.height, : layout.width])


# --------------------------------------------------------------------------------------------------------------
# Feature mosaics


@dataclass
class FeatureMosaic:
    """One layer drawn as a single image.

    ``rgba`` (uint8, layout.height x layout.width x 4) is what the app shows; ``maps`` the (C, H, W) values;
    ``lo``/``hi`` the per-channel range each colour scale spans; ``channel`` is set when only that channel is shown.
    """

    rgba: np.ndarray
    layout: MosaicLayout
    maps: np.ndarray
    lo: np.ndarray
    hi: np.ndarray
    cmap: str
    norm: str
    channel: int | None = None

    def value_at(self, y: float, x: float) -> tuple[int, int, int, float] | None:
        """Mosaic point -> ``(channel, unit_y, unit_x, value)`` or None."""
        hit = self.layout.locate(y, x)
        if hit is None:
            return None
        ch, uy, ux = hit
        return (ch, uy, ux, float(self.maps[ch, uy, ux]))


def channel_means(maps: np.ndarray) -> np.ndarray:
    """Mean activation of each channel (non-finite values ignored)."""
    flat = maps.reshape(maps.shape[0], -1)
    if np.isfinite(flat).all():
        return flat.mean(axis=1, dtype=np.float64) if flat.shape[1] else np.zeros(maps.shape[0])
    return np.nanmean(np.where(np.isfinite(flat), flat, np.nan), axis=1)


def feature_mosaic(
    activation: Any,
    *,
    cmap: str = "viridis",
    norm: str = "channel",
    sort: bool = False,
    channel: int | None = None,
    gap: int | None = None,
    background: RGBA = (255, 255, 255, 255),
    aspect: float = 1.0,
) -> FeatureMosaic:
    """Draw every channel of a layer output as one near-square mosaic (or only ``channel``, enlarged).

    ``norm`` is ``"channel"`` or ``"layer"``; ``sort`` orders tiles by mean activation, highest first; diverging
    colormaps use ranges symmetric about zero. ``gap`` defaults to 1 pixel (0 for 1x1 tiles, i.e. vectors).
    """
    maps = to_maps(activation)
    c, h, w = maps.shape
    symmetric = cmap in DIVERGING
    lo, hi = value_ranges(maps, norm, symmetric=symmetric)
    if gap is None:
        gap = 0 if h * w == 1 else 1
    if channel is not None:
        if not 0 <= channel < c:
            raise CnnvizError(f"channel {channel} is outside this layer, which has {c} channels")
        shown = maps[channel : channel + 1]
        part = slice(channel, channel + 1)
        normed = normalize(shown, lo[part], hi[part], constant=0.5 if symmetric else 0.0)
        rgba = apply_colormap(normed[0], cmap, background=background)
        # One visible slot holding the real channel, so locate() answers with the real channel index.
        first = (channel,) + tuple(i for i in range(c) if i != channel)
        return FeatureMosaic(
            rgba, MosaicLayout(c, 1, 1, h, w, gap, first), maps, lo, hi, cmap, norm, channel
        )
    order: Sequence[int] | None = None
    if sort and c > 1:
        order = np.argsort(-channel_means(maps), kind="stable").tolist()
    layout = mosaic_layout(c, h, w, gap=gap, order=order, aspect=aspect)
    normed = normalize(maps, lo, hi, constant=0.5 if symmetric else 0.0)
    rgba = apply_colormap(tile(normed, layout), cmap, background=background)
    return FeatureMosaic(rgba, layout, maps, lo, hi, cmap, norm, None)


def heatmap_rgba(
    heat: np.ndarray, cmap: str = "inferno", *, alpha: float = 0.8, gamma: float = 0.5
) -> np.ndarray:
    """An effective-RF heatmap (H x W, >= 0) as RGBA whose opacity grows with the value (zero = transparent).

    Values are scaled by their maximum; ``gamma`` < 1 lifts weak gradients so the whole support is visible.
    """
    h = np.nan_to_num(np.asarray(heat, dtype=np.float32), nan=0.0, posinf=0.0, neginf=0.0)
    h = np.abs(h)
    peak = float(h.max()) if h.size else 0.0
    scaled = (h / peak) ** gamma if peak > 0 else np.zeros_like(h)
    rgba = apply_colormap(scaled, cmap)
    rgba[..., 3] = np.round(np.clip(scaled, 0.0, 1.0) * alpha * 255).astype(np.uint8)
    return rgba


# --------------------------------------------------------------------------------------------------------------
# Figures: a raster, vector shapes and a caption -> RGBA or SVG

HIGHLIGHT: RGBA = (50, 255, 50, 255)
"""Colour of the selected unit in feature maps (absent from every colormap offered)."""

RF_COLOR: RGBA = (255, 140, 0, 255)
"""Colour of receptive-field boxes."""

_SHADOW: RGBA = (0, 0, 0, 150)
_CAPTION_SIZE = 14
_CAPTION_LINE = 19
_CAPTION_PAD = 8


@dataclass
class Shape:
    """A vector mark on a figure. ``coords`` are ``(y0, x0, y1, x1)`` in figure pixels (pixel edges): the corners
    of a ``"rect"`` or the ends of a ``"line"``."""

    kind: str
    coords: tuple[float, float, float, float]
    color: RGBA
    width: float = 2.0
    dash: bool = False
    fill: RGBA | None = None
    title: str | None = None


@dataclass
class Figure:
    """A picture to export: ``image`` (uint8 RGBA), shapes drawn over it, caption lines under it, and text
    ``metadata`` stored in the file (PNG text chunks, SVG description)."""

    image: np.ndarray
    shapes: list[Shape] = field(default_factory=list)
    caption: list[str] = field(default_factory=list)
    metadata: dict[str, str] = field(default_factory=dict)


@lru_cache(maxsize=4)
def _font(size: int) -> Any:
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow without FreeType sizes
        return ImageFont.load_default()


def _caption_size(lines: Sequence[str]) -> tuple[int, int]:
    if not lines:
        return (0, 0)
    font = _font(_CAPTION_SIZE)
    width = max(int(math.ceil(font.getlength(line))) for line in lines) + 2 * _CAPTION_PAD
    return (width, len(lines) * _CAPTION_LINE + 2 * _CAPTION_PAD)


def _dashes(
    y0: float, x0: float, y1: float, x1: float, on: float, off: float
) -> Iterable[tuple[float, ...]]:
    length = math.hypot(y1 - y0, x1 - x0)
    if length == 0:
        return
    dy, dx = (y1 - y0) / length, (x1 - x0) / length
    pos = 0.0
    while pos < length:
        end = min(pos + on, length)
        yield (y0 + dy * pos, x0 + dx * pos, y0 + dy * end, x0 + dx * end)
        pos = end + off


def _dash_spans(a: int, b: int, on: int, off: int) -> Iterable[tuple[int, int]]:
    pos = a
    while pos <= b:
        yield (pos, min(pos + on - 1, b))
        pos += on + off


def _draw_shape(draw: ImageDraw.ImageDraw, shape: Shape) -> None:
    y0, x0, y1, x1 = shape.coords
    width = max(1, int(round(shape.width)))
    on, off = 3 * width + 3, 2 * width + 2
    if shape.kind != "rect":
        pieces = _dashes(y0, x0, y1, x1, on, off) if shape.dash else [(y0, x0, y1, x1)]
        for py0, px0, py1, px1 in pieces:
            draw.line([(px0, py0), (px1, py1)], fill=shape.color, width=width)
        return
    # Rectangles are drawn inside their pixel edges: the stroke covers pixels top..top+width-1, and so on.
    top, left = int(round(y0)), int(round(x0))
    bottom, right = int(round(y1)) - 1, int(round(x1)) - 1
    if bottom < top or right < left:
        return
    if shape.fill is not None:
        draw.rectangle([left, top, right, bottom], fill=shape.fill)
    if not shape.dash:
        draw.rectangle([left, top, right, bottom], outline=shape.color, width=width)
        return
    w1 = width - 1
    for a, b in _dash_spans(left, right, on, off):
        draw.rectangle([a, top, b, min(top + w1, bottom)], fill=shape.color)
        draw.rectangle([a, max(bottom - w1, top), b, bottom], fill=shape.color)
    for a, b in _dash_spans(top, bottom, on, off):
        draw.rectangle([left, a, min(left + w1, right), b], fill=shape.color)
        draw.rectangle([max(right - w1, left), a, right, b], fill=shape.color)


def render_figure(fig: Figure) -> np.ndarray:
    """Rasterise a figure: shapes drawn over the image, caption lines in a white band below -> uint8 RGBA."""
    base = Image.fromarray(np.ascontiguousarray(fig.image), "RGBA")
    if fig.shapes:
        overlay = Image.new("RGBA", base.size, (0, 0, 0, 0))
        draw = ImageDraw.Draw(overlay)
        for shape in fig.shapes:
            _draw_shape(draw, shape)
        base = Image.alpha_composite(base, overlay)
    if fig.caption:
        text_w, band = _caption_size(fig.caption)
        out = Image.new("RGBA", (max(base.width, text_w), base.height + band), (255, 255, 255, 255))
        out.paste(base, (0, 0))
        draw = ImageDraw.Draw(out)
        font = _font(_CAPTION_SIZE)
        for i, line in enumerate(fig.caption):
            draw.text(
                (_CAPTION_PAD, base.height + _CAPTION_PAD + i * _CAPTION_LINE),
                line,
                fill=(34, 34, 34, 255),
                font=font,
            )
        base = out
    return np.asarray(base)


def encode_png(rgba: np.ndarray, text: dict[str, str] | None = None) -> bytes:
    """PNG bytes of a uint8 RGBA/RGB/gray array, with ``text`` as PNG text chunks."""
    from PIL.PngImagePlugin import PngInfo

    info = PngInfo()
    for key, value in (text or {}).items():
        info.add_itxt(str(key), str(value))
    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(rgba)).save(
        buf, format="PNG", pnginfo=info, compress_level=6
    )
    return buf.getvalue()


def _svg_color(rgba: RGBA) -> tuple[str, float]:
    r, g, b, a = rgba
    return f"#{r:02x}{g:02x}{b:02x}", round(a / 255, 3)


def figure_to_svg(fig: Figure) -> str:
    """An SVG document: the raster embedded as PNG, shapes and caption as vector elements."""
    h, w = fig.image.shape[:2]
    text_w, band = _caption_size(fig.caption)
    total_w, total_h = max(w, text_w), h + band
    data = base64.b64encode(encode_png(fig.image)).decode("ascii")
    out = [
        '<?xml version="1.0" encoding="UTF-8"?>',
        f'<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink" '
        f'width="{total_w}" height="{total_h}" viewBox="0 0 {total_w} {total_h}">',
    ]
    title = fig.metadata.get("Title") or (fig.caption[0] if fig.caption else "cnnviz figure")
    out.append(f"<title>{escape(title)}</title>")
    if fig.metadata:
        desc = "\n".join(f"{k}: {v}" for k, v in fig.metadata.items())
        out.append(f"<desc>{escape(desc)}</desc>")
    out.append(f'<rect x="0" y="0" width="{total_w}" height="{total_h}" fill="#ffffff"/>')
    out.append(
        f'<image x="0" y="0" width="{w}" height="{h}" style="image-rendering:pixelated" '
        f'preserveAspectRatio="none" href="data:image/png;base64,{data}" xlink:href="data:image/png;base64,{data}"/>'
    )
    for shape in fig.shapes:
        stroke, stroke_op = _svg_color(shape.color)
        attrs = f'stroke="{stroke}" stroke-opacity="{stroke_op}" stroke-width="{shape.width:g}"'
        if shape.dash:
            attrs += f' stroke-dasharray="{3 * shape.width + 3:g} {2 * shape.width + 2:g}"'
        y0, x0, y1, x1 = (round(v, 3) for v in shape.coords)
        tip = f"<title>{escape(shape.title)}</title>" if shape.title else ""
        if shape.kind == "rect":
            if shape.fill is not None:
                fill, fill_op = _svg_color(shape.fill)
                attrs += f' fill="{fill}" fill-opacity="{fill_op}"'
            else:
                attrs += ' fill="none"'
            half = shape.width / 2
            out.append(
                f'<rect x="{x0 + half:g}" y="{y0 + half:g}" width="{max(x1 - x0 - shape.width, 0):g}" '
                f'height="{max(y1 - y0 - shape.width, 0):g}" {attrs}>{tip}</rect>'
            )
        else:
            out.append(
                f'<line x1="{x0:g}" y1="{y0:g}" x2="{x1:g}" y2="{y1:g}" {attrs}>{tip}</line>'
            )
    for i, line in enumerate(fig.caption):
        y = h + _CAPTION_PAD + i * _CAPTION_LINE + _CAPTION_SIZE
        out.append(
            f'<text x="{_CAPTION_PAD}" y="{y}" font-family="sans-serif" font-size="{_CAPTION_SIZE}" '
            f'fill="#222222" xml:space="preserve">{escape(line)}</text>'
        )
    out.append("</svg>")
    return "\n".join(out) + "\n"


# --------------------------------------------------------------------------------------------------------------
# The two exported pictures


def _fmt_num(v: Any) -> str:
    from fractions import Fraction

    if isinstance(v, Fraction):
        return str(v.numerator) if v.denominator == 1 else f"{v.numerator}/{v.denominator}"
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    return str(v)


def _pair_text(p: Sequence[Any]) -> str:
    a, b = (_fmt_num(v) for v in p)
    return a if a == b else f"{a}x{b}"


def shape_text(shape: Any) -> str:
    """An output shape without the batch axis, e.g. ``64x56x56`` (or the full shape when it is not batched)."""
    if shape is None:
        return "?"
    if isinstance(shape, list) and shape and isinstance(shape[0], (tuple, list)):
        return ", ".join(shape_text(s) for s in shape)
    dims = list(shape)
    if len(dims) > 1 and dims[0] == 1:
        dims = dims[1:]
    return "x".join(str(d) for d in dims)


def unit_caption(unit_box: Any) -> list[str]:
    """Caption lines describing a unit's receptive field (size r, stride S, padding P, boxes)."""
    y, x = unit_box.unit
    if unit_box.global_:
        lines = [f"unit (y={y}, x={x}) sees the whole input (global receptive field)"]
    else:
        lines = [
            f"unit (y={y}, x={x})   r = {_pair_text(unit_box.size)}   S = {_pair_text(unit_box.stride)}   "
            f"P = {_pair_text(unit_box.padding)}"
        ]
    box = list(unit_box.box)
    text = f"box on model input [top, left, bottom, right] = {box}"
    if unit_box.padding_fraction > 0:
        text += f", {unit_box.padding_fraction:.0%} in padding"
    lines.append(text)
    if unit_box.image_box is not None:
        lines.append(f"box in original-image pixels = {list(unit_box.image_box)}")
    return lines


def feature_grid_figure(
    mosaic: FeatureMosaic,
    *,
    caption: Sequence[str] = (),
    unit: tuple[int, int] | None = None,
    channel: int | None = None,
    target: int = 768,
    max_scale: int = 32,
    metadata: dict[str, str] | None = None,
) -> Figure:
    """A mosaic upscaled by a whole factor (pixels stay square and sharp), with unit ``(y, x)`` outlined in every
    tile (thicker in ``channel``)."""
    h, w = mosaic.rgba.shape[:2]
    scale = max(1, min(max_scale, target // max(h, w, 1)))
    image = np.repeat(np.repeat(mosaic.rgba, scale, axis=0), scale, axis=1)
    shapes: list[Shape] = []
    if unit is not None:
        layout = mosaic.layout
        visible = [mosaic.channel] if mosaic.channel is not None else list(layout.order)
        thin = 1.0 if scale >= 3 else 0.0
        for ch in visible:
            if ch == channel or mosaic.channel is not None:
                continue
            if thin:
                y0, x0, y1, x1 = layout.unit_rect(ch, *unit)
                shapes.append(
                    Shape("rect", (y0 * scale, x0 * scale, y1 * scale, x1 * scale), HIGHLIGHT, thin)
                )
        chosen = mosaic.channel if mosaic.channel is not None else channel
        if chosen is not None:
            y0, x0, y1, x1 = layout.unit_rect(chosen, *unit)
            pad = 2
            shapes.append(
                Shape(
                    "rect",
                    (y0 * scale - pad, x0 * scale - pad, y1 * scale + pad, x1 * scale + pad),
                    HIGHLIGHT,
                    2.0,
                    title=f"channel {chosen}, unit ({unit[0]}, {unit[1]})",
                )
            )
    return Figure(image, shapes, list(caption), dict(metadata or {}))


def _axis_index(
    coords: np.ndarray, scale: Any, offset: Any, n: int
) -> tuple[np.ndarray, np.ndarray]:
    """Original-image coordinates -> pixel indices of an axis mapped by ``orig = u * scale + offset``."""
    idx = np.floor((coords - float(offset)) / float(scale)).astype(np.int64)
    valid = (idx >= 0) & (idx < n)
    return np.clip(idx, 0, max(n - 1, 0)), valid


def rf_overlay_figure(
    display: np.ndarray,
    display_geometry: Any,
    geometry: Any,
    unit_box: Any,
    *,
    heatmap: np.ndarray | None = None,
    cmap: str = "inferno",
    caption: Sequence[str] = (),
    target: int = 768,
    metadata: dict[str, str] | None = None,
) -> Figure:
    """The original picture with a unit's receptive field: the theoretical box (dashed, reaching into the padding,
    drawn as a checkerboard outside the picture), its part inside the picture (solid and tinted), its centre, the
    model-input area (dotted) and, when given, the effective-RF ``heatmap`` (model-input pixels).

    ``display_geometry`` maps ``display`` pixels to original pixels; ``geometry`` maps model-input pixels to
    original pixels (both :class:`cnnviz.core.images.ImageGeometry`).
    """
    oh, ow = geometry.original_size
    ih, iw = geometry.input_size
    full = geometry.box_edges_to_original(tuple(unit_box.box))
    model_area = geometry.box_edges_to_original((0, 0, ih - 1, iw - 1))
    y_min = min(0.0, model_area[0], full[0])
    x_min = min(0.0, model_area[1], full[1])
    y_max = max(float(oh), model_area[2], full[2])
    x_max = max(float(ow), model_area[3], full[3])
    margin = 0.03 * max(y_max - y_min, x_max - x_min)
    y_min, x_min, y_max, x_max = y_min - margin, x_min - margin, y_max + margin, x_max + margin
    scale = target / max(y_max - y_min, x_max - x_min)
    ch = int(math.ceil((y_max - y_min) * scale))
    cw = int(math.ceil((x_max - x_min) * scale))
    ys = y_min + (np.arange(ch) + 0.5) / scale
    xs = x_min + (np.arange(cw) + 0.5) / scale

    img = display if display.ndim == 3 else np.repeat(display[:, :, None], 3, axis=2)
    dh, dw = img.shape[:2]
    dy, vy = _axis_index(ys, display_geometry.scale_y, display_geometry.offset_y, dh)
    dx, vx = _axis_index(xs, display_geometry.scale_x, display_geometry.offset_x, dw)
    # Outside the picture: a checkerboard, so padding reads as "no image here".
    checker = ((np.arange(ch)[:, None] // 8 + np.arange(cw)[None, :] // 8) % 2).astype(np.uint8)
    canvas = np.where(checker[:, :, None] == 1, np.uint8(150), np.uint8(115)).repeat(3, axis=2)
    inside = vy[:, None] & vx[None, :]
    picture = img[dy][:, dx, :3]
    canvas = np.where(inside[:, :, None], picture, canvas).astype(np.float32)

    if heatmap is not None:
        heat_rgba = heatmap_rgba(heatmap, cmap)
        hy, hvy = _axis_index(ys, geometry.scale_y, geometry.offset_y, ih)
        hx, hvx = _axis_index(xs, geometry.scale_x, geometry.offset_x, iw)
        layer = heat_rgba[hy][:, hx]
        alpha = layer[..., 3:4].astype(np.float32) / 255.0
        alpha *= (hvy[:, None] & hvx[None, :])[:, :, None]
        canvas = canvas * (1 - alpha) + layer[..., :3].astype(np.float32) * alpha
    rgba = np.empty((ch, cw, 4), dtype=np.uint8)
    rgba[..., :3] = np.clip(np.round(canvas), 0, 255).astype(np.uint8)
    rgba[..., 3] = 255

    def to_canvas(edges: Sequence[float]) -> tuple[float, float, float, float]:
        y0, x0, y1, x1 = edges
        return (
            (y0 - y_min) * scale,
            (x0 - x_min) * scale,
            (y1 - y_min) * scale,
            (x1 - x_min) * scale,
        )

    shapes = [
        Shape(
            "rect", to_canvas(model_area), (235, 235, 235, 220), 1.0, dash=True, title="model input"
        )
    ]
    inner = (
        max(full[0], model_area[0], 0.0),
        max(full[1], model_area[1], 0.0),
        min(full[2], model_area[2], float(oh)),
        min(full[3], model_area[3], float(ow)),
    )
    width = max(2.0, round(target / 300))
    outer = to_canvas(full)
    shapes.append(Shape("rect", outer, _SHADOW, width + 2, dash=False))
    shapes.append(
        Shape("rect", outer, RF_COLOR, width, dash=True, title="theoretical receptive field")
    )
    if inner[0] < inner[2] and inner[1] < inner[3]:
        fill = (RF_COLOR[0], RF_COLOR[1], RF_COLOR[2], 40)
        shapes.append(
            Shape(
                "rect",
                to_canvas(inner),
                RF_COLOR,
                width,
                fill=fill,
                title="part inside the picture",
            )
        )
    cy = (unit_box.box[0] + unit_box.box[2]) / 2
    cx = (unit_box.box[1] + unit_box.box[3]) / 2
    py, px = geometry.point_to_original(cy, cx)
    py, px = (py + 0.5 - y_min) * scale, (px + 0.5 - x_min) * scale
    arm = max(6.0, 0.02 * max(ch, cw))
    for seg in ((py - arm, px, py + arm, px), (py, px - arm, py, px + arm)):
        shapes.append(Shape("line", seg, _SHADOW, width + 2))
        shapes.append(Shape("line", seg, RF_COLOR, width, title="centre"))
    return Figure(rgba, shapes, list(caption), dict(metadata or {}))
