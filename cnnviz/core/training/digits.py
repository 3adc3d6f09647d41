"""Synthetic handwritten-style digits rendered from the fonts shipped in resources/fonts.

The generator works in two stages so that tens of thousands of images take seconds on two cores:

1. A *glyph bank*: every digit of every font is rendered once with PIL (plain and bold stroke), cropped to
   its ink and centred on a square canvas.
2. Per-sample augmentation done batch-wise in torch: a random affine map (rotation, shear, aspect, scale,
   position), an elastic displacement field, stroke thinning/thickening (min/max pooling), blur,
   contrast, background level, noise and occasional black bands like those letterboxing leaves.

Images are light ink on a dark background (the MNIST convention), values in [0, 1].
Everything is drawn from a ``torch.Generator`` seeded per chunk, so the same ``(n, fonts, seed, size)``
always gives the same images, whatever the number of threads.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageDraw, ImageFilter, ImageFont
from torch.utils.data import Dataset

from cnnviz.core.budget import check_fits
from cnnviz.core.errors import CnnvizError

DIGIT_LABELS: tuple[str, ...] = tuple(str(d) for d in range(10))

# Fonts used to render training digits (paths relative to resources/fonts).
TRAIN_FONTS: tuple[str, ...] = (
    "tex-gyre/texgyreheros-regular.otf",
    "tex-gyre/texgyreheros-bold.otf",
    "tex-gyre/texgyreadventor-bold.otf",
    "tex-gyre/texgyretermes-regular.otf",
    "tex-gyre/texgyretermes-bold.otf",
    "tex-gyre/texgyrebonum-bold.otf",
    "tex-gyre/texgyrecursor-regular.otf",
    "tex-gyre/texgyrecursor-bold.otf",
    "tex-gyre/texgyrechorus-mediumitalic.otf",
    "cabin/Cabin-Regular.otf",
    "cabin/Cabin-BoldItalic.otf",
    "cantarell/Cantarell-Regular.otf",
    "cantarell/Cantarell-ExtraBold.otf",
    "dosis/Dosis-Book.otf",
    "dosis/Dosis-ExtraBold.otf",
    "league-spartan/LeagueSpartan-Bold.otf",
    "league-spartan/LeagueSpartan-Light.otf",
    "karla/Karla-Regular.otf",
    "karla/Karla-BoldItalic.otf",
    "quicksand/Quicksand-Regular.ttf",
    "opendyslexic/OpenDyslexic-Regular.otf",
    "averia/AveriaSerifGWF-Bold.ttf",
    "caladea/Caladea-Regular.ttf",
    "caladea/Caladea-BoldItalic.ttf",
    "mononoki/mononoki-Regular.ttf",
    "mononoki/mononoki-Bold-Italic.ttf",
    "comic-neue/ComicNeue-Regular.otf",
    "comic-neue/ComicNeue-Bold.otf",
    "comic-neue/ComicNeue-LightItalic.otf",
    "dkg-handwriting/dkg.ttf",
    "dkg-handwriting/dkgBd.ttf",
    "breip/Breip.ttf",
    "bwht/BecauseWeBuild-Regular.otf",
    "bwht/BecauseWeCreate-Regular.otf",
    "bwht/BecauseWeLearn-Regular.otf",
    "bwht/BecauseWeMentor-Regular.otf",
    "bwht/BecauseWeOrganize-Regular.otf",
    "kristi/Kristi.ttf",
    "dancing-script/DancingScript-Regular.otf",
    "dancing-script/DancingScript-Bold.otf",
    "kaushan-script/KaushanScript-Regular.otf",
    "havana/Havana-Regular.otf",
    "junction/Junction.otf",
    "leckerli-one/LeckerliOne-Regular.ttf",
    "lobster/lobster.otf",
)

# Fonts never used for training: accuracy on them measures generalisation to unseen typefaces.
HELDOUT_FONTS: tuple[str, ...] = (
    "tex-gyre/texgyrepagella-regular.otf",
    "caladea/Caladea-Bold.ttf",
    "inconsolata/Inconsolata.otf",
    "manrope/Manrope-Bold.ttf",
    "quicksand/Quicksand-Bold.ttf",
    "humor-sans/Humor-Sans.ttf",
    "bwht/BecauseWeConnect-Regular.otf",
    "tomson-talks/TomsonTalks.ttf",
)

_CANVAS = 96  # glyph bank canvas side (pixels)
_GLYPH_BOX = 64  # the glyph's longer side on that canvas
_RENDER_SIZE = 96  # font size used when rasterising
_CHUNK = 512  # samples drawn from one generator; fixed so results don't depend on n


def fonts_dir() -> Path:
    """The folder holding the shipped fonts (resources/fonts)."""
    return Path(str(resources.files("cnnviz.resources"))) / "fonts"


def font_paths(fonts: str | Sequence[str | Path] = "train") -> list[Path]:
    """Resolve ``"train"``, ``"heldout"``, ``"all"`` or a list of font files to absolute paths."""
    if isinstance(fonts, str):
        if fonts == "train":
            names: Sequence[str | Path] = TRAIN_FONTS
        elif fonts == "heldout":
            names = HELDOUT_FONTS
        elif fonts == "all":
            names = TRAIN_FONTS + HELDOUT_FONTS
        else:
            raise CnnvizError(
                f"Unknown font set {fonts!r}: use 'train', 'heldout', 'all' or a list of font files."
            )
    else:
        names = fonts
    base = fonts_dir()
    paths = [p if Path(p).is_absolute() else base / p for p in map(Path, names)]
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        raise CnnvizError(
            f"Font file {missing[0]} does not exist: reinstall cnnviz or pass existing font files."
        )
    if not paths:
        raise CnnvizError("No fonts given: pass at least one font file to render digits.")
    return paths


def _stroke_thickness(ink: np.ndarray) -> float:
    """Mean stroke thickness of a binary glyph in pixels: twice the area over the perimeter."""
    area = float(ink.sum())
    edges = (ink[1:, :] != ink[:-1, :]).sum() + (ink[:, 1:] != ink[:, :-1]).sum()
    return 2.0 * area / max(float(edges), 1.0)


def _fit_canvas(img: Image.Image) -> np.ndarray:
    """Crop to the ink, scale the longer side to _GLYPH_BOX and centre on a _CANVAS square (float32 0..1)."""
    box = img.getbbox()
    assert box is not None
    glyph = img.crop(box)
    w, h = glyph.size
    scale = _GLYPH_BOX / max(w, h)
    nw, nh = max(1, round(w * scale)), max(1, round(h * scale))
    glyph = glyph.resize((nw, nh), Image.Resampling.LANCZOS)
    canvas = Image.new("L", (_CANVAS, _CANVAS), 0)
    canvas.paste(glyph, ((_CANVAS - nw) // 2, (_CANVAS - nh) // 2))
    return np.asarray(canvas, dtype=np.float32) / 255.0


def _render_glyph(font: ImageFont.FreeTypeFont, digit: str) -> tuple[np.ndarray, np.ndarray]:
    """One digit, white on black, in its own weight and in a contrasting weight (bolder or thinner)."""
    big = _RENDER_SIZE * 2

    def draw(stroke: int) -> Image.Image:
        img = Image.new("L", (big, big), 0)
        ImageDraw.Draw(img).text(
            (big // 2, big // 2),
            digit,
            font=font,
            fill=255,
            anchor="mm",
            stroke_width=stroke,
            stroke_fill=255,
        )
        return img

    plain = draw(0)
    if plain.getbbox() is None:
        raise CnnvizError(
            f"The font {font.path!s} has no visible glyph for {digit!r}: remove it from the font list."
        )
    # Thickness relative to the glyph's size decides whether the second variant is bolder or thinner.
    fitted = _fit_canvas(plain)
    thickness = _stroke_thickness(fitted > 0.5)
    if thickness < 6.0:
        other = draw(4)
    elif thickness < 9.0:
        other = draw(2)
    else:
        other = plain.filter(ImageFilter.MinFilter(5))
        if other.getbbox() is None:
            other = plain
    return fitted, _fit_canvas(other)


@lru_cache(maxsize=8)
def _glyph_bank_cached(paths: tuple[str, ...]) -> tuple[torch.Tensor, torch.Tensor]:
    glyphs: list[np.ndarray] = []
    labels: list[int] = []
    for path in paths:
        try:
            font = ImageFont.truetype(path, _RENDER_SIZE)
        except OSError as exc:
            raise CnnvizError(
                f"Cannot read the font file {path} ({exc}): pass a TrueType/OpenType font."
            ) from exc
        for d in range(10):
            glyphs.extend(_render_glyph(font, str(d)))
            labels.extend((d, d))
    bank = torch.from_numpy(np.stack(glyphs)).unsqueeze(1)
    return bank, torch.tensor(labels, dtype=torch.int64)


def glyph_bank(fonts: str | Sequence[str | Path] = "train") -> tuple[torch.Tensor, torch.Tensor]:
    """Every digit of every font in two weights: (glyphs Nx1xSxS float in [0,1], labels N)."""
    return _glyph_bank_cached(tuple(str(p) for p in font_paths(fonts)))


@dataclass(frozen=True)
class DigitAugment:
    """Ranges of the random augmentation (uniform unless stated)."""

    rotation_deg: float = 18.0
    shear: float = 0.35
    aspect: float = 0.25  # log-uniform width/height ratio within exp(+-aspect)
    height_frac: tuple[float, float] = (0.4, 0.95)  # digit height as a fraction of the image height
    elastic: float = 0.06  # displacement std in normalised glyph coordinates
    morph_probs: tuple[float, ...] = (
        0.12,
        0.2,
        0.3,
        0.2,
        0.12,
        0.06,
    )  # erode2, erode1, none, dilate1..3
    blur_sigma: tuple[float, float] = (0.0, 1.0)
    ink: tuple[float, float] = (0.65, 1.0)
    background: tuple[float, float] = (0.0, 0.25)
    noise: tuple[float, float] = (0.0, 0.06)
    band_prob: float = 0.15  # chance of black bands on two sides, as letterboxing leaves


def _dilate(x: torch.Tensor) -> torch.Tensor:
    """3x3 grey-level dilation of N x 1 x H x W images (separable max of shifted copies)."""
    p = F.pad(x, (1, 1, 1, 1), mode="replicate")
    rows = torch.maximum(torch.maximum(p[..., :, :-2], p[..., :, 1:-1]), p[..., :, 2:])
    return torch.maximum(torch.maximum(rows[..., :-2, :], rows[..., 1:-1, :]), rows[..., 2:, :])


def _uniform(g: torch.Generator, n: int, lo: float, hi: float) -> torch.Tensor:
    return lo + (hi - lo) * torch.rand(n, generator=g)


def _augment_chunk(
    bank: torch.Tensor,
    bank_labels: torch.Tensor,
    n: int,
    size: tuple[int, int],
    aug: DigitAugment,
    g: torch.Generator,
) -> tuple[torch.Tensor, torch.Tensor]:
    height, width = size
    digits = torch.randint(0, 10, (n,), generator=g)
    # Pick a glyph of the wanted digit: bank entries are grouped as [font][digit][stroke].
    per_font = 20
    n_fonts = bank.shape[0] // per_font
    font_idx = torch.randint(0, n_fonts, (n,), generator=g)
    stroke_idx = torch.randint(0, 2, (n,), generator=g)
    idx = font_idx * per_font + digits * 2 + stroke_idx
    src = bank[idx]
    labels = bank_labels[idx]

    # Render at twice the output resolution, then average-pool: cheap anti-aliasing.
    oh, ow = 2 * height, 2 * width
    frac = _uniform(g, n, *aug.height_frac)
    log_aspect = _uniform(g, n, -aug.aspect, aug.aspect)
    sx = torch.exp(log_aspect / 2)
    sy = torch.exp(-log_aspect / 2)
    rot = _uniform(g, n, -aug.rotation_deg, aug.rotation_deg) * math.pi / 180
    shear = _uniform(g, n, -aug.shear, aug.shear)
    # Glyph occupies +-(_GLYPH_BOX/_CANVAS) of the source canvas in normalised coords; map that to +-frac
    # of the output height (output normalised coords are per-axis, so correct for the frame's aspect).
    glyph_half = _GLYPH_BOX / _CANVAS
    k = glyph_half / frac
    cos, sin = torch.cos(rot), torch.sin(rot)
    # Forward map glyph->output is M = S_aspect * Shear * R; grid_sample needs its inverse, output->glyph.
    a11, a12, a21, a22 = (
        cos * sx + shear * sin * sx,
        -sin * sx + shear * cos * sx,
        sin * sy,
        cos * sy,
    )
    det = a11 * a22 - a12 * a21
    inv = (
        torch.stack([torch.stack([a22, -a12], -1), torch.stack([-a21, a11], -1)], -2)
        / det[:, None, None]
    )
    frame = torch.tensor([[width / height, 0.0], [0.0, 1.0]])
    lin = k[:, None, None] * inv @ frame
    # Position jitter: keep the digit's box (about frac of the height) inside the frame.
    room_y = (1 - frac).clamp(min=0)
    room_x = (1 - frac * height / width * 0.7).clamp(min=0)
    ty = _uniform(g, n, -1, 1) * room_y
    tx = _uniform(g, n, -1, 1) * room_x
    offset = -(lin @ torch.stack([tx, ty], -1)[:, :, None])
    theta = torch.cat([lin, offset], dim=2)
    grid = F.affine_grid(theta, [n, 1, oh, ow], align_corners=False)
    # Elastic: a smooth random displacement field, a coarse 4x4 noise upsampled to the output grid.
    strength = _uniform(g, n, 0, aug.elastic)[:, None, None, None]
    coarse = torch.randn(n, 2, 4, 4, generator=g) * strength
    field = F.interpolate(coarse, size=(oh, ow), mode="bilinear", align_corners=True)
    grid = grid + field.permute(0, 2, 3, 1)
    x = F.grid_sample(src, grid, mode="bilinear", padding_mode="zeros", align_corners=False)

    # Stroke width: erode or dilate a few pixels. Thickening is limited for small or already bold glyphs,
    # which would otherwise fill their holes and stop being readable.
    probs = torch.tensor(aug.morph_probs, dtype=torch.float32)
    level = torch.multinomial(probs, n, replacement=True, generator=g) - 2
    max_level = (frac * 4 - 1).floor().clamp(min=0) - stroke_idx
    level = torch.minimum(level, max_level.to(level.dtype).clamp(min=0))
    plain = x.clone()
    for step in (1, 2, 3):
        grow = level >= step
        if bool(grow.any()):
            x[grow] = _dilate(x[grow])
        shrink = level <= -step
        if bool(shrink.any()):
            x[shrink] = -_dilate(-x[shrink])
    # Erosion can wipe out thin strokes entirely; fall back to the unmodified glyph then.
    faint = x.flatten(1).sum(1) < 0.4 * plain.flatten(1).sum(1)
    x = torch.where(faint[:, None, None, None], plain, x)
    x = F.avg_pool2d(x, 2)

    # Blur with a per-sample Gaussian kernel (grouped convolution, one group per sample).
    sigma = _uniform(g, n, *aug.blur_sigma).clamp(min=1e-3)
    r = torch.arange(-2, 3, dtype=torch.float32)
    k1 = torch.exp(-(r[None, :] ** 2) / (2 * sigma[:, None] ** 2))
    k1 = k1 / k1.sum(1, keepdim=True)
    k2 = (k1[:, :, None] * k1[:, None, :]).unsqueeze(1)
    x = F.conv2d(F.pad(x.transpose(0, 1), (2, 2, 2, 2), mode="replicate"), k2, groups=n).transpose(
        0, 1
    )

    # Scale ink to its own peak so faint glyphs still reach the chosen ink level.
    peak = x.flatten(1).amax(1).clamp(min=1e-3)[:, None, None, None]
    x = (x / peak).clamp(0, 1)
    ink = _uniform(g, n, *aug.ink)[:, None, None, None]
    bg = _uniform(g, n, *aug.background)[:, None, None, None]
    bg = torch.minimum(bg, ink - 0.45)
    x = bg + (ink - bg) * x
    noise = _uniform(g, n, *aug.noise)[:, None, None, None]
    x = x + noise * torch.randn(x.shape, generator=g)

    # Letterbox-like bands: zero a random margin on two opposite sides.
    band = torch.rand(n, generator=g) < aug.band_prob
    vertical = torch.rand(n, generator=g) < 0.5
    # The band stops short of the digit: its room is what lies between the digit's box and the edge.
    room_band_y = ((1 - ty.abs()) - frac).clamp(min=0) / 2
    room_band_x = ((1 - tx.abs()) - frac * height / width * 0.7).clamp(min=0) / 2
    margin = torch.rand(n, generator=g) * torch.where(vertical, room_band_x, room_band_y)
    ys = (torch.arange(height, dtype=torch.float32) + 0.5) / height
    xs = (torch.arange(width, dtype=torch.float32) + 0.5) / width
    in_y = ((ys[None, :] >= margin[:, None]) & (ys[None, :] <= 1 - margin[:, None]))[:, :, None]
    in_x = ((xs[None, :] >= margin[:, None]) & (xs[None, :] <= 1 - margin[:, None]))[:, None, :]
    keep = torch.where(
        vertical[:, None, None], in_x.expand(n, height, width), in_y.expand(n, height, width)
    )
    keep = keep | ~band[:, None, None]
    x = torch.where(keep[:, None], x, torch.zeros_like(x))
    return (x.clamp(0, 1) * 255).round().to(torch.uint8), labels


# Rendering works on one chunk at a time, at twice the resolution, in float32: measured 130-250 bytes per
# output pixel and sample (grids, displacement field, stroke copies), so 256 is a safe upper figure.
_CHUNK_BYTES_PER_PIXEL = 256


def digits_bytes(n: int, size: tuple[int, int]) -> int:
    """Memory :func:`generate_digits` needs: the uint8 images and one chunk's rendering work."""
    pixels = int(size[0]) * int(size[1])
    return n * pixels + min(n, _CHUNK) * pixels * _CHUNK_BYTES_PER_PIXEL


