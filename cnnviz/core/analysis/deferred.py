"""Layer values a capture does not keep, recomputed exactly from the values it keeps when they are first read.

Keeping every layer's output costs a capture more than the arithmetic: each kept map is written to memory that
no later layer reuses, so it leaves the cache. Elementwise layers -- eval-mode batch norms, activations, residual
additions, gating products, concatenations -- cost one cheap kernel to compute again from their inputs, and
their maps are most of what a capture keeps. Such a layer is *deferred*: the pass computes it as the model does
(an activation whose input is deferred runs in place, as the model's own ``inplace=True`` would) and keeps only
a :class:`Recipe`; :class:`LayerValues` runs the recipe when the value is first read.

A recomputed value is bit-equal to the one the pass computed: the same kernel on the same input tensors, under
the same number of threads (CPU kernels split their work by thread count, and a batch norm or a SiLU can differ
in the last bit between splits). A batch norm's tensors are taken when the capture runs; if they change in
place before the value is read (a training step), reading it raises :class:`StaleCaptureError`.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch
import torch.fx as fx
import torch.nn.functional as F
from torch import nn

from cnnviz.core.errors import CnnvizError


class StaleCaptureError(CnnvizError):
    """A deferred layer value whose inputs changed after the capture: it can no longer be reproduced."""


@dataclass(frozen=True)
class Ref:
    """A recipe argument: the value of the layer ``key``."""

    key: str


@dataclass(frozen=True)
class Recipe:
    """How a deferred layer's value is computed again: ``fn(*args, **kwargs)`` with each :class:`Ref` replaced by
    that layer's value; ``norm`` is the batch norm whose tensors the call reads (taken at capture time)."""

    fn: Callable[..., Any]
    args: tuple[Any, ...]
    kwargs: Mapping[str, Any]
    refs: tuple[str, ...]
    norm: nn.Module | None = None


# Elementwise modules, by exact type (a subclass may compute anything): the functional call their forward makes,
# with the module's settings, out of place.
def _activation_call(
    module: nn.Module,
) -> tuple[Callable[..., Any], tuple[Any, ...], dict[str, Any]] | None:
    kind = type(module)
    settings = module.__dict__  # the plain numbers its forward passes on
    if kind is nn.ReLU:
        return F.relu, (), {}
    if kind in (nn.ReLU6, nn.Hardtanh):
        return F.hardtanh, (settings["min_val"], settings["max_val"]), {}
    if kind is nn.LeakyReLU:
        return F.leaky_relu, (settings["negative_slope"],), {}
    if kind is nn.GELU:
        return F.gelu, (), {"approximate": settings["approximate"]}
    simple: dict[type, Callable[..., Any]] = {
        nn.Hardswish: F.hardswish,
        nn.Hardsigmoid: F.hardsigmoid,
        nn.SiLU: F.silu,
        nn.Mish: F.mish,
        nn.Sigmoid: torch.sigmoid,
        nn.Tanh: torch.tanh,
    }
    fn = simple.get(kind)
    return (fn, (), {}) if fn is not None else None


# The in-place form of each activation call above, as (target, keyword arguments).
_IN_PLACE: dict[Callable[..., Any], tuple[Callable[..., Any], dict[str, Any]]] = {
    F.relu: (torch.relu_, {}),
    torch.relu: (torch.relu_, {}),
    F.hardtanh: (F.hardtanh, {"inplace": True}),
    F.leaky_relu: (F.leaky_relu, {"inplace": True}),
    F.hardswish: (F.hardswish, {"inplace": True}),
    F.hardsigmoid: (F.hardsigmoid, {"inplace": True}),
    F.silu: (F.silu, {"inplace": True}),
    F.mish: (F.mish, {"inplace": True}),
    torch.sigmoid: (torch.sigmoid_, {}),
    torch.tanh: (torch.tanh_, {}),
}

# Elementwise functions and concatenation (already made out of place), with how many positional arguments a
# call may have: more would be a positional ``inplace``.
_FUNCTIONS: dict[Any, int] = {
    operator.add: 2,
    operator.sub: 2,
    operator.mul: 2,
    operator.truediv: 2,
    torch.add: 2,
    torch.sub: 2,
    torch.mul: 2,
    torch.div: 2,
    torch.cat: 2,
    torch.concat: 2,
    torch.relu: 1,
    torch.sigmoid: 1,
    torch.tanh: 1,
    F.relu: 1,
    F.relu6: 1,
    F.hardswish: 1,
    F.hardsigmoid: 1,
    F.silu: 1,
    F.mish: 1,
    F.gelu: 1,
    F.sigmoid: 1,
    F.tanh: 1,
    F.hardtanh: 3,
    F.leaky_relu: 2,
}
_METHODS = frozenset({"add", "sub", "mul", "div", "relu", "sigmoid", "tanh"})
_PLAIN = (int, float, bool, str, type(None))


