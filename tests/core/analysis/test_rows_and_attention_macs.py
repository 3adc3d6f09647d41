"""Rows and capture entries for tuple outputs, and attention's multiply-accumulates against fvcore.

The truth for MACs is fvcore's FlopCountAnalysis (one of its "flops" is one multiply-accumulate) on the same
model, restricted to convolutions, linear layers and matrix products. Where a model uses
``F.scaled_dot_product_attention`` (which fvcore does not count), the truth is fvcore's count of an equivalent
model that spells the two products out. Shapes are checked against a real forward pass with hooks.
"""

from __future__ import annotations

import warnings

import fvcore.nn as fvcore_nn
import pytest
import torch
import torch.nn.functional as F
import torchvision
from torch import nn
from torchvision.models.swin_transformer import ShiftedWindowAttention

from cnnviz.core.analysis.capture import as_numpy, capture
from cnnviz.core.analysis.summary import summarize

_MATRIX_OPS = ("conv", "linear", "matmul", "einsum", "bmm", "addmm", "baddbmm", "mm")


def fvcore_macs(model: nn.Module, *inputs: torch.Tensor) -> int:
    """fvcore's count of convolutions, linear layers and matrix products for one call."""
    # with gradients on, nn.MultiheadAttention takes its traceable path rather than the fused kernel
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        analysis = fvcore_nn.FlopCountAnalysis(model.eval(), inputs)
        analysis.unsupported_ops_warnings(False).uncalled_modules_warnings(False)
        by_op = analysis.by_operator()
    return int(sum(v for k, v in by_op.items() if k in _MATRIX_OPS))


def real_outputs(model: nn.Module, x: torch.Tensor) -> dict[str, object]:
    """Every module's output from a real forward pass with hooks."""
    outputs: dict[str, object] = {}

    def hook(name: str) -> object:
        def keep(_m: nn.Module, _a: object, out: object) -> None:
            outputs.setdefault(
                name, out
            )  # the first call's output; returns None so the output stays

        return keep

    handles = [m.register_forward_hook(hook(name)) for name, m in model.named_modules() if name]
    try:
        with torch.no_grad():
            model.eval()(x)
    finally:
        for h in handles:
            h.remove()
    return outputs


class SelfAttention(nn.Module):
    def __init__(self, batch_first: bool = True, need_weights: bool = False):
        super().__init__()
        self.attn = nn.MultiheadAttention(32, 4, batch_first=batch_first)
        self.batch_first, self.need_weights = batch_first, need_weights

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # x: (1, C, H, W) -> tokens
        tokens = x.flatten(2).transpose(1, 2)
        if not self.batch_first:
            tokens = tokens.transpose(0, 1)
        out, _ = self.attn(tokens, tokens, tokens, need_weights=self.need_weights)
        return out


class CrossAttention(nn.Module):
    """Queries from the pixels, keys and values from a shorter, narrower memory (kdim, vdim differ)."""

    def __init__(self) -> None:
        super().__init__()
        self.memory = nn.Linear(16, 24 * 5)
        self.attn = nn.MultiheadAttention(16, 2, kdim=24, vdim=12, batch_first=True)
        self.value = nn.Linear(24, 12)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        tokens = x.flatten(2).transpose(1, 2)
        memory = self.memory(tokens.mean(1)).view(1, 5, 24)
        out, _ = self.attn(tokens, memory, self.value(memory))
        return out


@pytest.mark.parametrize("batch_first", [True, False])
def test_multihead_attention_gets_a_row_a_capture_entry_and_fvcore_macs(batch_first: bool) -> None:
    torch.manual_seed(0)
    model = SelfAttention(batch_first=batch_first).eval()
    # the same attention returning its weights runs as linear, bmm, bmm, linear: what fvcore counts
    twin = SelfAttention(batch_first=batch_first, need_weights=True).eval()
    twin.load_state_dict(model.state_dict())
    x = torch.randn(1, 32, 6, 5)
    summary = summarize(model, (32, 6, 5), receptive_fields=False)
    row = summary.row("attn")
    real = real_outputs(model, x)["attn"]
    assert isinstance(real, tuple) and real[1] is None
    assert row.output_shape == tuple(real[0].shape)
    assert row.output_structure == "tuple (tensor, None)"
    assert row.params == sum(p.numel() for p in model.attn.parameters())
    assert row.macs == fvcore_macs(twin, x) > 0
    assert summary.total_macs == fvcore_macs(twin, x)
    assert summarize(twin, (32, 6, 5), receptive_fields=False).row("attn").macs == row.macs
    captured = capture(model, x)
    assert "attn" in captured
    got = as_numpy(captured["attn"])
    assert got is not None
    torch.testing.assert_close(torch.from_numpy(got), real[0])


