"""Receptive fields through gates, spatial reductions, channel shuffles, splits and windowed attention.

The truth is the support of the input gradient of one unit on a structural copy (positive weights, no gating
nonlinearities), computed here with torch alone. A claim is never narrower than that truth: a local box equals
it, and what the analysis does not understand is reported global, gated or unknown -- never a smaller box.
"""

from __future__ import annotations

import timm
import torch
import torchvision
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from oracles import module_output, structural_copy
from torch import nn
from torchvision.models.swin_transformer import SwinTransformerBlock
from torchvision.ops.misc import Permute

from cnnviz.core.analysis.receptive import ReceptiveFieldIndex
from cnnviz.core.analysis.summary import summarize
from cnnviz.core.errors import LayerError


def gradient_bbox(model: nn.Module, layer_output, shape, unit):
    """Bounding box of the input pixels with non-zero gradient for one unit (None when there are none).

    In double precision: positive weights compound through deep networks past the float range.
    """
    model = model.double()
    x = torch.ones((1, *shape), dtype=torch.float64, requires_grad=True)
    out = layer_output(model, x)
    assert torch.isfinite(out).all()
    out[0, :, unit[0], unit[1]].sum().backward()
    assert x.grad is not None
    support = (x.grad[0].abs().sum(0) > 0).numpy()
    rows, cols = support.any(1).nonzero()[0], support.any(0).nonzero()[0]
    if rows.size == 0:
        return None
    return (int(rows[0]), int(cols[0]), int(rows[-1]), int(cols[-1]))


