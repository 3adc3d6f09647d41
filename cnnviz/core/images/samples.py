"""The bundled sample pictures: the one shown before the user opens one (or one drawn on the spot), and the
catalogue that ``cnnviz samples`` lists and copies."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from cnnviz.core.errors import CnnvizError


def default_sample(channels: int) -> Path | None:
    """The sample picture shown at start-up: a digit for one-channel models, a photo for colour models."""
    from cnnviz.core.resources import sample_images

    samples = sample_images()
    digits = [p for p in samples if p.parent.name == "digits"]
    photos = [p for p in samples if p.parent.name != "digits"]
    preferred = digits if channels == 1 else photos
    pool = preferred or samples
    return pool[0] if pool else None


def fallback_picture(channels: int) -> Image.Image:
    """A picture to start with when no samples are installed: a large printed 3 (or a colour gradient)."""
    if channels == 1:
        im = Image.new("L", (112, 112), 255)
        draw = ImageDraw.Draw(im)
        try:
            font = ImageFont.load_default(size=90)
        except TypeError:
            font = ImageFont.load_default()
        draw.text((56, 56), "3", fill=0, font=font, anchor="mm")
        return im
    y, x = np.mgrid[0:224, 0:224]
    rgb = np.stack([x, y, 224 - x], axis=2).astype(np.float32) / 224 * 255
    return Image.fromarray(rgb.astype(np.uint8))


# --------------------------------------------------------------------------------------------------------------
# The catalogue of bundled pictures (`cnnviz samples`)

PHOTO_SUBJECTS: dict[str, str] = {
    "astronaut": "astronaut Eileen Collins (NASA, public domain)",
    "camera": "a cameraman with his camera, grey (Lav Varshney, CC0)",
    "chelsea": "Chelsea the cat, close up (Stefan van der Walt, CC0)",
    "coffee": "a cup of coffee on a saucer (Rachel Michetti, CC0)",
    "rocket": "a Falcon 9 rocket lifting off (SpaceX, public domain)",
}
"""What each bundled photo shows, with its author and licence (resources/LICENSES.md has the details)."""


@dataclass(frozen=True)
class Sample:
    """One bundled picture: ``name`` is its path inside the samples folder (``photos/chelsea.jpg``)."""

    name: str
    path: Path
    kind: str
    width: int
    height: int
    size: int
    shows: str

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": self.kind,
            "width": self.width,
            "height": self.height,
            "bytes": self.size,
            "shows": self.shows,
            "path": str(self.path),
        }


def _digit_shows(stem: str) -> str:
    """``digit_2_font-humor-sans_light-64x64`` -> what the picture shows, in words."""
    parts = stem.split("_")
    if len(parts) < 4 or parts[0] != "digit":
        return "a digit"
    label, how, ink = parts[1], parts[2], parts[3].split("-")[0]
    if how.startswith("font-"):
        font = how[len("font-") :].replace("-", " ").title()
        how_text = f"printed in the {font} font, which the bundled model never saw in training"
    else:
        how_text = "drawn with pen strokes"
    ink_text = "dark ink on light paper" if ink == "dark" else "light ink on dark paper"
    return f"the digit {label}, {how_text}; {ink_text}"


def sample_catalogue() -> list[Sample]:
    """Every bundled sample picture, digits first, each with its size in pixels and bytes and what it shows."""
    from cnnviz.core.resources import resource_path, sample_images

    root = resource_path("samples")
    out = []
    for path in sample_images():
        with Image.open(path) as im:  # reads the header only
            width, height = im.size
        kind = path.parent.name
        if kind == "digits":
            shows = _digit_shows(path.stem)
        else:
            shows = PHOTO_SUBJECTS.get(path.stem, "a photo")
        name = path.relative_to(root).as_posix()
        out.append(Sample(name, path, kind, width, height, path.stat().st_size, shows))
    return out


@dataclass
class CopyReport:
    """What :func:`copy_samples` did: files ``written`` and those ``unchanged`` (already there, identical)."""

    folder: Path
    written: list[Path] = field(default_factory=list)
    unchanged: list[Path] = field(default_factory=list)


def copy_samples(folder: str | os.PathLike[str], *, force: bool = False) -> CopyReport:
    """Copy the bundled pictures into ``folder`` (``digits/`` and ``photos/`` inside it), each atomically.

    Files already there with the same contents are left alone; a file there with different contents is
    refused (before anything is written) unless ``force``. Raises :class:`CnnvizError` with one sentence
    when the folder cannot be written to.
    """
    from cnnviz.core.fileio import atomic_write_bytes, folder_write_problem

    target = Path(folder).expanduser()
    if not str(folder).strip():
        raise CnnvizError(
            "the folder name is empty; give a folder to copy the samples into, such as 'samples'"
        )
    problem = folder_write_problem(target, may_create=True)
    if problem is not None:
        raise CnnvizError(
            f"cannot copy the samples into '{target}': {problem}; choose a folder you can write to"
        )
    samples = sample_catalogue()
    if not samples:
        raise CnnvizError(
            "this installation of cnnviz has no sample pictures; reinstall cnnviz to get them"
        )
    plan: list[tuple[Path, bytes, bool]] = []
    differ: list[str] = []
    for sample in samples:
        data = sample.path.read_bytes()
        dest = target / sample.name
        same = False
        if os.path.lexists(dest):
            if dest.is_dir() or not dest.is_file():
                raise CnnvizError(
                    f"cannot copy {sample.name}: '{dest}' is in the way and is not a file; move it away"
                )
            same = dest.read_bytes() == data
            if not same and not force:
                differ.append(sample.name)
        plan.append((dest, data, same))
    if differ:
        more = f" and {len(differ) - 1} more" if len(differ) > 1 else ""
        raise CnnvizError(
            f"'{target}' already holds a different {differ[0]}{more}; nothing was copied: use --force to "
            "replace them, or choose another folder"
        )
    report = CopyReport(target)
    for dest, data, same in plan:
        if same:
            report.unchanged.append(dest)
            continue
        try:
            dest.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise CnnvizError(
                f"cannot create the folder '{dest.parent}': {exc.strerror or exc}; choose a folder you can write to"
            ) from exc
        report.written.append(atomic_write_bytes(dest, data))
    return report
