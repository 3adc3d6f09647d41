"""Shapes of every node of a traced graph, node by node on meta tensors, with caches; and where it fails.

:class:`MetaWalk` interprets the layer graph of a model (the nodes of :class:`cnnviz.core.analysis.graph.
LayerGraph`, whose modules live on the meta device) one node at a time. Each node's result is cached per
(module configuration or node, shapes of what it receives), so after an edit only the nodes whose module or
inputs changed are run again: a hyperparameter edit of a ResNet-50 re-runs a handful of nodes, not 170. The
first node that raises is reported as a :class:`WalkFailure` with the values it received; the walk goes on with
the nodes that do not depend on it (parallel branches), so only what the failure reaches is left uncomputed.
"""

from __future__ import annotations

import operator
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch
import torch.fx as fx
from torch import nn

if TYPE_CHECKING:
    from cnnviz.core.analysis.graph import GraphNode, LayerGraph

_NORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)
_STANDARD = frozenset(
    name
    for name in dir(nn)
    if isinstance(getattr(nn, name), type) and issubclass(getattr(nn, name), nn.Module)
)


_OUT_OF_PLACE = {
    operator.iadd: operator.add,
    operator.imul: operator.mul,
    operator.isub: operator.sub,
}


@dataclass
class WalkFailure:
    """The first node that failed: its graph node, the arguments it received and torch's exception.

    ``blocked`` maps every node that could not be computed to the failed node it depends on (the failed node
    maps to itself; a later node that fails on its own, on a branch of its own, does too).
    """

    node: GraphNode
    args: list[Any]
    kwargs: dict[str, Any]
    error: Exception
    blocked: dict[str, str] = field(default_factory=dict)


class ChannelMismatch(RuntimeError):
    """A batch norm received a channel count other than its ``num_features``."""


