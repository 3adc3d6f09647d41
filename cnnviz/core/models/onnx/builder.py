"""The state of one conversion: the fx graph being built, the values of the ONNX graph, constant folding.

Every ONNX value is either a constant tensor (initialisers, ``Constant`` nodes and anything computed only from
them, such as the shape arithmetic exporters emit before a ``Reshape``) or an fx node of the graph being built.
Operators whose inputs are all constant run at once, so the finished module holds no shape arithmetic.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.fx as fx
from torch import nn

from cnnviz.core.models.onnx.reading import OnnxModelError

_INVALID = re.compile(r"[^0-9A-Za-z_]+")


def attribute_value(onnx: Any, attr: Any) -> Any:
    value = onnx.helper.get_attribute_value(attr)
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, list) and value and isinstance(value[0], bytes):
        return [v.decode("utf-8", "replace") for v in value]
    if hasattr(value, "dims") and hasattr(value, "data_type"):
        return tensor_from_proto(onnx, value)
    return value


def tensor_from_proto(onnx: Any, proto: Any) -> torch.Tensor:
    """A torch tensor of an ONNX ``TensorProto`` (float64 stays float64 until a layer takes it)."""
    array = onnx.numpy_helper.to_array(proto)
    if array.dtype.kind not in "fiub":
        raise OnnxModelError(
            f"the tensor '{proto.name}' holds {array.dtype} values, which a CNN layer cannot use"
        )
    return torch.from_numpy(array.copy())


@dataclass
class Node:
    """One ONNX node with its attributes decoded."""

    op: str
    name: str  # the file's own name ("" when the file gives none)
    inputs: list[str]
    outputs: list[str]
    attrs: dict[str, Any]
    index: int
    used: set[str] = field(default_factory=set)

    @property
    def label(self) -> str:
        """How messages name the node: its name and operator."""
        return f"'{self.name}' ({self.op})" if self.name else f"{self.op} node {self.index}"

    def attr(self, key: str, default: Any = None) -> Any:
        """An attribute's value (``default`` when absent); every attribute read is marked as understood."""
        self.used.add(key)
        return self.attrs.get(key, default)

    def check_attributes(self) -> None:
        """Refuse attributes this converter did not read: ignoring one would compute something else."""
        unknown = sorted(set(self.attrs) - self.used)
        if unknown:
            raise OnnxModelError(
                f"the node {self.label} uses the attribute(s) {', '.join(unknown)}, which cnnviz cannot "
                "convert exactly"
            )

    def refuse(self, what: str) -> OnnxModelError:
        return OnnxModelError(f"the node {self.label} {what}, which cnnviz cannot convert exactly")


Value = torch.Tensor | fx.Node | None


