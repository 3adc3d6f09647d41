"""Boxes, unit lines, the status line and the grid caption in words."""

from __future__ import annotations

from fractions import Fraction
from types import SimpleNamespace

import numpy as np

from cnnviz.core.present import captions


def _box(**changes):
    fields = dict(unit=(1, 2), size=(5, 5), stride=(Fraction(2), Fraction(2)),
                  padding=(Fraction(3, 2), Fraction(1)), box=(-1, 0, 3, 4), image_box=(0, 0, 6, 8),
                  padding_fraction=0.25, global_=False, gated=False, measured=False)  # fmt: skip
    fields.update(changes)
    return SimpleNamespace(**fields)


def test_box_text():
    assert captions.box_text((1, 2, 3, 4)) == "rows 1–3, columns 2–4"
    assert captions.box_text(None) == "none"


def test_unit_lines_and_notes():
    lines = captions.unit_lines(_box(gated=True, measured=True))
    assert lines[0] == "unit (y=1, x=2)   r = 5   S = 2   P = 1.5×1"
    assert lines[1] == "box on model input: rows -1–3, columns 0–4, 25% in padding"
    assert lines[2] == "box in original-image pixels: rows 0–6, columns 0–8"
    assert lines[3:] == [captions.GATE_NOTE, captions.MEASURED_NOTE]
    assert "entirely in padding" in captions.unit_lines(_box(image_box=None), picture=True)[-1]
    assert not any("padding" in line for line in captions.unit_lines(_box(image_box=None))[2:])
    assert "whole input" in captions.unit_lines(_box(global_=True))[0]


def test_unit_status():
    text = captions.unit_status("3", (1, 2), _box(gated=True, measured=True), channel=0)
    assert text.startswith("3   unit (y 1, x 2, channel 0)   r = 5   S = 2   P = 1.5×1")
    assert "box in picture: rows 0–6, columns 0–8" in text
    assert text.endswith(
        "(25% in padding)   +gate: also sees the whole picture   (measured by gradient)"
    )
    assert (
        captions.unit_status("3", (0, 0), None, note="computing…")
        == "3   unit (y 0, x 0)   computing…"
    )
    assert "box entirely in padding" in captions.unit_status("3", (0, 0), _box(image_box=None))


def test_grid_caption():
    mosaic = SimpleNamespace(maps=np.zeros((4, 3, 5)), channel=None, lo=np.array([-1.0]),
                             hi=np.array([2.0]), norm="layer", cmap="magma")  # fmt: skip
    lines = captions.grid_caption("net", "conv", "Conv2d", mosaic)
    assert lines == ["net   conv (Conv2d)   output 4×3×5",
                     "4 channels, colormap magma, normalised per layer, values -1 .. 2"]  # fmt: skip
    # A bare index gets the word; a vector keeps its own shape, not the 576×1×1 of its tiles.
    assert captions.grid_caption("net", "3", "Linear", mosaic, shape=[576])[0] == (
        "net   layer 3 (Linear)   output 576"
    )
    assert captions.grid_caption("net", "conv", None, mosaic, _box())[2].startswith(
        "unit (y=1, x=2)"
    )
