"""Modules that hand back their input unchanged are layers too: rows, shapes and capture entries.

Truth: plain forward hooks on a real forward pass record every module call and its output; the table has a row
of that shape for each, and the capture holds the very values the hooks saw.
"""

from __future__ import annotations

from typing import Any

import pytest
import timm
import torch
from torch import nn

from cnnviz.core.analysis.capture import capture
from cnnviz.core.analysis.graph import layer_graph
from cnnviz.core.analysis.summary import summarize


def hooked_outputs(model: nn.Module, x: torch.Tensor) -> dict[str, Any]:
    """Every module call's output in a real forward pass (``name@n`` for repeated calls), cloned on the spot."""
    out: dict[str, Any] = {}
    calls: dict[str, int] = {}
    handles = []
    for name, module in model.named_modules():
        if not name:
            continue

        def hook(_m: nn.Module, _i: Any, o: Any, name: str = name) -> None:
            n = calls.get(name, 0)
            calls[name] = n + 1
            if isinstance(o, torch.Tensor):
                out[name if n == 0 else f"{name}@{n}"] = o.detach().clone()

        handles.append(module.register_forward_hook(hook))
    try:
        with torch.no_grad():
            model(x)
    finally:
        for h in handles:
            h.remove()
    return out


class Shortcut(nn.Module):
    """A block whose shortcut is an empty Sequential when the shapes agree (as in ghostnet and ResNets)."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, 3, padding=1)
        self.bn = nn.BatchNorm2d(cout)
        self.shortcut = nn.Sequential() if cin == cout else nn.Sequential(nn.Conv2d(cin, cout, 1))
        self.drop = nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.drop(self.bn(self.conv(x))) + self.shortcut(x)


def check_against_hooks(model: nn.Module, shape: tuple[int, int, int]) -> dict[str, Any]:
    model.eval()
    torch.manual_seed(0)
    x = torch.randn(1, *shape)
    truth = hooked_outputs(model, x)
    rows = {r.name: r for r in summarize(model, shape, receptive_fields=False).rows}
    missing = sorted(set(truth) - set(rows))
    assert not missing, f"no rows for {missing[:5]}"
    wrong = [k for k, v in truth.items() if rows[k].output_shape != tuple(v.shape)]
    assert not wrong, f"wrong shapes for {wrong[:5]}"
    got = capture(model, x)
    assert not sorted(set(truth) - set(got.activations))
    different = [k for k, v in truth.items() if not torch.allclose(got[k], v, atol=1e-5)]
    assert not different, f"captured values differ for {different[:5]}"
    return rows


def test_empty_sequential_shortcut_and_identity_get_rows() -> None:
    model = nn.Sequential(Shortcut(3, 8), Shortcut(8, 8), nn.Flatten(), nn.LazyLinear(4))
    model(torch.zeros(1, 3, 8, 8))  # materialise the lazy layer
    rows = check_against_hooks(model, (3, 8, 8))
    row = rows["1.shortcut"]
    assert (row.type, row.output_shape, row.params, row.macs) == ("Sequential", (1, 8, 8, 8), 0, 0)
    assert rows["1.drop"].type == "Identity"
    # the shortcut's row feeds the addition, as the data does
    assert "1.shortcut" in rows["1.add"].inputs
    # a non-empty shortcut stays a container holding its convolution
    assert rows["0.shortcut"].kind == "container"


def test_identity_shortcut_keeps_the_receptive_field() -> None:
    model = nn.Sequential(Shortcut(3, 3), Shortcut(3, 3)).eval()
    rows = {r.name: r for r in summarize(model, (3, 16, 16)).rows}
    assert rows["1.shortcut"].rf is not None and rows["1.shortcut"].rf.size == (3, 3)
    # two 3x3 convolutions in a row, the shortcut path alongside: 5x5
    assert rows["1.add"].rf is not None and rows["1.add"].rf.size == (5, 5)


def test_ghostnet_rows_match_forward_hooks() -> None:
    model = timm.create_model("ghostnet_100", pretrained=False)
    rows = check_against_hooks(model, (3, 64, 64))
    # the empty shortcuts of the ghost bottlenecks
    row = rows["blocks.0.0.shortcut"]
    assert (row.type, row.kind, row.params) == ("Sequential", "module", 0)
    assert rows["blocks.1.0.shortcut"].kind == "container"


@pytest.mark.slow
def test_swin_rows_match_forward_hooks() -> None:
    model = timm.create_model(
        "swin_tiny_patch4_window7_224", pretrained=False, img_size=96, window_size=3
    )
    rows = check_against_hooks(model, (3, 96, 96))
    assert any(r.type in ("DropPath", "Identity") for r in rows.values())


def test_vit_blocks_container_has_a_row() -> None:
    model = timm.create_model(
        "vit_tiny_patch16_224", pretrained=False, img_size=32, patch_size=16, depth=2
    )
    rows = check_against_hooks(model, (3, 32, 32))
    assert rows["blocks"].kind == "container" and rows["blocks"].output_shape == (1, 5, 192)
    assert "blocks" in layer_graph(model).containers
