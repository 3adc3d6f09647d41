"""Layer values a capture does not keep, recomputed exactly from the values it keeps when they are first read.

Keeping every layer's output costs a capture more than the arithmetic: each kept map is written to memory that
no later layer reuses, so it leaves the cache. Elementwise layers -- eval-mode batch norms, activations, residual
additions, gating products, concatenations -- cost one cheap kernel to compute again from their inputs, and
their maps are most of what a capture keeps. Such a layer is *deferred*: the pass computes it as the model does
(an activation whose input is deferred runs in place, as the model's own ``inplace=True`` would) and keeps only
a :class:`Recipe`; :class:`LayerValues` runs the recipe when the value is first read.

A recomputed value is bit-equal to the one the pass computed: the same kernel on the same input tensors, under
the same number of threads (CPU kernels split their work by thread count, and a batch norm or a SiLU can differ
in the last bit between splits). A batch norm's tensors are copied when the capture runs (one small copy of
all of them), so a training step or an edit afterwards does not change what a read computes. What the capture
must check on every pass (hooks, settings) is in :mod:`cnnviz.core.analysis.capture`.
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
    mean, var, weight, bias, eps = state
    return F.batch_norm(x, mean, var, weight, bias, False, 0.0, eps)


@dataclass(frozen=True)
class NormCopies:
    """Copies of what each deferred batch norm reads, taken at capture time: ``flat`` holds every tensor
    (``spans``: each one's offset and shape, None for a missing weight or bias), unless they differ in type or
    device (then ``separate`` holds a copy of each); ``eps``: each norm's epsilon."""

    flat: torch.Tensor | None
    spans: Mapping[str, tuple[tuple[int, torch.Size] | None, ...]]
    eps: Mapping[str, float]
    separate: Mapping[str, tuple[torch.Tensor | None, ...]] | None = None

    def state(self, key: str) -> tuple[Any, ...]:
        """(running mean, running variance, weight, bias, eps) of the norm of layer ``key``."""
        if self.separate is not None:
            return (*self.separate[key], self.eps[key])
        flat = self.flat
        assert flat is not None
        tensors = [
            None if span is None else flat[span[0] : span[0] + span[1].numel()].view(span[1])
            for span in self.spans[key]
        ]
        return (*tensors, self.eps[key])


class NormSnapshots:
    """Takes :class:`NormCopies` of a fixed set of deferred batch norms, once per capture: the tensors are read
    from the modules each time, and copied with one ``torch.cat`` (a model's norm tensors are 1-d and share a
    type and device; otherwise each is cloned). Where each tensor lands is worked out again only when the
    tensors are not the ones of the last capture."""

    def __init__(self, norms: tuple[tuple[str, nn.Module], ...]):
        self._norms = norms
        self._ids: tuple[int, ...] | None = None
        self._spans: dict[str, tuple[tuple[int, torch.Size] | None, ...]] = {}
        self._eps: dict[str, float] = {}
        self._flat = False
        self._total = 0

    def take(self) -> NormCopies:
        """Copies of every norm's tensors, as they are now."""
        read = [
            (m._buffers.get("running_mean"), m._buffers.get("running_var"))
            + (m._parameters.get("weight"), m._parameters.get("bias"))
            for _, m in self._norms
        ]
        tensors = [t for group in read for t in group if t is not None]
        ids = tuple(map(id, tensors))
        if ids != self._ids:
            self._lay_out(read, tensors)
            self._ids = ids
        if not tensors:
            return NormCopies(None, self._spans, self._eps)
        if self._flat:
            flat = torch.cat(tensors)
            if (
                flat.numel() != self._total
            ):  # a tensor resized in place (through .data): lay out again
                self._lay_out(read, tensors)
                return self.take()
            return NormCopies(flat, self._spans, self._eps)
        separate = {
            key: tuple(t.clone() if t is not None else None for t in group)
            for (key, _), group in zip(self._norms, read, strict=True)
        }
        return NormCopies(None, self._spans, self._eps, separate)

    def _lay_out(self, read: list[tuple[Any, ...]], tensors: list[torch.Tensor]) -> None:
        offset = 0
        self._spans = {}
        self._eps = {key: float(m.__dict__["eps"]) for key, m in self._norms}
        for (key, _), group in zip(self._norms, read, strict=True):
            own: list[tuple[int, torch.Size] | None] = []
            for t in group:
                if t is None:
                    own.append(None)
                    continue
                own.append((offset, t.shape))
                offset += t.numel()
            self._spans[key] = tuple(own)
        self._total = offset
        first = tensors[0] if tensors else None
        self._flat = first is not None and all(
            t.dim() == 1 and t.dtype == first.dtype and t.device == first.device for t in tensors
        )


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
    recipe: Recipe, source: fx.Node, below: Recipe
) -> tuple[Callable[..., Any], tuple[Any, ...], dict[str, Any]] | None:
    """The in-place call (target, arguments after the input, keywords) of an activation whose input is the
    deferred ``source`` (made by ``below``), or None. A deferred value is recomputed, never read back from the
    pass, so when nothing else reads ``source`` the activation may overwrite it, as the model's own
    ``inplace=True`` would. Only where the type cannot change: after a batch norm (floating), or a ReLU."""
    if recipe.norm is not None or len(recipe.refs) != 1 or len(source.users) != 1:
        return None
    if below.norm is None and recipe.fn not in (F.relu, torch.relu):
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
        norms: NormCopies | None,
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
        """The shape of ``key``'s value without computing it: of its first tensor, as :func:`as_numpy` reads it
        (a tuple's first tensor; for a container that hands on several values, the first that is a tensor)."""
        source = self._sources[key]
        if type(source) is str:
            if source in self._recipes:
                return self._shape(source)
            first = first_tensor(self._values[source])
            if first is None:
                raise KeyError(key)
            return tuple(first.shape)
        for name in source:
            if name in self._recipes:
                return self._shape(name)
            value = self._values[name]
            if isinstance(value, torch.Tensor):
                return tuple(value.shape)
        raise KeyError(key)

    def _shape(self, key: str) -> tuple[int, ...]:
        value = self._values.get(key, _ABSENT)
        if value is not _ABSENT:
            return tuple(value.shape)  # every input of a recipe is a tensor
        recipe = self._recipes[key]
        if recipe.fn in (torch.cat, torch.concat):
            listed = recipe.args[0] if recipe.args else recipe.kwargs["tensors"]
            parts = [self._shape(r.key) for r in listed]
            dim = recipe.args[1] if len(recipe.args) > 1 else recipe.kwargs.get("dim", 0)
            # cat skips 1-d empty tensors
            parts = [p for p in parts if p != (0,)] or parts
            dim %= len(parts[0])
            return tuple(
                sum(p[dim] for p in parts) if i == dim else n for i, n in enumerate(parts[0])
            )
        # elementwise: the inputs broadcast together (plain numbers among them do not change the shape)
        return tuple(torch.broadcast_shapes(*(self._shape(k) for k in recipe.refs)))

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
        assert self._norms is not None
        return recipe.fn(args[0], self._norms.state(key))


def first_tensor(value: Any) -> torch.Tensor | None:
    """The tensor a layer value stands for: itself, or the first tensor of a tuple or list (None if none)."""
    if isinstance(value, (tuple, list)):
        return next((v for v in value if isinstance(v, torch.Tensor)), None)
    return value if isinstance(value, torch.Tensor) else None


def _resolve(value: Any, values: Mapping[str, Any]) -> Any:
    if type(value) is Ref:
        return values[value.key]
    if type(value) in (tuple, list):
        return type(value)(_resolve(v, values) for v in value)
    if type(value) is dict:
        return {k: _resolve(v, values) for k, v in value.items()}
    return value


_ABSENT = object()
