"""Receptive fields of token sequences and windows (vision transformers): attention over every token sees the
whole input.

The truth is the support of the input gradient of single output elements, computed here with torch on the
layer's own output (the traced graph cut at that layer). Every row the table calls global must have the whole
picture as the support of each element checked; rows whose attention is masked, causal or over part of the
sequence, and token-local layers, must never be called global.
"""

from __future__ import annotations

import numpy as np
import pytest
import timm
import torch
import torch.nn.functional as F
import torchvision
from torch import nn
from torchvision.models.swin_transformer import PatchMerging, SwinTransformerBlock
from torchvision.ops.misc import Permute

from cnnviz.core.analysis.graph import layer_graph
from cnnviz.core.analysis.receptive import ReceptiveFieldIndex
from cnnviz.core.analysis.summary import summarize

SHAPE = (3, 32, 32)


def _supports(model: nn.Module, layer: str, shape: tuple[int, int, int]) -> list[np.ndarray]:
    """Per checked element of ``layer``'s output (first, middle, last): the input pixels its gradient touches."""
    gm = layer_graph(model).truncated_module(layer)
    torch.manual_seed(0)
    x = torch.randn((1, *shape), dtype=torch.float64)
    out = []
    for pick in ("first", "middle", "last"):
        xi = x.clone().requires_grad_(True)
        y = gm(xi)
        if isinstance(y, (tuple, list)):
            y = y[0]
        flat = y.reshape(-1)
        index = {"first": 0, "middle": flat.numel() // 2, "last": flat.numel() - 1}[pick]
        (grad,) = torch.autograd.grad(flat[index], xi, allow_unused=True)
        out.append(
            np.zeros(shape[1:], bool) if grad is None else (grad[0].abs().sum(0) > 0).numpy()
        )
    return out


def _global_rows(model: nn.Module, shape: tuple[int, int, int]) -> list[str]:
    """The rows the table calls global, in order."""
    return [r.name for r in summarize(model, shape).rows if r.rf is not None and r.rf.global_]


def _vit_models() -> dict[str, nn.Module]:
    torch.manual_seed(0)
    return {
        "torchvision": torchvision.models.VisionTransformer(
            image_size=32, patch_size=8, num_layers=2, num_heads=2, hidden_dim=16, mlp_dim=32
        ),
        "timm": timm.models.VisionTransformer(
            img_size=32, patch_size=8, embed_dim=16, depth=2, num_heads=2, num_classes=10
        ),
        # two register tokens beside the class token, and average pooling over the patch tokens
        "timm_registers_avg": timm.models.VisionTransformer(
            img_size=32,
            patch_size=8,
            embed_dim=16,
            depth=2,
            num_heads=2,
            num_classes=10,
            reg_tokens=2,
            global_pool="avg",
        ),
    }


@pytest.mark.parametrize("kind", ["torchvision", "timm", "timm_registers_avg"])
def test_vision_transformer_rows_after_attention_see_the_whole_input(kind: str) -> None:
    model = _vit_models()[kind].eval().double()
    # torchvision starts its head at zero, which would leave no gradient to read
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0.0, 0.5)
    called = _global_rows(model, SHAPE)
    graph = layer_graph(model)
    first_attention = next(
        i
        for i, n in enumerate(graph.nodes)
        if isinstance(n.module, nn.MultiheadAttention)
        or n.type.endswith("scaled_dot_product_attention")
    )
    before = {n.key for n in graph.nodes[:first_attention]}
    assert not before & set(called), "a layer before the first attention called global"
    # every attention block and everything after it, up to the logits
    assert len(called) >= 20, called
    for layer in called:
        key = graph.containers[layer].output_key if layer in graph.containers else layer
        if key is None:
            continue
        for support in _supports(model, layer, SHAPE):
            assert support.all(), (kind, layer, int(support.sum()))