def generate_digits(
    n: int,
    fonts: str | Sequence[str | Path] = "train",
    seed: int = 0,
    size: tuple[int, int] = (28, 28),
    augment: DigitAugment | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Render ``n`` augmented digits: (uint8 images n x 1 x H x W, light on dark; int64 labels 0-9).

    Deterministic in ``(n, fonts, seed, size, augment)``; the first k images do not depend on ``n``.
    ``progress(done, n)`` is called after every chunk of images.
    """
    if n < 0:
        raise CnnvizError(f"Cannot generate {n} digits: the number of images must be zero or more.")
    height, width = int(size[0]), int(size[1])
    if height < 8 or width < 8:
        raise CnnvizError(
            f"Digit images of {height}×{width} are too small to read: use at least 8×8."
        )
    check_fits(
        digits_bytes(n, (height, width)),
        f"{n:,} synthetic digits of {width}×{height}",
        advice="use a smaller size (the digits model takes 28x28) or fewer images",
    )
    aug = augment or DigitAugment()
    bank, bank_labels = glyph_bank(fonts)
    images = torch.empty((n, 1, height, width), dtype=torch.uint8)
    labels = torch.empty(n, dtype=torch.int64)
    with torch.no_grad():
        for chunk, start in enumerate(range(0, n, _CHUNK)):
            g = torch.Generator().manual_seed(int(seed) * 1_000_003 + chunk)
            imgs, labs = _augment_chunk(bank, bank_labels, _CHUNK, (height, width), aug, g)
            stop = min(n, start + _CHUNK)
            images[start:stop] = imgs[: stop - start]
            labels[start:stop] = labs[: stop - start]
            if progress is not None:
                progress(stop, n)
    return images, labels


class SyntheticDigits(Dataset):
    """``n`` synthetic digits as a torch Dataset of (float tensor 1xHxW in [0, 1], label).

    ``fonts`` is "train", "heldout", "all" or a list of font files; images are pre-generated on
    construction (``.images`` uint8, ``.labels`` int64).
    """

    classes: list[str] = list(DIGIT_LABELS)

    def __init__(
        self,
        n: int,
        fonts: str | Sequence[str | Path] = "train",
        seed: int = 0,
        size: tuple[int, int] = (28, 28),
        augment: DigitAugment | None = None,
    ) -> None:
        self.images, self.labels = generate_digits(n, fonts, seed, size, augment)

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        return self.images[i].float() / 255.0, int(self.labels[i])

    def as_float(self) -> torch.Tensor:
        """All images as one float tensor (n x 1 x H x W, values in [0, 1])."""
        return self.images.float() / 255.0


def _arc(
    cx: float, cy: float, rx: float, ry: float, a0: float, a1: float, n: int = 24
) -> list[tuple[float, float]]:
    return [
        (
            cx + rx * math.cos(math.radians(a0 + (a1 - a0) * i / (n - 1))),
            cy + ry * math.sin(math.radians(a0 + (a1 - a0) * i / (n - 1))),
        )
        for i in range(n)
    ]


def _strokes(digit: int, rnd: np.random.Generator) -> list[list[tuple[float, float]]]:
    """Pen strokes of a digit in a unit box (y down), with a little random variation in shape."""

    def j() -> float:
        return float(rnd.uniform(-0.03, 0.03))

    if digit == 0:
        return [_arc(0.5, 0.5, 0.3 + j(), 0.45, -90, 275 + float(rnd.uniform(-10, 10)), 40)]
    if digit == 1:
        strokes = [[(0.52 + j(), 0.05), (0.5 + j(), 0.95)]]
        if rnd.random() < 0.6:
            strokes.append([(0.3, 0.25 + j()), (0.52, 0.05)])
        if rnd.random() < 0.3:
            strokes.append([(0.3, 0.95), (0.72, 0.95)])
        return strokes
    if digit == 2:
        return [
            _arc(0.5, 0.3, 0.3, 0.25, -170, 20) + [(0.18 + j(), 0.93), (0.85 + j(), 0.93 + j())]
        ]
    if digit == 3:
        return [_arc(0.5, 0.28, 0.27, 0.23, -160, 90) + _arc(0.5, 0.72, 0.3, 0.25, -90, 160)]
    if digit == 4:
        if rnd.random() < 0.5:
            return [[(0.65, 0.95), (0.65 + j(), 0.05), (0.15, 0.65), (0.85, 0.65)]]
        return [[(0.3 + j(), 0.05), (0.2, 0.6), (0.85, 0.6)], [(0.7 + j(), 0.25), (0.7, 0.95)]]
    if digit == 5:
        return [
            [(0.78, 0.05 + j()), (0.3, 0.05), (0.27, 0.45)] + _arc(0.5, 0.66, 0.3, 0.28, -150, 150)
        ]
    if digit == 6:
        return [_arc(0.7, 0.62, 0.45, 0.56, -95, -180) + _arc(0.5, 0.7, 0.25, 0.23, 180, 540)]
    if digit == 7:
        strokes = [[(0.15, 0.05 + j()), (0.85, 0.05), (0.4 + j(), 0.95)]]
        if rnd.random() < 0.3:
            strokes.append([(0.35, 0.5), (0.8, 0.5)])
        return strokes
    if digit == 8:
        return [_arc(0.5, 0.28, 0.22, 0.22, 90, 450), _arc(0.5, 0.72, 0.28, 0.25, -90, 270)]
    if digit == 9:
        return [_arc(0.5, 0.3, 0.25, 0.23, 0, 360) + [(0.75, 0.3), (0.68 + j(), 0.95)]]
    raise CnnvizError(f"{digit!r} is not a digit: use 0 to 9.")


def sketch_digit(
    digit: int,
    seed: int | np.random.Generator = 0,
    size: tuple[int, int] = (128, 128),
    *,
    dark_on_light: bool = True,
) -> Image.Image:
    """A hand-drawn-looking digit: pen strokes drawn with PIL lines, jittered, slanted and rotated.

    Independent of the fonts (useful to check a model on something it was not trained on).
    ``size`` is (height, width). Dark ink on light paper by default, like a scan or a drawing app.
    """
    rnd = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    height, width = int(size[0]), int(size[1])
    paper = int(rnd.integers(200, 256))
    ink = int(rnd.integers(0, 71))
    if not dark_on_light:
        paper, ink = 255 - paper, 255 - ink
    img = Image.new("L", (width, height), paper)
    draw = ImageDraw.Draw(img)
    frac = float(rnd.uniform(0.5, 0.9))
    h = min(frac * height, frac * width / 0.7)
    w = h * float(rnd.uniform(0.6, 0.8))
    cx = width / 2 + float(rnd.uniform(-1, 1)) * (width - w) * 0.3
    cy = height / 2 + float(rnd.uniform(-1, 1)) * (height - h) * 0.3
    rot = math.radians(float(rnd.uniform(-12, 12)))
    shear = float(rnd.uniform(-0.25, 0.25))
    pen = max(1, round(float(rnd.uniform(0.05, 0.13)) * h))
    for stroke in _strokes(int(digit), rnd):
        pts = []
        for x, y in stroke:
            x, y = (
                x - 0.5 + float(rnd.uniform(-0.01, 0.01)),
                y - 0.5 + float(rnd.uniform(-0.01, 0.01)),
            )
            x = x + shear * y
            pts.append(
                (
                    (x * math.cos(rot) - y * math.sin(rot)) * w + cx,
                    (x * math.sin(rot) + y * math.cos(rot)) * h + cy,
                )
            )
        draw.line(pts, fill=ink, width=pen, joint="curve")
        r = pen / 2
        for px, py in (pts[0], pts[-1]):  # round pen ends
            draw.ellipse([px - r, py - r, px + r, py + r], fill=ink)
    if rnd.random() < 0.3:
        img = img.filter(ImageFilter.GaussianBlur(float(rnd.uniform(0.3, 1.5))))
    return img