def _batch_norm(x: torch.Tensor, state: tuple[Any, ...]) -> torch.Tensor:
    mean, var, weight, bias, eps = state[:5]
    return F.batch_norm(x, mean, var, weight, bias, False, 0.0, eps)


def _norm_tensors(module: nn.Module) -> tuple[Any, ...]:
    buffers, params = module._buffers, module._parameters
    return (
        buffers.get("running_mean"),
        buffers.get("running_var"),
        params.get("weight"),
        params.get("bias"),
    )


def norm_state(module: nn.Module) -> tuple[Any, ...]:
    """What a deferred batch norm reads, taken at capture time: its four tensors, ``eps``, and their versions."""
    tensors = _norm_tensors(module)
    return (*tensors, module.eps, tuple(t._version if t is not None else -1 for t in tensors))


def _template(value: Any, available: Mapping[fx.Node, str], refs: list[str]) -> Any:
    """``value`` (an fx argument) with each node replaced by a :class:`Ref`; raises LookupError when it reads
    anything but available layer values and plain constants."""
    if isinstance(value, fx.Node):
        key = available[value]
        refs.append(key)
        return Ref(key)
    if isinstance(value, (tuple, list)):  # fx's immutable lists become plain ones
        items = [_template(v, available, refs) for v in value]
        return tuple(items) if isinstance(value, tuple) else items
    if isinstance(value, _PLAIN):
        return value
    raise LookupError("not a plain constant")


def recipe_for(
    op: str,
    target: Any,
    args: tuple[Any, ...],
    kwargs: Mapping[str, Any],
    module: nn.Module | None,
    available: Mapping[fx.Node, str],
) -> Recipe | None:
    """The recipe of a graph call (already made out of place; ``module`` for a module call) whose value an
    elementwise recompute from ``available`` layer values reproduces exactly, or None when it has to be kept."""
    refs: list[str] = []
    try:
        if op == "call_module":
            if module is None:
                return None
            if type(module) in (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d):
                # only eval-mode statistics are elementwise; without running statistics a norm reduces the batch
                if not module.track_running_stats or module.running_mean is None:
                    return None
                if len(args) != 1 or kwargs:
                    return None
                return Recipe(
                    _batch_norm, (_template(args[0], available, refs),), {}, tuple(refs), module
                )
            call = _activation_call(module)
            if call is None or len(args) != 1 or kwargs:
                return None
            fn, params, settings = call
            return Recipe(fn, (_template(args[0], available, refs), *params), settings, tuple(refs))
        if op == "call_function":
            limit = _FUNCTIONS.get(target)
            if limit is None or len(args) > limit:
                return None
            fn = target
        elif op == "call_method" and target in _METHODS:
            fn = getattr(torch.Tensor, str(target))
        else:
            return None
        if "out" in kwargs or kwargs.get("inplace"):
            return None
        call_args = _template(tuple(args), available, refs)
        call_kwargs = {k: _template(v, available, refs) for k, v in kwargs.items()}
    except LookupError:
        return None
    if not refs:
        return None
    return Recipe(fn, call_args, call_kwargs, tuple(refs))


def in_place_call(
    recipe: Recipe, source: fx.Node
) -> tuple[Callable[..., Any], tuple[Any, ...], dict[str, Any]] | None:
    """The in-place call (target, arguments after the input, keywords) of an activation whose input is the
    deferred ``source``, or None. A deferred value is recomputed, never read back from the pass, so when nothing
    else reads ``source`` the activation may overwrite it, as the model's own ``inplace=True`` would."""
    if recipe.norm is not None or len(recipe.refs) != 1 or len(source.users) != 1:
        return None
    if not recipe.args or type(recipe.args[0]) is not Ref:
        return None
    form = _IN_PLACE.get(recipe.fn)
    if form is None:
        return None
    target, extra = form
    kwargs = {k: v for k, v in recipe.kwargs.items() if k != "inplace"}
    return target, recipe.args[1:], {**kwargs, **extra}


class RecomputeChain:
    """Bounds how many recipes one read runs: a value whose recompute would chain more than :attr:`LIMIT`
    deferred values (a residual stream adds one per block) is kept, so reading any layer costs a few
    elementwise kernels at most."""

    LIMIT = 4

    def __init__(self) -> None:
        self._depth: dict[str, int] = {}

    def admits(self, key: str, recipe: Recipe) -> bool:
        """Whether ``key`` may be deferred with ``recipe`` (recorded if so; call in execution order)."""
        depth = 1 + max((self._depth.get(k, 0) for k in recipe.refs), default=0)
        if depth > self.LIMIT:
            return False
        self._depth[key] = depth
        return True


