"""The layer graph's tracer builds the graph torch.fx's own tracer builds.

Its overrides only drop work fx repeats per node (argument conversion, node naming, scope and module-stack
copies); truth is ``torch.fx.Tracer`` itself, tracing the same model: every node's name, op, target, arguments,
keyword arguments and module stack and the scope fx records for each node must be the same.
"""

from __future__ import annotations

from typing import Any

import pytest
import timm
import torch
import torch.fx as fx
import torchvision
from torch import nn

from cnnviz.core.analysis.tracer import Tracer


def described(graph: fx.Graph) -> list[tuple[Any, ...]]:
    def arg(a: Any) -> Any:
        return fx.map_arg(a, lambda n: ("node", n.name))

    return [
        (
            n.name,
            n.op,
            n.target,
            arg(n.args),
            arg(dict(n.kwargs)),
            list((n.meta.get("nn_module_stack") or {}).items()),
        )
        for n in graph.nodes
    ]


class _Functional(nn.Module):
    """Parameters and buffers as arguments, repeated targets, a lambda target, constants of every kind."""

    def __init__(self) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(4, 3, 3, 3))
        self.register_buffer("scale", torch.ones(1, 4, 1, 1))
        self.block = nn.Sequential(nn.Conv2d(4, 4, 1), nn.ReLU())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.nn.functional.conv2d(x, self.weight, None, (1, 1), 1)
        y = y * self.scale
        y = self.block(y) + self.block(y)
        a, b = y.chunk(2, dim=1)
        y = torch.cat([b, a], 1).to(torch.float32).contiguous(memory_format=torch.channels_last)
        return y.flatten(1).sum(-1, keepdim=True)


MODELS = {
    "functional": _Functional,
    "shufflenet_v2_x0_5": lambda: torchvision.models.shufflenet_v2_x0_5(),
    "mobilenet_v3_small": lambda: torchvision.models.mobilenet_v3_small(),
    "googlenet": lambda: torchvision.models.googlenet(aux_logits=False, init_weights=False),
    "timm_efficientnet_b0": lambda: timm.create_model("efficientnet_b0"),
}


@pytest.mark.parametrize("name", list(MODELS))
def test_graph_is_fx_own(name: str) -> None:
    model = MODELS[name]().eval()
    theirs, mine = fx.Tracer(), Tracer()
    expected = described(theirs.trace(model))
    ours = described(mine.trace(model))
    assert len(ours) == len(expected)
    for got, want in zip(ours, expected, strict=True):
        assert got == want
    # the scope each node was made in (module path and type), as fx's tracer records it
    assert mine.node_name_to_scope == theirs.node_name_to_scope