class _TokenMixer(nn.Module):
    """Patch tokens, then one way of mixing them that does not let every token see every other."""

    def __init__(self, mode: str) -> None:
        super().__init__()
        self.mode = mode
        self.proj = nn.Conv2d(3, 8, 8, 8)
        self.attn = nn.MultiheadAttention(8, 2, batch_first=True)
        self.mix = nn.Conv1d(8, 8, 3, padding=1)
        tokens = 16
        band = (torch.arange(tokens)[:, None] - torch.arange(tokens)[None, :]).abs() > 1
        self.register_buffer("band", band)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        t = self.proj(x).flatten(2).transpose(1, 2)  # (1, 16, 8)
        if self.mode == "masked":
            return self.attn(t, t, t, attn_mask=self.band, need_weights=False)[0]
        if self.mode == "causal":
            q = t.unsqueeze(1)
            return F.scaled_dot_product_attention(q, q, q, is_causal=True)
        if self.mode == "subset":
            return self.attn(t, t[:, :4], t[:, :4], need_weights=False)[0]
        if self.mode == "conv_over_tokens":
            return self.mix(t.transpose(1, 2))
        raise AssertionError(self.mode)


@pytest.mark.parametrize("mode", ["masked", "causal", "subset", "conv_over_tokens"])
def test_attention_that_leaves_tokens_out_is_never_called_global(mode: str) -> None:
    model = _TokenMixer(mode).eval().double()
    summary = summarize(model, SHAPE)
    last = summary.rows[-1]
    assert not (last.rf is not None and last.rf.global_), (mode, last.name, last.rf)
    # and the truth agrees: the first token does not see the whole input
    with torch.no_grad():
        model.proj.weight.abs_()
    x = torch.randn((1, *SHAPE), dtype=torch.float64, requires_grad=True)
    y = model(x)
    y.reshape(-1)[0].backward()
    assert x.grad is not None
    assert not (x.grad[0].abs().sum(0) > 0).all(), mode


def test_unmasked_attention_of_the_same_mixer_is_global() -> None:
    # the counterpart of the cases above: the same tokens, attention over all of them
    class Full(_TokenMixer):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            t = self.proj(x).flatten(2).transpose(1, 2)
            q = t.unsqueeze(1)
            return F.scaled_dot_product_attention(q, q, q)

    model = Full("full").eval().double()
    rf = summarize(model, SHAPE).rows[-1].rf
    assert rf is not None and rf.global_
    for support in _supports(model, summarize(model, SHAPE).rows[-1].name, SHAPE):
        assert support.all()


def _patch_grid_model(*blocks: nn.Module) -> nn.Module:
    # a 4x4 patch embedding in Swin's (N, H, W, C) layout, the blocks, and back to (N, C, H, W)
    return nn.Sequential(
        nn.Conv2d(3, 8, 4, stride=4), Permute([0, 2, 3, 1]), *blocks, Permute([0, 3, 1, 2])
    ).eval()


def test_swin_window_attention_with_one_window_over_the_map_is_global() -> None:
    torch.manual_seed(0)
    # an 8x8 map and an 8x8 window: torchvision drops the shift, and every position attends to every other
    model = _patch_grid_model(SwinTransformerBlock(8, 2, [8, 8], [4, 4])).double()
    summary = summarize(model, SHAPE)
    assert summary.row("2").rf is not None and summary.row("2").rf.global_
    for support in _supports(model, "2", SHAPE):
        assert support.all()
    # a 4x4 window on the same map: each unit sees its own window, which is not claimed as a per-layer field
    model = _patch_grid_model(SwinTransformerBlock(8, 2, [4, 4], [0, 0])).double()
    assert summarize(model, SHAPE).row("2").rf is None
    assert not _supports(model, "2", SHAPE)[0].all()


def test_swin_patch_merging_keeps_the_map_and_its_exact_field() -> None:
    torch.manual_seed(0)
    model = _patch_grid_model(PatchMerging(8)).double()
    shape = (
        3,
        36,
        36,
    )  # a 9x9 map: the last merged row and column read one zero-padded row and column
    rf = summarize(model, shape).row("3").rf
    assert rf is not None and rf.size == (8, 8) and rf.stride == (8, 8) and rf.padding == (0, 0)
    index = ReceptiveFieldIndex(model, shape)
    for unit in [(0, 0), (2, 3), (4, 4), (4, 0)]:
        x = torch.randn((1, *shape), dtype=torch.float64, requires_grad=True)
        model(x)[0, :, unit[0], unit[1]].sum().backward()
        assert x.grad is not None
        support = (x.grad[0].abs().sum(0) > 0).numpy()
        rows, cols = np.flatnonzero(support.any(1)), np.flatnonzero(support.any(0))
        truth = (int(rows[0]), int(cols[0]), int(rows[-1]), int(cols[-1]))
        box = index.box("3", unit)
        assert box.support_box == truth, (unit, box.support_box, truth)
        assert box.clipped_box == truth