def _sig(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        return (value.shape, value.dtype)
    if isinstance(value, list | tuple):
        return (type(value).__name__, tuple(_sig(v) for v in value))
    if isinstance(value, dict):
        return ("D", tuple((k, _sig(v)) for k, v in value.items()))
    if isinstance(value, slice):
        return ("S", value.start, value.stop, value.step)
    try:
        hash(value)
    except TypeError:
        return ("id", id(value))
    return value


# id -> (module, signature): a plain dict is several times faster than a WeakKeyDictionary on this hot path;
# the entry holds the module, so its id cannot be reused while it is cached. Cleared when it grows large.
_SIGNATURES: dict[int, tuple[nn.Module, Any]] = {}


def module_signature(module: nn.Module) -> Any:
    """What decides a module's output shape: a standard torch layer by its type and settings, others by identity.

    Edited modules are never changed in place (an edit builds a new one), so the signature is kept per module.
    """
    hit = _SIGNATURES.get(id(module))
    if hit is not None and hit[0] is module:
        return hit[1]
    cls = type(module)
    if cls.__module__.startswith("torch.nn") and cls.__name__ in _STANDARD:
        sig: Any = (cls.__name__, module.extra_repr())
    else:
        sig = ("id", id(module))
    if len(_SIGNATURES) > 100_000:
        _SIGNATURES.clear()
    _SIGNATURES[id(module)] = (module, sig)
    return sig


def _norm_forward(module: nn.Module, x: torch.Tensor) -> torch.Tensor:
    # torch decomposes batch norm on meta tensors in Python (milliseconds); its output has its input's shape.
    module._check_input_dim(x)  # type: ignore[operator]
    if x.shape[1] != module.num_features:
        raise ChannelMismatch(f"expected {module.num_features} channels, got {x.shape[1]}")
    return torch.empty_like(x)


class MetaWalk:
    """Node-by-node shape inference over one traced graph; reusable across edits of the same structure."""

    def __init__(self, graph: LayerGraph):
        self.graph = graph
        self._cache: dict[Any, Any] = {}
        self._keep: dict[int, nn.Module] = {}  # modules cached by identity stay alive while cached
        self._consts: dict[str, torch.Tensor] = {}

    def _resolve(self, value: Any, env: Mapping[str, Any], graph: LayerGraph) -> Any:
        def value_of(node: fx.Node) -> Any:
            key = graph.node_key(node)
            if key is not None:
                return env[key]
            if node.op != "get_attr":
                return None
            const = graph.constant(node)
            if isinstance(const, torch.Tensor) and not const.is_meta:
                const = self._consts.setdefault(
                    str(node.target), torch.empty_like(const, device="meta")
                )
            return const

        return fx.node.map_arg(value, value_of)

    def run(
        self,
        input_shape: tuple[int, ...],
        modules: Mapping[str, nn.Module] | None = None,
        graph: LayerGraph | None = None,
    ) -> tuple[dict[str, Any], WalkFailure | None]:
        """Every computable node's value (meta tensors) for a batch of one, and the first failure (None if none).

        ``modules`` maps module names to the modules to run instead of the graph's own (the edited ones);
        ``graph`` is a graph of the same structure to read nodes from (default: the walk's).
        """
        graph = graph or self.graph
        env: dict[str, Any] = {}
        x = self._cache.get(("input", input_shape))
        if x is None:
            x = self._cache[("input", input_shape)] = torch.empty((1, *input_shape), device="meta")
        first = True
        failure: WalkFailure | None = None
        blocked: dict[str, str] = {}
        for gnode in graph.nodes:
            node = gnode.fx_node
            if gnode.kind == "input":
                env[gnode.key] = x if first else None
                first = False
                continue
            assert node is not None
            cause = next((blocked[k] for k in gnode.inputs if k in blocked), None)
            if cause is not None:
                blocked[gnode.key] = cause
                continue
            module: nn.Module | None = None
            # Everything else a node reads is a constant of the graph: its inputs' shapes decide its output.
            inputs = tuple(_sig(env.get(k)) for k in gnode.inputs)
            key: Any
            if node.op == "call_module":
                name = gnode.module_name or str(node.target)
                module = (modules or {}).get(name) or gnode.module
                assert module is not None
                msig = module_signature(module)
                if msig[0] == "id":
                    self._keep[id(module)] = module
                key = ("m", msig, gnode.key if msig[0] == "id" else "", inputs)
            else:
                key = ("f", gnode.key, inputs)
            try:
                hit = key in self._cache
            except TypeError:
                hit, key = False, None
            if hit:
                env[gnode.key] = self._cache[key]
                continue
            args = self._resolve(node.args, env, graph)
            kwargs = self._resolve(node.kwargs, env, graph)
            try:
                with torch.no_grad():
                    value = self._call(node, module, list(args), dict(kwargs))
            except Exception as exc:  # noqa: BLE001 - the first failure is reported in words
                blocked[gnode.key] = gnode.key
                if failure is None:
                    failure = WalkFailure(gnode, list(args), dict(kwargs), exc, blocked)
                continue
            if key is not None:
                self._cache[key] = value
            env[gnode.key] = value
        return env, failure

    @staticmethod
    def _call(
        node: fx.Node, module: nn.Module | None, args: list[Any], kwargs: dict[str, Any]
    ) -> Any:
        if node.op == "call_module":
            assert module is not None
            if type(module) in _NORMS and len(args) == 1 and not kwargs:
                return _norm_forward(module, args[0])
            return module(*args, **kwargs)
        if node.op == "call_method":
            return getattr(args[0], str(node.target))(*args[1:], **kwargs)
        target = node.target
        assert callable(target)
        if target in (operator.iadd, operator.imul, operator.isub):
            # out-of-place: a cached value must never change under another node; but in place the result
            # must keep the left side's shape (``out += identity`` cannot broadcast ``out`` up), as torch checks
            result = _OUT_OF_PLACE[target](*args, **kwargs)
            left = args[0]
            if isinstance(left, torch.Tensor) and isinstance(result, torch.Tensor):
                if result.shape != left.shape:
                    raise RuntimeError(
                        f"output with shape {list(left.shape)} doesn't match the broadcast shape "
                        f"{list(result.shape)}"
                    )
            return result
        result = target(*args, **kwargs)
        if target in (operator.add, operator.sub) and len(args) == 2:
            # torch.fx records ``out += identity`` as an addition; run eagerly it is in place and cannot
            # broadcast its left side up to a larger map: a merge of 1×1 and 2×2 maps fails in the real model
            a, b = args
            if (
                isinstance(a, torch.Tensor)
                and isinstance(b, torch.Tensor)
                and a.dim() == b.dim() == 4
                and isinstance(result, torch.Tensor)
                and result.shape != a.shape
            ):
                raise RuntimeError(
                    f"the maps {list(a.shape)} and {list(b.shape)} differ in size; a residual addition "
                    "needs equal sizes"
                )
        return result
