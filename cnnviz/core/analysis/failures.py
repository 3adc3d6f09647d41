"""How a failed forward pass is described: the layer that raised and the shape it received."""

from __future__ import annotations

from typing import Any

import torch
import torch.fx as fx

from cnnviz.core.analysis.graph import LayerGraph
from cnnviz.core.errors import CnnvizError, one_line


class ForwardError(CnnvizError):
    """The model's forward pass failed; the message names the layer and the shape it received."""


def _is_tensorish(value: Any) -> bool:
    if isinstance(value, torch.Tensor):
        return True
    if isinstance(value, (tuple, list)) and value:
        return all(isinstance(v, torch.Tensor) for v in value)
    return False


def shape_of(value: Any) -> str:
    """A value's shape as text: ``[1, 3, 8, 8]`` for a tensor, ``([..], [..])`` for a tuple of them."""
    if isinstance(value, torch.Tensor):
        return "[" + ", ".join(str(s) for s in value.shape) + "]"
    if isinstance(value, (tuple, list)):
        return "(" + ", ".join(shape_of(v) for v in value) + ")"
    return type(value).__name__


class Locator(fx.Interpreter):
    """Re-runs a failed graph node by node to name the layer that raised."""

    def __init__(self, gm: fx.GraphModule, graph: LayerGraph):
        super().__init__(gm)
        self.layer_graph = graph
        self.failed: tuple[str, str, str] | None = None
        self._keys = {n.fx_node.name: n for n in graph.nodes if n.fx_node is not None}

    def run_node(self, n: fx.Node) -> Any:
        try:
            return super().run_node(n)
        except Exception:
            gnode = self._keys.get(n.name)
            args = [self.env[a] for a in n.all_input_nodes if a in self.env]
            received = shape_of(args[0]) if args else "no input"
            key = gnode.key if gnode else n.name
            kind = gnode.type if gnode else n.op
            self.failed = (key, kind, received)
            raise


def forward_error(exc: Exception, key: str, kind: str, received: str) -> ForwardError:
    """The error for a pass that failed at layer ``key`` (of type ``kind``) on an input of shape ``received``."""
    return ForwardError(
        f"the forward pass failed at layer '{key}' ({kind}) on an input of shape {received}: "
        f"{one_line(exc)}"
    )