def test_cross_attention_with_other_key_and_value_sizes_counts_as_fvcore() -> None:
    torch.manual_seed(0)
    model = CrossAttention().eval()
    x = torch.randn(1, 16, 4, 3)
    summary = summarize(model, (16, 4, 3), receptive_fields=False)
    assert summary.total_macs == fvcore_macs(model, x)
    out, weights = real_outputs(model, x)["attn"]  # type: ignore[misc]
    # two tensors: the row lists both shapes
    assert summary.row("attn").output_shape == [tuple(out.shape), tuple(weights.shape)]
    assert summary.row("attn").output_structure == "tuple (tensor, tensor)"


class Heads(nn.Module):
    """Projects pixels to (B, heads, L, E) queries, keys and values and attends: fused or spelled out."""

    def __init__(self, fused: bool, dim: int = 24, heads: int = 3, value_dim: int = 10):
        super().__init__()
        self.fused, self.heads = fused, heads
        self.q = nn.Linear(dim, dim)
        self.k = nn.Linear(dim, dim)
        self.v = nn.Linear(dim, heads * value_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        t = x.flatten(2).transpose(1, 2)
        b, n, _ = t.shape
        q = self.q(t).view(b, n, self.heads, -1).transpose(1, 2)
        k = self.k(t[:, ::2]).view(b, -1, self.heads, q.shape[-1]).transpose(1, 2)
        v = self.v(t[:, ::2]).view(b, k.shape[2], self.heads, -1).transpose(1, 2)
        if self.fused:
            return F.scaled_dot_product_attention(q, k, v)
        weights = (q @ k.transpose(-2, -1) * q.shape[-1] ** -0.5).softmax(-1)
        return torch.matmul(weights, v)


def test_scaled_dot_product_attention_counts_its_two_products() -> None:
    torch.manual_seed(0)
    fused, spelled = Heads(fused=True).eval(), Heads(fused=False).eval()
    spelled.load_state_dict(fused.state_dict())
    x = torch.randn(1, 24, 4, 6)
    with torch.no_grad():
        torch.testing.assert_close(fused(x), spelled(x))  # the same computation
    ours = summarize(fused, (24, 4, 6), receptive_fields=False)
    assert ours.total_macs == fvcore_macs(spelled, x)
    assert ours.total_macs == summarize(spelled, (24, 4, 6), receptive_fields=False).total_macs
    sdpa = [r for r in ours.rows if r.type.endswith("scaled_dot_product_attention")]
    assert len(sdpa) == 1 and sdpa[0].macs > 0


class Functional(nn.Module):
    """Convolution, linear map, einsum and bmm called as functions on parameters."""

    def __init__(self) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.randn(8, 3, 3, 3))
        self.fc = nn.Parameter(torch.randn(5, 8))
        self.mix = nn.Parameter(torch.randn(4, 4))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.conv2d(x, self.w, padding=1, stride=2)  # (1, 8, 5, 4)
        t = F.linear(y.flatten(2).transpose(1, 2), self.fc)  # (1, 20, 5)
        g = torch.einsum("bnc,bmc->bnm", t, t)  # (1, 20, 20)
        h = torch.einsum("bchw,wv->bchv", y, self.mix)  # (1, 8, 5, 4)
        return torch.bmm(g, t).sum() + h.sum()


def test_functional_conv_linear_einsum_and_bmm_count_as_fvcore() -> None:
    torch.manual_seed(0)
    model = Functional().eval()
    x = torch.randn(1, 3, 9, 8)
    summary = summarize(model, (3, 9, 8), receptive_fields=False)
    assert summary.total_macs == fvcore_macs(model, x) > 0
    kinds = {r.type.split(".")[-1] for r in summary.rows if r.macs}
    assert {"conv2d", "linear", "einsum", "bmm"} <= kinds


