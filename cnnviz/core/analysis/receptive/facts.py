"""The facts the receptive-field walk keeps per layer, and the arithmetic that combines them."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import torch
from torch import nn

from cnnviz.core.analysis.graph import GraphNode, LayerGraph
from cnnviz.core.analysis.receptive.indexmaps import IndexMap
from cnnviz.core.models.layertypes import POINTWISE_FUNCTIONS, POINTWISE_MODULES

# Exact rationals: ints while every stride is whole (almost every network), Fractions once a layer upsamples.
# Fraction arithmetic costs several times int arithmetic, and a table walks every layer of the model.
Rational = int | Fraction

_FRACTIONS: dict[Rational, Fraction] = {}


def as_fraction(value: Rational) -> Fraction:
    """``value`` as the Fraction the public fields hold. A network has a handful of distinct strides and
    paddings, and making a Fraction runs Python code: each is made once and shared (Fractions are immutable)."""
    found = _FRACTIONS.get(value)
    if found is None:
        if len(_FRACTIONS) > 4096:
            _FRACTIONS.clear()
        found = _FRACTIONS[value] = Fraction(value)
    return found


@dataclass
class _AxisRF:
    r: Rational
    s: Rational
    p: Rational


@dataclass
class _NodeRF:
    """What the analysis knows about one layer's output."""

    axes: tuple[int, int] | None  # tensor dims that are (H, W); None: no spatial map
    sizes: tuple[int, int] | None  # (H, W) of the output
    rf: tuple[_AxisRF, _AxisRF] | None  # None with global_ False: unknown
    global_: bool = False
    uniform: bool = True
    gated: bool = False  # multiplied by a global gate (squeeze-and-excitation): depends on everything through it
    # per input key: index maps (H, W) from this node's output axes to that input's axes; None: every position
    back: Mapping[str, tuple[IndexMap, IndexMap] | None] | None = None
    const: bool = (
        False  # computed from parameters and constants alone: independent of the input image
    )
    parts: bool = (
        False  # a tuple of tensors (split, chunk, unbind): the facts hold for each element
    )
    # the dim holding a token sequence, one token per image position (see receptive.tokens); axes is then None
    tokens: int | None = None


# Ops returning a tuple of pieces of their input along one dim (dim argument position, default).
_SPLITS = {"chunk": (2, 0), "split": (2, 0), "tensor_split": (2, 0), "split_with_sizes": (2, 0)}
_RESHAPES = ("view", "reshape", "flatten", "unflatten")


def _holds_tensor(value: Any) -> bool:
    if isinstance(value, torch.Tensor):
        return True
    if isinstance(value, (list, tuple)):
        return any(_holds_tensor(v) for v in value)
    return False


def _prod(values: tuple[int, ...]) -> int:
    return math.prod(values) if values else 1


def _kept_axes(
    in_shape: tuple[int, ...], out_shape: tuple[int, ...], axes: tuple[int, int]
) -> tuple[int, int] | None:
    """Where the (H, W) dims of a reshape's input land in its output, if both survive intact.

    Row-major order: output dim j carries input dim a unchanged exactly when both have the same size and the
    dims before them hold the same number of elements (channel-only reshapes such as a channel shuffle).
    """
    found = []
    for a in axes:
        j = same_dim(in_shape[a], _prod(in_shape[:a]), out_shape)
        if j is None:
            return None
        found.append(j)
    return (found[0], found[1]) if found[0] < found[1] else None


def same_dim(size: int, prefix: int, out_shape: tuple[int, ...]) -> int | None:
    """The first output dim of ``size`` elements with ``prefix`` elements before it: in row-major order, the dim
    that holds the same positions as an input dim of that size and prefix."""
    for j, n in enumerate(out_shape):
        if n == size and _prod(out_shape[:j]) == prefix:
            return j
    return None


def is_pointwise(module: nn.Module | None, name: str) -> bool:
    """An elementwise layer (activation, eval-mode norm, arithmetic): each output element reads its own input."""
    return isinstance(module, POINTWISE_MODULES) or (module is None and name in POINTWISE_FUNCTIONS)


def permute_order(node: GraphNode, name: str, ndim: int) -> list[int]:
    """For each output dim of a permute / transpose / movedim (or a ``Permute`` module), the input dim it holds."""
    assert node.fx_node is not None
    args: tuple[Any, ...] = node.fx_node.args  # fx arguments: checked where used
    if node.module is not None:  # a Permute module (torchvision's Swin, ConvNeXt)
        return [int(v) % ndim for v in getattr(node.module, "dims")]  # noqa: B009 - any module
    if name == "permute":
        dims = args[1:] if len(args) > 2 or isinstance(args[1], int) else args[1]
        return [int(v) % ndim for v in dims]
    a, b = int(args[1]) % ndim, int(args[2]) % ndim
    order = list(range(ndim))
    if name == "transpose":
        order[a], order[b] = order[b], order[a]
    else:
        order.pop(a)
        order.insert(b, a)
    return order


def _pair(v: Any) -> tuple[int, int]:
    if isinstance(v, int):
        return (v, v)
    v = tuple(int(x) for x in v)
    return (v[0], v[0]) if len(v) == 1 else (v[-2], v[-1])


def _merge(rfs: list[_NodeRF]) -> tuple[tuple[_AxisRF, _AxisRF] | None, bool, bool]:
    """Merge paths by their extreme edges (Araujo et al.). Returns (rf, global, uniform)."""
    if any(r.global_ for r in rfs):
        return None, True, True
    known = [r.rf for r in rfs if r.rf is not None]
    if len(known) != len(rfs) or not rfs:
        return None, False, True
    merged = []
    uniform = all(r.uniform for r in rfs)
    for axis in range(2):
        items = [rf[axis] for rf in known]
        s = items[0].s
        if any(i.s != s for i in items):
            uniform = False
            s = min(i.s for i in items)
        left = min(-i.p for i in items)
        right = max(-i.p + i.r - 1 for i in items)
        merged.append(_AxisRF(right - left + 1, s, -left))
    return (merged[0], merged[1]), False, uniform


def _conv_like(rf: _AxisRF, k: int, s: int, p: int, d: int) -> _AxisRF:
    return _AxisRF(rf.r + (d * (k - 1)) * rf.s, rf.s * s, rf.p + p * rf.s)


def _shape(value: Any) -> tuple[int, ...] | None:
    if isinstance(value, torch.Tensor):
        return tuple(value.shape)
    return None


def _tensor_args(node: GraphNode, graph: LayerGraph) -> list[str]:
    """Keys of the layer inputs in argument order (flattening lists, e.g. torch.cat([a, b]))."""
    assert node.fx_node is not None
    keys: list[str] = []

    def visit(a: Any) -> None:
        if isinstance(a, (list, tuple)):
            for v in a:
                visit(v)
        elif hasattr(a, "op"):
            k = graph.node_key(a)
            if k is not None:
                keys.append(k)

    for a in node.fx_node.args:
        visit(a)
    for a in node.fx_node.kwargs.values():
        visit(a)
    return keys


def _arg(node: GraphNode, index: int, name: str, default: Any) -> Any:
    assert node.fx_node is not None
    if name in node.fx_node.kwargs:
        return node.fx_node.kwargs[name]
    if len(node.fx_node.args) > index:
        return node.fx_node.args[index]
    return default
