"""ONNX graph -> ``torch.fx.GraphModule`` with real torch layers named after the file's nodes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
import torch.fx as fx

from cnnviz.core import text
from cnnviz.core.models.onnx.builder import Builder, Node, attribute_value, tensor_from_proto
from cnnviz.core.models.onnx.ops import CONVERTERS
from cnnviz.core.models.onnx.reading import OnnxModelError, import_onnx

_DEFAULT_DOMAINS = ("", "ai.onnx")


def opset_of(model: Any) -> int:
    """The version of the default ONNX operator set the file uses."""
    for entry in model.opset_import:
        if entry.domain in _DEFAULT_DOMAINS:
            return int(entry.version)
    raise OnnxModelError("the ONNX file does not say which version of the ONNX operators it uses")


def unsupported_operators(model: Any) -> list[str]:
    """Operator names of the file that have no converter, in the order they first appear."""
    seen: list[str] = []
    for node in model.graph.node:
        name = node.op_type if node.domain in _DEFAULT_DOMAINS else f"{node.domain}.{node.op_type}"
        if (
            node.domain not in _DEFAULT_DOMAINS or node.op_type not in CONVERTERS
        ) and name not in seen:
            seen.append(name)
    return seen


def graph_input(model: Any) -> tuple[str, list[int | str | None]]:
    """The one graph input that is not an initialiser: its name and dimensions (a name or None when dynamic)."""
    initializers = {t.name for t in model.graph.initializer}
    inputs = [i for i in model.graph.input if i.name not in initializers]
    if len(inputs) != 1:
        names = ", ".join(i.name for i in inputs) or "none"
        raise OnnxModelError(
            f"the ONNX model takes {len(inputs)} inputs ({names}); cnnviz shows models that take one picture"
        )
    dims: list[int | str | None] = []
    for d in inputs[0].type.tensor_type.shape.dim:
        if d.HasField("dim_value") and d.dim_value > 0:
            dims.append(int(d.dim_value))
        else:
            dims.append(d.dim_param or None)
    return inputs[0].name, dims


def resolve_input_shape(
    dims: list[int | str | None], override: tuple[int, ...] | None, name: str
) -> tuple[int, ...]:
    """The input (C, H, W ...) without the batch axis: the file's own, with ``override`` where given."""
    if len(dims) < 2:
        raise OnnxModelError(
            f"the model's input '{name}' has {len(dims)} axes; cnnviz needs a batch axis and channels"
        )
    own = dims[1:]
    if override is not None:
        if len(override) != len(own):
            raise OnnxModelError(
                f"the input size {text.dims(override)} has {len(override)} axes, but the model's input "
                f"'{name}' has {len(own)} besides the batch"
            )
        if isinstance(own[0], int) and own[0] != override[0]:
            raise OnnxModelError(
                f"the model takes {own[0]}-channel input, not {override[0]} channels"
            )
        return tuple(int(v) for v in override)
    dynamic = [
        str(d) if d else f"axis {i + 1}" for i, d in enumerate(own) if not isinstance(d, int)
    ]
    if dynamic:
        raise OnnxModelError(
            f"the model's input '{name}' has no fixed size ({', '.join(dynamic)} dynamic); give it, e.g. "
            "--input-size 3,224,224 (input_shape= in Python)"
        )
    return tuple(int(v) for v in own)  # type: ignore[arg-type]