class Windows(nn.Module):
    """torchvision's shifted-window attention on a map that needs padding to whole windows."""

    def __init__(self) -> None:
        super().__init__()
        self.attn = ShiftedWindowAttention(16, [4, 4], [2, 2], num_heads=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.attn(x.permute(0, 2, 3, 1))


def test_shifted_window_attention_counts_as_fvcore() -> None:
    torch.manual_seed(0)
    model = Windows().eval()
    x = torch.randn(1, 16, 10, 7)
    summary = summarize(model, (16, 10, 7), receptive_fields=False)
    assert summary.total_macs == fvcore_macs(model, x) > 0


def test_linear_on_windows_counts_every_window() -> None:
    """A linear layer after windows are folded into the leading axis counts all of them."""

    class Folded(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc = nn.Linear(6, 7)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.fc(x.reshape(4, -1, 6))

    model = Folded().eval()
    x = torch.randn(1, 6, 4, 4)
    summary = summarize(model, (6, 4, 4), receptive_fields=False)
    assert summary.row("fc").macs == fvcore_macs(model, x) == 4 * 4 * 6 * 7


@pytest.mark.slow
@pytest.mark.parametrize("name", ["vit_b_16", "swin_t", "maxvit_t"])
def test_torchvision_transformers_total_within_one_percent_of_fvcore(name: str) -> None:
    torch.manual_seed(0)
    model = torchvision.models.get_model(name, weights=None).eval()
    for p in model.parameters():
        p.requires_grad_(False)  # the fused kernel for vit_b_16's attention: see below
    ours = summarize(model, (3, 224, 224), receptive_fields=False).total_macs
    reference = fvcore_macs(model, torch.zeros(1, 3, 224, 224))
    if name == "vit_b_16":
        # fvcore sees torch's fused attention kernel here, which it does not count: add it from the shapes
        tokens, dim = model.seq_length, model.hidden_dim
        layers = len(model.encoder.layers)
        reference += layers * (4 * tokens * dim * dim + 2 * tokens * tokens * dim)
    assert abs(ours - reference) <= 0.01 * reference


@pytest.mark.slow
@pytest.mark.parametrize("name", ["vit_tiny_patch16_224", "swin_tiny_patch4_window7_224"])
def test_timm_transformers_total_within_one_percent_of_fvcore(name: str) -> None:
    timm = pytest.importorskip("timm")
    model = timm.create_model(name, pretrained=False).eval()
    ours = summarize(model, (3, 224, 224), receptive_fields=False).total_macs
    # timm attends with F.scaled_dot_product_attention: count the spelled-out products instead
    for m in model.modules():
        if hasattr(m, "fused_attn"):
            m.fused_attn = False
    reference = fvcore_macs(model, torch.zeros(1, 3, 224, 224))
    assert abs(ours - reference) <= 0.01 * reference


class OptionalMask(nn.Module):
    """Like timm's ViT: blocks run one by one only when a mask is given, else as one Sequential."""

    def __init__(self) -> None:
        super().__init__()
        self.blocks = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Conv2d(4, 4, 3))

    def forward(
        self, x: torch.Tensor, mask: torch.Tensor | None = None, flag: bool = False
    ) -> torch.Tensor:
        if mask is not None or flag:
            for block in self.blocks:
                x = block(x) * (mask if mask is not None else 1)
            return x
        return self.blocks(x)


@pytest.mark.parametrize("source", ["own", "timm"])
def test_optional_arguments_trace_the_call_with_the_input_alone(source: str) -> None:
    if source == "timm":
        timm = pytest.importorskip("timm")
        model = timm.create_model("vit_tiny_patch16_224", img_size=32, depth=2, pretrained=False)
        size = (3, 32, 32)
    else:
        model = OptionalMask()
        size = (3, 9, 8)
    model.eval()
    x = torch.randn(1, *size)
    real = real_outputs(model, x)["blocks"]
    assert isinstance(real, torch.Tensor)
    summary = summarize(model, size, receptive_fields=False)
    assert summary.row("blocks").output_shape == tuple(real.shape)
    assert [r.name for r in summary.rows if r.kind == "input"] == []  # the defaults are no inputs
    captured = capture(model, x)
    torch.testing.assert_close(captured["blocks"], real)
    with torch.no_grad():
        torch.testing.assert_close(captured.output, model(x))


class TwoScales(nn.Module):
    """Returns a list, as timm HRNet's stages do: each branch is used by the next module."""

    def __init__(self) -> None:
        super().__init__()
        self.fine = nn.Conv2d(3, 4, 3, padding=1)
        self.coarse = nn.Conv2d(3, 6, 3, stride=2, padding=1)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        return [self.fine(x).relu(), self.coarse(x)]


class Fuse(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.stage = TwoScales()
        self.head = nn.Conv2d(6, 4, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        fine, coarse = self.stage(x)
        return fine[:, :, ::2, ::2] + self.head(coarse)


def test_a_module_returning_a_list_gets_its_shapes_and_capture_entry() -> None:
    torch.manual_seed(0)
    model = Fuse().eval()
    x = torch.randn(1, 3, 8, 6)
    real = real_outputs(model, x)["stage"]
    assert isinstance(real, list)
    row = summarize(model, (3, 8, 6), receptive_fields=False).row("stage")
    assert row.output_shape == [tuple(t.shape) for t in real]
    assert row.output_structure == f"{len(real)} outputs"
    for captured in (capture(model, x), capture(model, x, layers=["stage"])):
        assert len(captured["stage"]) == len(real)
        for got, want in zip(captured["stage"], real, strict=True):
            torch.testing.assert_close(got, want)
    assert list(capture(model, x, layers=["stage"])) == ["stage"]
