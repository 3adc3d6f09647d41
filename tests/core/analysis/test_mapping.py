"""Moving a unit between layers and picking one from an input point: the same numbers as the app's formulas."""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest
import torch
from torch import nn

from cnnviz.core.analysis.capture import as_numpy
from cnnviz.core.analysis.receptive import carry_unit, unit_at_input
from cnnviz.core.analysis.summary import default_layer, summarize
from cnnviz.core.analysis.types import ReceptiveField


def _session_carry(a, unit, b, size):
    """The formula the app used before it moved into the core (Session._carry_unit)."""
    out = []
    for axis in (0, 1):
        centre = unit[axis] * a.stride[axis] - a.padding[axis] + (a.size[axis] - 1) / 2
        pos = (centre + b.padding[axis] - (b.size[axis] - 1) / 2) / b.stride[axis]
        out.append(min(max(int(math.floor(float(pos) + 0.5)), 0), size[axis] - 1))
    return (out[0], out[1])


def _session_at_input(rf, point, size):
    """The formula the app used before it moved into the core (Session.select_unit_at_input)."""
    unit = []
    for axis, pos in enumerate(point):
        index = (pos + float(rf.padding[axis]) - (rf.size[axis] - 1) / 2) / float(rf.stride[axis])
        unit.append(min(max(int(math.floor(index + 0.5)), 0), size[axis] - 1))
    return (unit[0], unit[1])


NET = nn.Sequential(
    nn.Conv2d(3, 4, 3, padding=1),
    nn.MaxPool2d(2),
    nn.Conv2d(4, 4, 5, stride=2, padding=2),
    nn.ConvTranspose2d(4, 4, 2, stride=2),
    nn.Conv2d(4, 2, (3, 1)),
    nn.AdaptiveAvgPool2d(1),
    nn.Flatten(),
)


@pytest.fixture(scope="module")
def fields():
    summary = summarize(NET, (3, 33, 29))
    out = {}
    for row in summary.rows:
        if row.rf is not None and not row.rf.global_ and len(row.output_shape) == 4:
            out[row.name] = (row.rf, (row.output_shape[2], row.output_shape[3]))
    assert len(out) >= 4
    return out, summary


def test_carry_unit_matches_the_app_formula(fields):
    layers, _ = fields
    for old, (a, size_a) in layers.items():
        for new, (b, size_b) in layers.items():
            for unit in [(0, 0), (size_a[0] - 1, size_a[1] - 1), (size_a[0] // 2, size_a[1] // 3)]:
                got = carry_unit(a, unit, b, size_b)
                assert got == _session_carry(a, unit, b, size_b), (old, new, unit)
        assert carry_unit(a, (1, 1), a, size_a) == (1, 1)


def test_unit_at_input_matches_the_app_formula(fields):
    layers, _ = fields
    for rf, size in layers.values():
        for point in [(0.0, 0.0), (16.4, 3.6), (32.0, 28.0), (-5.0, 100.0), (7.5, 7.5)]:
            assert unit_at_input(rf, point, size) == _session_at_input(rf, point, size)


def test_no_unit_without_a_local_field():
    local = ReceptiveField((3, 3), (Fraction(1), Fraction(1)), (Fraction(1), Fraction(1)))
    whole = ReceptiveField(None, None, None, global_=True)
    assert unit_at_input(whole, (1.0, 1.0), (4, 4)) is None
    assert unit_at_input(local, (1.0, 1.0), None) is None
    assert carry_unit(local, (1, 1), whole, (4, 4)) is None
    assert carry_unit(None, (1, 1), local, (4, 4)) is None


def test_default_layer_prefers_the_first_convolution_map():
    shapes = {"fc": (1, 10), "pool": (1, 4, 8, 8), "conv": (1, 4, 16, 16)}
    assert default_layer(shapes, {"fc": "Linear", "pool": "MaxPool2d", "conv": "Conv2d"}) == "conv"
    assert default_layer(shapes, {"conv": "MaxPool2d"}) == "pool"
    assert default_layer({"fc": (1, 10)}, {"fc": "Linear"}) == "fc"
    assert default_layer({}, {}) is None


def test_as_numpy_takes_the_first_tensor_as_float32():
    ints = torch.arange(6).reshape(1, 6)
    arr = as_numpy((ints, torch.zeros(2)))
    assert isinstance(arr, np.ndarray) and arr.dtype == np.float32
    assert arr.tolist() == [[0, 1, 2, 3, 4, 5]]
    assert as_numpy("text") is None and as_numpy(()) is None