class Builder:
    """Builds a ``torch.fx.GraphModule`` whose submodules are named after the ONNX nodes."""

    def __init__(self, opset: int, shapes: dict[str, tuple[int, ...]], initializers: set[str]):
        self.opset = opset
        self.shapes = shapes
        self.initializers = initializers
        self.root = nn.Module()
        self.graph = fx.Graph()
        self.env: dict[str, Value] = {}
        self.names: dict[str, str] = {}  # module attribute -> ONNX node name
        self._params: dict[str, nn.Parameter] = {}
        self._consts: dict[int, fx.Node] = {}
        self.aliases: dict[str, str] = {}  # Identity outputs of an initialiser -> that initialiser

    # -- values ---------------------------------------------------------------------------------------------
    def value(self, node: Node, i: int) -> Value:
        """The i-th input of ``node`` (None when absent or given as '')."""
        if i >= len(node.inputs) or not node.inputs[i]:
            return None
        return self.env[node.inputs[i]]

    def tensor_input(self, node: Node, i: int) -> fx.Node | torch.Tensor:
        v = self.value(node, i)
        if v is None:
            raise node.refuse(f"lacks its input {i + 1}")
        return v

    def const(self, node: Node, i: int, what: str) -> torch.Tensor | None:
        """A constant input (None when absent); a computed one is refused in words."""
        v = self.value(node, i)
        if v is None or isinstance(v, torch.Tensor):
            return v
        raise node.refuse(f"computes its {what} inside the graph instead of storing them")

    def shape(self, name: str, node: Node) -> tuple[int, ...]:
        v = self.env.get(name)
        if isinstance(v, torch.Tensor):
            return tuple(v.shape)
        shape = self.shapes.get(name)
        if shape is None:
            raise node.refuse(
                f"needs the shape of '{name}', which the file does not fix; give the input size "
                "(--input-size C,H,W)"
            )
        return shape

    def input_shape(self, node: Node, i: int = 0) -> tuple[int, ...]:
        return self.shape(node.inputs[i], node)

    # -- graph building -------------------------------------------------------------------------------------
    def _arg(self, value: Any) -> Any:
        if isinstance(value, torch.Tensor):
            node = self._consts.get(id(value))
            if node is None:
                name = f"onnx_constant_{len(self._consts)}"
                self.root.register_buffer(name, value)
                node = self.graph.get_attr(name)
                self._consts[id(value)] = node
            return node
        if isinstance(value, (list, tuple)):
            return type(value)(self._arg(v) for v in value)
        return value

    def call(self, target: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """``target(*args)`` now when every input is constant, else a node of the graph."""
        if not _has_node(args) and not _has_node(kwargs):
            return target(*args, **kwargs)
        return self.graph.call_function(
            target, tuple(self._arg(a) for a in args), {k: self._arg(v) for k, v in kwargs.items()}
        )

    def method(self, name: str, x: Any, *args: Any) -> Any:
        if not isinstance(x, fx.Node) and not _has_node(args):
            return getattr(x, name)(*args)
        return self.graph.call_method(name, (self._arg(x), *(self._arg(a) for a in args)))

    def module(self, node: Node, module: nn.Module, *inputs: Any, suffix: str = "") -> Any:
        """Run ``module`` (named after ``node``) on ``inputs``; constant inputs run it at once."""
        if not _has_node(inputs):
            with torch.no_grad():
                return module(*inputs)
        name = self._attribute_name(node, suffix)
        self.root.add_module(name, module)
        self.names[name] = node.name + (f" ({suffix})" if suffix else "")
        return self.graph.call_module(name, tuple(self._arg(v) for v in inputs))

    def parameter(self, node: Node, i: int, tensor: torch.Tensor) -> nn.Parameter:
        """The parameter for input i: one per initialiser, shared by every layer that uses it."""
        key = self.aliases.get(node.inputs[i], node.inputs[i])
        param = self._params.get(key)
        if param is None or param.shape != tensor.shape:
            param = nn.Parameter(tensor.detach().to(torch.float32).clone(), requires_grad=True)
            if key in self.initializers:
                self._params[key] = param
        return param

    def _attribute_name(self, node: Node, suffix: str) -> str:
        base = _INVALID.sub("_", node.name).strip("_") or f"{node.op}_{node.index}"
        if base[0].isdigit():
            base = f"{node.op}_{base}"
        if suffix:
            base = f"{base}_{suffix}"
        name, n = base, 1
        # GraphModule's own attributes (graph, code, forward ...) cannot name a layer
        while name in self.names or hasattr(self.root, name) or hasattr(fx.GraphModule, name):
            n += 1
            name = f"{base}_{n}"
        return name


def _has_node(value: Any) -> bool:
    if isinstance(value, fx.Node):
        return True
    if isinstance(value, (list, tuple)):
        return any(_has_node(v) for v in value)
    if isinstance(value, dict):
        return any(_has_node(v) for v in value.values())
    return False


def ints(value: Sequence[int] | None, n: int, default: int) -> tuple[int, ...]:
    """An ONNX per-axis attribute as a tuple of n ints (``default`` for each when absent)."""
    if value is None:
        return (default,) * n
    out = tuple(int(v) for v in value)
    if len(out) != n:
        raise OnnxModelError(f"an attribute gives {len(out)} values for {n} spatial axes")
    return out