@contextmanager
def _threads(count: int) -> Iterator[None]:
    current = torch.get_num_threads()
    if current == count:
        yield
        return
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(current)


class LayerValues(Mapping[str, Any]):
    """Every captured layer's value, in execution order; deferred values are computed on first read and kept.

    ``sources`` maps each key to the value that stands for it (a container's output node, or the list of values
    leaving it); ``values`` holds what the pass kept.
    """

    def __init__(
        self,
        sources: dict[str, str | tuple[str, ...]],
        values: dict[str, Any],
        recipes: Mapping[str, Recipe],
        norms: dict[str, tuple[Any, ...]],
    ):
        self._sources = sources
        self._values = values
        self._recipes = recipes
        self._norms = norms
        self._threads = torch.get_num_threads()

    def __getitem__(self, key: str) -> Any:
        source = self._sources[key]
        if type(source) is str:
            return self._value(source)
        return [self._value(k) for k in source]

    def __iter__(self) -> Iterator[str]:
        return iter(self._sources)

    def __len__(self) -> int:
        return len(self._sources)

    def __contains__(self, key: object) -> bool:
        return key in self._sources

    def shape(self, key: str) -> tuple[int, ...]:
        """The shape of ``key``'s value (its first tensor's, for a tuple or list), without computing it."""
        source = self._sources[key]
        return self._shape(source if type(source) is str else source[0])

    def _shape(self, key: str) -> tuple[int, ...]:
        value = self._values.get(key, _ABSENT)
        if value is not _ABSENT:
            if isinstance(value, (tuple, list)):
                value = next(v for v in value if isinstance(v, torch.Tensor))
            return tuple(value.shape)
        recipe = self._recipes[key]
        if recipe.fn in (torch.cat, torch.concat):
            parts = [self._shape(r.key) for r in recipe.args[0]]
            dim = recipe.args[1] if len(recipe.args) > 1 else recipe.kwargs.get("dim", 0)
            parts = [p for p in parts if p != (0,)]  # cat skips 1-d empty tensors
            dim %= len(parts[0])
            return tuple(
                sum(p[dim] for p in parts) if i == dim else n for i, n in enumerate(parts[0])
            )
        # elementwise: the inputs broadcast together (scalars among them do not change the shape)
        shapes = [self._shape(k) for k in recipe.refs if self._is_tensor(k)]
        return tuple(torch.broadcast_shapes(*shapes))

    def _is_tensor(self, key: str) -> bool:
        value = self._values.get(key, _ABSENT)
        if value is _ABSENT:
            return any(self._is_tensor(k) for k in self._recipes[key].refs)
        return isinstance(value, torch.Tensor)

    def kept(self, key: str) -> bool:
        """Whether the pass kept ``key``'s value, rather than leaving it to be computed when read."""
        source = self._sources[key]
        names = (source,) if type(source) is str else source
        return all(k not in self._recipes for k in names)

    def _value(self, key: str) -> Any:
        value = self._values.get(key, _ABSENT)
        if value is not _ABSENT:
            return value
        # Depth first without recursion: a residual stream chains one deferred addition to the next.
        stack = [key]
        with torch.inference_mode(), _threads(self._threads):
            while stack:
                top = stack[-1]
                if top in self._values:
                    stack.pop()
                    continue
                recipe = self._recipes[top]
                missing = [k for k in recipe.refs if k not in self._values]
                if missing:
                    stack.extend(missing)
                    continue
                self._values[top] = self._compute(top, recipe)
                stack.pop()
        return self._values[key]

    def _compute(self, key: str, recipe: Recipe) -> Any:
        args = _resolve(recipe.args, self._values)
        if recipe.norm is None:
            return recipe.fn(*args, **_resolve(dict(recipe.kwargs), self._values))
        state = self._norms[key]
        if tuple(t._version if t is not None else -1 for t in state[:4]) != state[5]:
            raise StaleCaptureError(
                f"layer '{key}' was not kept by the capture and its batch norm's weights or statistics changed "
                "since; capture again to read it"
            )
        return recipe.fn(args[0], state)


def _resolve(value: Any, values: Mapping[str, Any]) -> Any:
    if type(value) is Ref:
        return values[value.key]
    if type(value) in (tuple, list):
        return type(value)(_resolve(v, values) for v in value)
    if type(value) is dict:
        return {k: _resolve(v, values) for k, v in value.items()}
    return value


_ABSENT = object()
