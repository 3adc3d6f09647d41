"""The one notation for numbers, shapes, sizes and formulas, and the one-line error wording."""

from __future__ import annotations

from fractions import Fraction

import pytest
import torch
from torch import nn

from cnnviz.core import text
from cnnviz.core.errors import CnnvizError, describe_error, one_line
from cnnviz.core.present.view import COLORMAPS, NORMALIZATIONS, ViewState


@pytest.mark.parametrize(
    ("value", "expected"),
    [(3, "3"), (Fraction(3, 1), "3"), (Fraction(3, 2), "1.5"), (Fraction(1, 3), "0.333"),
     (2.0, "2"), (0.125, "0.125"), (True, "1"), ("n/a", "n/a")],
)  # fmt: skip
def test_num(value, expected):
    assert text.num(value) == expected


def test_pair_and_dims():
    assert text.pair((3, 3)) == "3"
    assert text.pair((3, 5)) == "3×5"
    assert text.pair((Fraction(1, 2), 2)) == "0.5×2"
    assert text.pair(None) == ""
    assert text.pair(7) == "7"
    assert text.pair((3, 5), sep="x") == "3x5"
    assert text.dims((1, 64, 28, 28)) == "1×64×28×28"
    assert text.dims((8, 8, 8), sep="x") == "8x8x8"


def test_shape_drops_the_batch_and_joins_outputs():
    assert text.shape([1, 64, 56, 56]) == "64×56×56"
    assert text.shape((2, 10)) == "10"
    assert text.shape((10,)) == "10"
    assert text.shape([(1, 3, 4), (1, 5)]) == "3×4 | 5"
    assert text.shape(None) == ""
    assert text.shape((1, 8, 8, 8), sep="x") == "8x8x8"


def test_counts_sizes_ratios():
    assert text.count(1234567) == "1,234,567"
    assert text.count(None) == ""
    assert text.compact(9999) == "9,999"
    assert text.compact(12_345) == "12.3k"
    assert text.compact(4_500_000) == "4.5M"
    assert text.nbytes(10) == "10 bytes"
    assert text.nbytes(8 * 1024**3) == "8 GiB"
    assert text.nbytes(20070400000000) == "18.3 TiB"
    assert text.nbytes(10**6) == "977 KiB"
    assert text.ratio(2.5) == "2.50×"
    assert text.ratio(12.5) == "12.5×"
    assert text.ratio(1234) == "1,234×"


@pytest.mark.parametrize(
    ("layer", "transposed"),
    [(nn.Conv2d(16, 32, 3), False), (nn.Conv2d(6, 8, (3, 5), groups=2), False),
     (nn.Conv2d(4, 4, 1, bias=False), False), (nn.Conv1d(3, 5, 7), False),
     (nn.ConvTranspose2d(4, 6, 3, groups=2), True)],
)  # fmt: skip
def test_conv_param_formula_counts_like_torch(layer, transposed):
    formula = text.conv_param_formula(
        layer.weight.shape[2:],
        layer.in_channels,
        layer.out_channels,
        groups=layer.groups,
        bias=layer.bias is not None,
        transposed=transposed,
    )
    total = sum(p.numel() for p in layer.parameters())
    assert formula.endswith(f"= {total:,}")


def test_formula_wording():
    assert text.conv_param_formula((3, 3), 16, 32) == (
        "K_h × K_w × C_in × C_out + C_out = 3 × 3 × 16 × 32 + 32 = 4,640"
    )
    assert "3 × 5 × 6/2 × 8 + 8" in text.conv_param_formula((3, 5), 6, 8, groups=2)
    assert text.dense_param_formula(3072, 10) == "D_in × D_out + D_out = 3072 × 10 + 10 = 30,730"
    assert text.dense_param_formula(4, 2, bias=False) == "D_in × D_out = 4 × 2 = 8"
    layer = nn.Conv2d(4, 6, 3, groups=2)
    out = layer(torch.zeros(1, 4, 9, 10))
    macs = text.conv_macs_formula((3, 3), 4, 6, out.shape[2:], groups=2)
    assert macs == (
        "H_out × W_out × C_out × C_in/groups × K_h × K_w = 7 × 8 × 6 × 4/2 × 3 × 3 = 6,048"
    )


def test_one_line():
    assert one_line(ValueError("first\n  second")) == "first"
    assert one_line(ValueError("first\n  second"), whole=True) == "first second"
    assert one_line(ValueError()) == "ValueError"
    assert one_line("\n\n  a   b \nc") == "a b"
    assert one_line("") == ""
    assert one_line(RuntimeError("x" * 50), limit=10) == "x" * 9 + "…"
    assert "ran out of memory" in one_line(RuntimeError("CUDA out of memory. Tried ..."))
    assert "ran out of memory" in one_line(MemoryError())


def test_describe_error():
    assert describe_error(CnnvizError("the file is broken")) == "the file is broken"
    assert describe_error(KeyError("k")) == "unexpected KeyError: 'k'"
    assert describe_error(ValueError()) == "unexpected ValueError: ValueError"


def test_view_state_is_checked():
    view = ViewState()
    assert (view.cmap, view.norm, view.channel, view.unit) == ("viridis", "channel", None, None)
    assert view.replace(cmap="coolwarm").symmetric
    assert ViewState(unit=[2, 3]).unit == (2, 3)  # type: ignore[arg-type]
    assert set(COLORMAPS) >= {"viridis", "gray"} and NORMALIZATIONS == ("channel", "layer")
    for bad in ({"cmap": "jet"}, {"norm": "global"}, {"channel": -1}, {"channel": 1.5},
                {"unit": (1,)}, {"unit": (-1, 0)}):  # fmt: skip
        with pytest.raises(CnnvizError):
            ViewState(**bad)


def test_view_module_needs_no_numpy():
    import subprocess
    import sys

    code = (
        "import sys, cnnviz.core.present.view, cnnviz.core.text;"
        "print(any(m in sys.modules for m in ('numpy', 'torch', 'PIL')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