def _static_shapes(
    onnx: Any, model: Any, input_name: str, shape: tuple[int, ...]
) -> dict[str, tuple[int, ...]]:
    """Every value's shape for a batch of one, by ONNX's own shape inference (empty where it cannot tell)."""
    copy = type(model)()
    copy.CopyFrom(model)
    for value in copy.graph.input:
        if value.name == input_name:
            dims = value.type.tensor_type.shape.dim
            for d, size in zip(dims, (1, *shape), strict=True):
                d.ClearField("dim_param")
                d.dim_value = size
    try:
        inferred = onnx.shape_inference.infer_shapes(copy, strict_mode=False, data_prop=True)
    except Exception:  # noqa: BLE001 - inference is a help, not a requirement
        inferred = copy
    shapes: dict[str, tuple[int, ...]] = {}
    graph = inferred.graph
    for value in [*graph.input, *graph.value_info, *graph.output]:
        t = value.type.tensor_type
        if not t.HasField("shape"):
            continue
        dims = [d.dim_value if d.HasField("dim_value") else -1 for d in t.shape.dim]
        if all(d >= 0 for d in dims):
            shapes[value.name] = tuple(dims)
    return shapes


def convert(model: Any, input_shape: tuple[int, ...], path: Path) -> tuple[fx.GraphModule, Builder]:
    """The GraphModule computing ``model``'s graph for inputs of ``(1, *input_shape)``."""
    onnx = import_onnx()
    missing = unsupported_operators(model)
    if missing:
        raise OnnxModelError(
            f"{path.name} uses {', '.join(missing)}: not supported; cnnviz converts the operators of "
            "convolutional networks (Conv, BatchNormalization, pooling, activations, Gemm, Resize ...)"
        )
    opset = opset_of(model)
    input_name, _ = graph_input(model)
    initializers = {t.name: t for t in model.graph.initializer}
    shapes = _static_shapes(onnx, model, input_name, input_shape)
    b = Builder(opset, shapes, set(initializers))
    for name, proto in initializers.items():
        b.env[name] = _tensor(onnx, proto, f"the initializer '{name}'")
    b.shapes[input_name] = (1, *input_shape)
    b.env[input_name] = b.graph.placeholder("x")
    for index, proto in enumerate(model.graph.node):
        if any(a.HasField("g") or len(a.graphs) for a in proto.attribute):
            raise OnnxModelError(
                f"the node '{proto.name}' ({proto.op_type}) holds a subgraph; cnnviz converts plain graphs only"
            )
        node = Node(
            proto.op_type, proto.name, list(proto.input), list(proto.output),
            {a.name: _attribute(onnx, a, proto) for a in proto.attribute}, index,
        )  # fmt: skip
        for name in node.inputs:
            if name and name not in b.env:
                raise OnnxModelError(
                    f"the node {node.label} reads '{name}', which no earlier node computes; the graph is "
                    "not in order or damaged"
                )
        try:
            outputs = CONVERTERS[node.op](b, node)
        except OnnxModelError:
            raise
        except (RuntimeError, ValueError, TypeError, IndexError, KeyError, AssertionError) as exc:
            raise OnnxModelError(
                f"the node {node.label} could not be converted: its inputs or attributes do not fit together"
            ) from exc
        node.check_attributes()
        for name, value in zip(node.outputs, outputs, strict=False):
            if name:
                b.env[name] = value
    results = []
    for out in model.graph.output:
        value = b.env.get(out.name)
        if value is None:
            raise OnnxModelError(f"the model's output '{out.name}' is computed by no node")
        results.append(b._arg(value))
    b.graph.output(results[0] if len(results) == 1 else tuple(results))
    module = fx.GraphModule(b.root, b.graph, class_name="OnnxModel")
    module.onnx_node_names = dict(b.names)  # type: ignore[assignment]
    return module.eval(), b


def _tensor(onnx: Any, proto: Any, what: str) -> torch.Tensor:
    try:
        return tensor_from_proto(onnx, proto)
    except OnnxModelError:
        raise
    except Exception as exc:  # noqa: BLE001 - numpy's words about a buffer of the wrong size
        raise OnnxModelError(
            f"{what} holds fewer or more bytes than its shape {list(proto.dims)} needs; the file is damaged"
        ) from exc


def _attribute(onnx: Any, attr: Any, proto: Any) -> Any:
    if attr.HasField("t"):
        return _tensor(onnx, attr.t, f"the constant of node '{proto.name}' ({proto.op_type})")
    return attribute_value(onnx, attr)
