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


class _OwnGetattr(nn.Module):
    """A module class with its own ``__getattr__`` (as some libraries write): fx must reach its parameters
    through nn.Module's, so the tracer patches nn.Module itself, as fx does."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)
        self.bias = nn.Parameter(torch.zeros(1, 4, 1, 1))

    def __getattr__(self, name: str) -> Any:
        return super().__getattr__(name)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # only an intercepted read makes the product a node: a plain tensor would be computed on the spot
        return self.conv(x) + self.bias * 2


def test_a_class_with_its_own_getattr_traces_as_with_fx() -> None:
    model = nn.Sequential(_OwnGetattr(), nn.ReLU()).eval()
    theirs, mine = fx.Tracer(), Tracer()
    assert described(mine.trace(model)) == described(theirs.trace(model))
    assert any(n.op == "call_function" and n.target.__name__ == "mul" for n in mine.graph.nodes)


def test_tracing_leaves_every_module_class_as_it_was() -> None:
    """The call and attribute methods patched for a trace are removed from each class again, also when the
    forward raises, and a plain fx trace afterwards sees nn.Module's own."""

    class Failing(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            raise ValueError("no")

    model = torchvision.models.shufflenet_v2_x0_5().eval()
    classes = {type(m) for m in model.modules()} | {Failing}
    before = {c: {k: c.__dict__.get(k) for k in ("__call__", "__getattr__")} for c in classes}
    call, getattr_ = nn.Module.__call__, nn.Module.__getattr__
    Tracer().trace(model)
    with pytest.raises(ValueError):
        Tracer().trace(nn.Sequential(nn.Conv2d(3, 3, 1), Failing()))
    assert {
        c: {k: c.__dict__.get(k) for k in ("__call__", "__getattr__")} for c in classes
    } == before
    assert nn.Module.__call__ is call and nn.Module.__getattr__ is getattr_
    assert described(fx.Tracer().trace(model)) == described(Tracer().trace(model))