def _whole_output(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    return model(x)


def _contains(outer, inner) -> bool:
    return (
        outer[0] <= inner[0]
        and outer[1] <= inner[1]
        and outer[2] >= inner[2]
        and outer[3] >= inner[3]
    )


def _check_never_narrower(index: ReceptiveFieldIndex, layer: str, unit, truth) -> str:
    """'unknown', 'global', 'gated', 'measured' or 'local'; local and measured claims must be exactly the truth,
    others cover it."""
    try:
        box = index.box(layer, unit)
    except LayerError:
        return "unknown"
    if box.measured:
        assert box.support_box == box.clipped_box == truth, (layer, unit, box.support_box, truth)
        return "measured"
    if box.global_:
        return "global"
    if box.gated:
        assert box.support_box is not None and _contains(box.support_box, truth), (box, truth)
        return "gated"
    assert box.support_box == truth, (layer, unit, box.support_box, truth)
    assert box.clipped_box is not None and _contains(box.clipped_box, truth)
    return "local"


# --------------------------------------------------------------------------------------------------------------
# timm squeeze-and-excitation: x * gate(conv(x.mean((2, 3), keepdim=True)))


def test_timm_efficientnet_squeeze_excite_is_a_gate_with_the_whole_input_as_support():
    model = timm.create_model("efficientnet_b0", pretrained=False).eval()
    shape = (3, 64, 64)
    index = ReceptiveFieldIndex(model, shape)
    copy = structural_copy(model)
    whole = (0, 0, 63, 63)
    for layer in ("blocks.1.0.se", "blocks.1.0.conv_pwl", "blocks.2.0"):
        truth = gradient_bbox(copy, module_output(layer), shape, (1, 1))
        assert truth == whole
        box = index.box(layer, (1, 1))
        assert box.gated and box.support_box == truth, layer
        assert box.size[0] < 64  # the convolution path's own field, marked gated
    before = "blocks.0.0.bn1"  # ahead of the first gate
    truth = gradient_bbox(copy, module_output(before), shape, (3, 3))
    assert _check_never_narrower(index, before, (3, 3), truth) == "local"
    summary = summarize(model, shape)
    assert summary.row("blocks.1.0.se").rf.gated
    assert not summary.row("blocks.0.0.bn1").rf.gated


def test_timm_mobilenetv3_squeeze_excite_is_gated():
    model = timm.create_model("mobilenetv3_small_050", pretrained=False).eval()
    shape = (3, 64, 64)
    index = ReceptiveFieldIndex(model, shape)
    copy = structural_copy(model)
    for layer in ("blocks.0.0.se", "blocks.1"):
        truth = gradient_bbox(copy, module_output(layer), shape, (2, 1))
        assert _check_never_narrower(index, layer, (2, 1), truth) == "gated", layer
        assert index.box(layer, (2, 1)).support_box == truth == (0, 0, 63, 63)


# --------------------------------------------------------------------------------------------------------------
# Gates and reductions written by hand


class _Gate(nn.Module):
    """A local path multiplied by a gate made of a spatial reduction (keepdim or flattened)."""

    def __init__(self, reduce: str, keepdim: bool) -> None:
        super().__init__()
        self.conv = nn.Conv2d(2, 4, 3, padding=1)
        self.squeeze = nn.Conv2d(4, 4, 1)
        self.fc = nn.Linear(4, 4)
        self.gate = nn.Sigmoid()  # a module, so that the oracle's copy opens it (no saturation)
        self.reduce, self.keepdim = reduce, keepdim

    def _pool(self, y: torch.Tensor) -> torch.Tensor:
        k = self.keepdim
        if self.reduce == "mean":
            return y.mean((2, 3), keepdim=k)
        if self.reduce == "sum":
            return y.sum(dim=(-2, -1), keepdim=k)
        if self.reduce == "amax":
            return torch.amax(y, (2, 3), keepdim=k)
        if self.reduce == "amin":
            return y.amin((2, 3), k)
        if self.reduce == "std":
            return y.std((2, 3), keepdim=k)
        if self.reduce == "var":
            return torch.var(y, (2, 3), keepdim=k)
        if self.reduce == "norm":
            return y.norm(2, (2, 3), k)
        assert self.reduce == "logsumexp"
        return torch.logsumexp(y, (2, 3), keepdim=k)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv(x)
        g = self._pool(y)
        if self.keepdim:
            g = self.gate(self.squeeze(g))
        else:
            b, c = y.shape[0], y.shape[1]
            g = self.gate(self.fc(g)).view(b, c, 1, 1)
        return y * g


REDUCTIONS = ["mean", "sum", "amax", "amin", "std", "var", "norm", "logsumexp"]


def test_every_spatial_reduction_makes_a_gate_never_a_local_box():
    shape = (2, 12, 10)
    for reduce in REDUCTIONS:
        for keepdim in (True, False):
            model = _Gate(reduce, keepdim).eval()
            index = ReceptiveFieldIndex(model, shape)
            truth = gradient_bbox(structural_copy(model), _whole_output, shape, (5, 4))
            box = index.box("mul", (5, 4))
            assert box.gated, (reduce, keepdim)
            assert box.size == (3, 3)  # the convolution path
            # max/min send their gradient to the extreme positions only: the dependence is still everything
            assert box.support_box == (0, 0, 11, 9) and _contains(box.support_box, truth)
            if reduce in ("mean", "sum", "norm", "logsumexp", "std", "var"):
                assert truth == (0, 0, 11, 9), reduce
            pooled = summarize(model, shape).row("mean" if reduce == "mean" else "conv").rf
            assert pooled is not None


class _SoftmaxMix(nn.Module):
    def __init__(self, dim: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 2, 3, padding=1)
        self.dim = dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv(x)
        return y * torch.softmax(y, dim=self.dim)


def test_softmax_over_a_spatial_axis_is_global():
    shape = (1, 9, 8)
    for dim in (2, 3, -1):
        model = _SoftmaxMix(dim).eval()
        index = ReceptiveFieldIndex(model, shape)
        truth = gradient_bbox(structural_copy(model), _whole_output, shape, (4, 4))
        assert _check_never_narrower(index, "mul", (4, 4), truth) == "global"
        assert summarize(model, shape).row("softmax").rf.global_


class _Unknown(nn.Module):
    """An op the analysis does not know (a fft over the image) feeding an addition with a local path."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 1, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv(x)
        return y + torch.fft.fft2(y).real


def test_an_unknown_input_is_never_dropped():
    model = _Unknown().eval()
    shape = (1, 8, 8)
    # the table cannot derive it; the unit is measured (the fft reaches every pixel), never the conv's 3x3 box
    truth = gradient_bbox(structural_copy(model), _whole_output, shape, (3, 3))
    assert truth == (0, 0, 7, 7)
    assert (
        _check_never_narrower(ReceptiveFieldIndex(model, shape), "add", (3, 3), truth) == "measured"
    )
    assert summarize(model, shape).row("add").rf is None


# --------------------------------------------------------------------------------------------------------------
# Channel shuffles and splits


def test_shufflenet_keeps_its_geometry_through_channel_shuffles():
    model = torchvision.models.shufflenet_v2_x0_5(weights=None).eval()
    shape = (3, 64, 64)
    index = ReceptiveFieldIndex(model, shape)
    copy = structural_copy(model)
    for layer, unit in (("stage2.0", (3, 3)), ("stage2.1", (0, 5)), ("stage3.0", (2, 1))):
        truth = gradient_bbox(copy, module_output(layer), shape, unit)
        assert _check_never_narrower(index, layer, unit, truth) == "local", layer
    summary = summarize(model, shape)
    for name in ("stage2.0.view", "stage2.0.transpose", "stage2.0.view_1", "stage2.1.chunk"):
        rf = summary.row(name).rf
        assert rf is not None and not rf.global_ and rf.size is not None, name


class _Res2Block(nn.Module):
    """res2net's hierarchical split: each group adds the previous group's output before its convolution."""

    def __init__(self, width: int = 2, scale: int = 4, how: str = "split") -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(2, width * scale, 1)
        self.convs = nn.ModuleList(nn.Conv2d(width, width, 3, padding=1) for _ in range(scale - 1))
        self.conv3 = nn.Conv2d(width * scale, 2, 1)
        self.width, self.scale, self.how = width, scale, how

    def _pieces(self, y: torch.Tensor) -> list[torch.Tensor]:
        w = self.width
        if self.how == "split":
            return list(torch.split(y, w, 1))
        if self.how == "chunk":
            return list(y.chunk(self.scale, dim=1))
        if self.how == "narrow":
            return [y.narrow(1, i * w, w) for i in range(self.scale)]
        return [y[:, i * w : (i + 1) * w] for i in range(self.scale)]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        spx = self._pieces(self.conv1(x))
        out = []
        sp = spx[0]
        for i, conv in enumerate(self.convs):
            sp = spx[i] if i == 0 else sp + spx[i]
            sp = conv(sp)
            out.append(sp)
        out.append(spx[-1])
        return self.conv3(torch.cat(out, 1)) + x


def test_res2net_split_branches_have_their_true_field():
    shape = (2, 16, 16)
    for how in ("split", "chunk", "narrow", "slice"):
        model = nn.Sequential(_Res2Block(how=how), _Res2Block(how=how)).eval()
        index = ReceptiveFieldIndex(model, shape)
        copy = structural_copy(model)
        for layer in ("0", "1"):
            truth = gradient_bbox(copy, module_output(layer), shape, (7, 8))
            # list(torch.split(...)) cannot be traced: those blocks are measured, the others derived
            expected = "measured" if index.measured else "local"
            assert _check_never_narrower(index, layer, (7, 8), truth) == expected, (how, layer)
        # three 3x3 convolutions in a chain per block: 7, then 13
        assert index.box("1", (7, 8)).size == (13, 13)


def test_timm_res2net_and_cspdarknet_have_fields():
    shape = (3, 64, 64)
    for name, layer in (("res2net50_14w_8s", "layer1.0"), ("cspdarknet53", "stages.1")):
        model = timm.create_model(name, pretrained=False).eval()
        index = ReceptiveFieldIndex(model, shape)
        truth = gradient_bbox(structural_copy(model), module_output(layer), shape, (3, 4))
        assert _check_never_narrower(index, layer, (3, 4), truth) == "local", name


# --------------------------------------------------------------------------------------------------------------
# Windowed attention


def test_swin_block_never_claims_the_patch_box():
    """A 4x4 patch embedding then windowed attention: the unit sees its whole window, never just its patch."""
    model = nn.Sequential(
        nn.Conv2d(3, 8, 4, stride=4),
        Permute([0, 2, 3, 1]),
        SwinTransformerBlock(8, 2, [4, 4], [0, 0]),
        Permute([0, 3, 1, 2]),
        nn.Conv2d(8, 8, 1),
    ).eval()
    shape = (3, 32, 32)
    index = ReceptiveFieldIndex(model, shape)
    truth = gradient_bbox(structural_copy(model), _whole_output, shape, (1, 2))
    assert truth == (0, 0, 15, 15)  # the 4x4-patch window of 16x16 pixels
    assert _check_never_narrower(index, "4", (1, 2), truth) == "measured"
    assert index.box("0", (1, 2)).support_box == (4, 8, 7, 11)


# --------------------------------------------------------------------------------------------------------------
# Random graphs of convolutions, gates, shuffles, splits and reductions

_OPS = st.sampled_from(
    ["conv", "conv_s2", "gate", "gate_flat", "shuffle", "split", "narrow", "reduce"]
)


class _Random(nn.Module):
    def __init__(self, ops: list[str], reduce: str) -> None:
        super().__init__()
        self.ops = ops
        self.reduce = reduce
        self.gate = nn.Sigmoid()
        self.convs = nn.ModuleList()
        for op in ops:
            if op == "conv":
                self.convs.append(nn.Conv2d(4, 4, 3, padding=1))
            elif op == "conv_s2":
                self.convs.append(nn.Conv2d(4, 4, 3, stride=2, padding=1))
            elif op in ("gate", "reduce"):
                self.convs.append(nn.Conv2d(4, 4, 1))
            elif op == "gate_flat":
                self.convs.append(nn.Linear(4, 4))
            else:
                self.convs.append(nn.Conv2d(2, 2, 3, padding=1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for op, m in zip(self.ops, self.convs, strict=True):
            if op in ("conv", "conv_s2"):
                x = m(x)
            elif op == "gate":
                x = x * self.gate(m(x.mean((2, 3), keepdim=True)))
            elif op == "gate_flat":
                b, c = x.shape[0], x.shape[1]
                x = x * self.gate(m(x.sum((2, 3)))).view(b, c, 1, 1)
            elif op == "reduce":
                pooled = getattr(torch, self.reduce)(x, (2, 3), keepdim=True)
                x = x + m(pooled)
            elif op == "shuffle":
                b, c, h, w = x.size()
                x = x.view(b, 2, c // 2, h, w).transpose(1, 2).contiguous().view(b, c, h, w)
            elif op == "split":
                a, rest = x.chunk(2, dim=1)
                x = torch.cat([m(a), rest], 1)
            else:  # narrow
                x = torch.cat([m(x.narrow(1, 0, 2)), x[:, 2:]], dim=1)
        return x


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    ops=st.lists(_OPS, min_size=1, max_size=6),
    reduce=st.sampled_from(["mean", "sum", "amax", "amin", "std", "var", "logsumexp"]),
    h=st.integers(6, 14),
    w=st.integers(6, 14),
    data=st.data(),
)
def test_random_graphs_never_claim_less_than_the_gradient(ops, reduce, h, w, data):
    model = _Random(
        ["conv", *ops], reduce
    ).eval()  # a padded convolution first: no constant map to reduce
    shape = (4, h, w)
    index = ReceptiveFieldIndex(model, shape)
    out = model(torch.zeros(1, *shape))
    # Strided convolutions can shrink the map to one position: then every unit sees the whole input (global,
    # not gated), and the unbiased std or var of one value is nan.
    assume(out.shape[2] * out.shape[3] > 1)
    unit = (
        data.draw(st.integers(0, out.shape[2] - 1)),
        data.draw(st.integers(0, out.shape[3] - 1)),
    )
    key = [n.key for n in index.graph.nodes][-1]
    truth = gradient_bbox(structural_copy(model), _whole_output, shape, unit)
    kind = _check_never_narrower(index, key, unit, truth)
    if {"gate", "gate_flat", "reduce"} & set(ops):
        assert kind == "gated"
    else:
        assert kind == "local"  # shuffles, splits and narrows keep the geometry


def test_permute_modules_keep_the_field_and_pooling_after_attention_is_global():
    local = nn.Sequential(
        nn.Conv2d(3, 4, 3), Permute([0, 2, 3, 1]), Permute([0, 3, 1, 2]), nn.Conv2d(4, 4, 3)
    ).eval()
    shape = (3, 12, 12)
    truth = gradient_bbox(structural_copy(local), _whole_output, shape, (2, 5))
    assert _check_never_narrower(ReceptiveFieldIndex(local, shape), "3", (2, 5), truth) == "local"
    swin = nn.Sequential(
        nn.Conv2d(3, 8, 4, stride=4),
        Permute([0, 2, 3, 1]),
        SwinTransformerBlock(8, 2, [4, 4], [0, 0]),
        Permute([0, 3, 1, 2]),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(8, 3),
    ).eval()
    summary = summarize(swin, (3, 32, 32))
    assert summary.row("2").rf is None  # windowed attention: not derived, never the patch box
    assert summary.row("4").rf.global_ and summary.row("6").rf.global_
