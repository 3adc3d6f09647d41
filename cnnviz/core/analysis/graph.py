"""The layer graph of a model, traced with torch.fx, with a module-hook fall-back.

Every layer gets a *capture key* (see :class:`cnnviz.core.analysis.types.LayerRow`):

- a module call: its qualified name as in ``named_modules()`` (``"layer1.0.conv1"``); the n-th extra call of a
  module that runs several times is ``"name@n"`` (torch's own convention in ``nn_module_stack``);
- a functional operation (residual ``add``, ``cat``, ``flatten``, ``F.relu`` ...): ``"<scope>.<op>"`` where scope
  is the innermost module whose forward made the call (``"layer1.0.add"``), numbered ``_1, _2 ...`` within a scope;
- a container (``Sequential``, a ResNet block): its qualified name; its output is the value of the node that leaves
  its scope, so containers cost nothing extra to capture.
"""

from __future__ import annotations

import difflib
import operator
import re
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.fx as fx
from torch import nn

from cnnviz.core.analysis.deferred import Recipe, RecomputeChain, in_place_call, recipe_for
from cnnviz.core.analysis.tracer import TORCH_OWN_ATTRIBUTES, Tracer, undo_trace_side_effects
from cnnviz.core.errors import LayerError
from cnnviz.core.moduletree import all_modules

# Functional calls that only restructure Python containers: not layers of their own.
_PLUMBING = {operator.getitem, getattr}
# The only layer of a compiled (TorchScript) model: its output.
OUTPUT_KEY = "output"
_INPLACE_OPERATORS = {
    operator.iadd: operator.add,
    operator.isub: operator.sub,
    operator.imul: operator.mul,
    operator.itruediv: operator.truediv,
}


@dataclass
class GraphNode:
    """One layer call in execution order."""

    key: str
    kind: str  # "input", "module", "function", "method"
    type: str
    fx_node: fx.Node | None
    module: nn.Module | None = None
    module_name: str | None = None  # qualified name of the module (without @n)
    inputs: list[str] = field(default_factory=list)  # keys of the layer nodes feeding this one
    scope: list[str] = field(
        default_factory=list
    )  # container keys enclosing this call, outermost first
    returns_input: bool = (
        False  # a module that hands back its input unchanged (an empty Sequential)
    )


@dataclass
class ContainerInfo:
    """A module whose forward was traced through (not a leaf); its output is one of its inner nodes."""

    key: str
    module_name: str
    module: nn.Module
    type: str
    output_key: str | None
    depth: int


def _op_name(node: fx.Node) -> str:
    if node.op == "call_method":
        return str(node.target)
    target = node.target
    if isinstance(target, torch._ops.OpOverload):
        return str(target._opname)  # aten.conv2d.default -> conv2d (torch.export programs)
    name = getattr(target, "__name__", None) or str(target)
    return name.lstrip("_") or name


def _type_name(node: fx.Node, module: nn.Module | None) -> str:
    if module is not None:
        return type(module).__name__
    if node.op == "call_method":
        return f"Tensor.{node.target}"
    target = node.target
    if isinstance(target, torch._ops.OpOverload):
        return f"aten.{target._opname}"
    mod = getattr(target, "__module__", "") or ""
    name = getattr(target, "__name__", str(target))
    if mod.startswith("torch.nn.functional"):
        return f"F.{name}"
    if mod == "_operator" or target in _INPLACE_OPERATORS.values():
        return name
    if mod.startswith("torch") or getattr(torch, name, None) is target:
        return f"torch.{name}"
    return name


class LayerGraph:
    """The traced graph of a model: layer nodes in execution order, containers, and the generated capture code."""

    def __init__(self, model: nn.Module):
        # Weak: the graph cache is keyed by the model, so a strong reference here would keep every model alive.
        self._model_ref = weakref.ref(model)
        self.nodes: list[GraphNode] = []
        self.containers: dict[str, ContainerInfo] = {}
        self.traced = False
        self.note: str | None = None
        self._fx_graph: fx.Graph | None = None
        self._capture_modules: dict[tuple[Any, ...], fx.GraphModule] = {}
        self._by_key: dict[str, GraphNode] = {}
        self._key_of: dict[fx.Node, str] = {}
        # TorchScript runs as one compiled program: neither fx nor module hooks can see inside it.
        self.compiled = isinstance(model, torch.jit.ScriptModule)
        try:
            if self.compiled:
                raise TypeError("a TorchScript archive cannot be traced")
            self._trace()
            self.traced = True
        except Exception as exc:  # noqa: BLE001 - any tracing failure means: fall back to hooks
            self.nodes = []
            self.containers = {}
            first_line = (
                str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            )
            self.note = (
                "the model could not be traced with torch.fx "
                f"({type(exc).__name__}: {first_line[:160]}); layers were captured with module hooks, "
                "so functional operations (additions, concatenations) are not shown"
            )
        if self.compiled:
            self.note = (
                "a TorchScript archive runs as one compiled program, so only its output can be shown; "
                "open the original model or a torch.export .pt2 file to see every layer"
            )
        self._by_key = {n.key: n for n in self.nodes}
        # Without a trace, module names are the only layer names we know before running.
        if self.compiled:
            self.module_keys = [OUTPUT_KEY]
        else:
            self.module_keys = [] if self.traced else [n for n, _ in model.named_modules() if n]

    # -- tracing -------------------------------------------------------------------------------------------------
    def _trace(self) -> None:
        tracer = Tracer()
        # Optional arguments (timm's ``attn_mask=None``) take their defaults, as in a call with the input alone:
        # as proxies, ``if attn_mask is not None`` would trace a branch that such a call never takes.
        import inspect

        try:
            params = list(inspect.signature(self.model.forward).parameters.values())[1:]
        except (TypeError, ValueError):
            params = []
        concrete = {
            p.name: p.default
            for p in params
            if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
            and (p.default is None or type(p.default) is bool)
        }
        # Branches on self.training are resolved while tracing: trace the inference graph.
        with eval_mode(self.model), undo_trace_side_effects(self.model):
            graph = tracer.trace(self.model, concrete_args=concrete or None)
        # fx checks each default with an assertion on a placeholder of its own: neither is a layer
        fixed = {
            n
            for n in list(graph.nodes)[1:]
            if n.op == "placeholder" and any(str(n.target).startswith(f"{k}_") for k in concrete)
        }
        checks = (torch.fx._symbolic_trace._assert_is_none, torch._assert, operator.eq)
        for node in reversed(list(graph.nodes)):
            if node.op == "call_function" and node.target in checks and not node.users:
                if all(a in fixed or a.target in checks for a in node.all_input_nodes):
                    graph.erase_node(node)
        for node in fixed:
            if not node.users:
                graph.erase_node(node)
        modules = dict(self.model.named_modules())
        self._fx_graph = graph
        key_of: dict[fx.Node, str] = {}
        scope_counts: dict[tuple[str, str], int] = {}
        container_first: dict[str, int] = {}
        scope_of: dict[fx.Node, frozenset[str]] = {}

        for node in graph.nodes:
            stack = node.meta.get("nn_module_stack") or {}
            stack_keys = list(stack.keys())
            if node.op == "placeholder":
                key = "input" if not self.nodes else f"input_{len(self.nodes)}"
                self.nodes.append(GraphNode(key, "input", "Input", node))
                key_of[node] = key
                continue
            if node.op in ("output", "get_attr"):
                continue
            if node.op == "call_function" and node.target in _PLUMBING:
                # getitem on a tensor is slicing (a real op); on a tuple it is unpacking: decided at run time.
                pass
            module = None
            module_name = None
            if node.op == "call_module":
                module_name = str(node.target)
                module = modules[module_name]
                # the innermost stack entry is this module's call (with @n for repeated calls)
                key = stack_keys[-1] if stack_keys else module_name
                scope = stack_keys[:-1]
                kind = "module"
            else:
                scope = stack_keys
                base = _op_name(node)
                prefix = scope[-1] if scope else ""
                n = scope_counts.get((prefix, base), 0)
                scope_counts[(prefix, base)] = n + 1
                leaf = base if n == 0 else f"{base}_{n}"
                key = f"{prefix}.{leaf}" if prefix else leaf
                kind = "function" if node.op == "call_function" else "method"
            inputs = [key_of[a] for a in node.all_input_nodes if a in key_of]
            gnode = GraphNode(
                key, kind, _type_name(node, module), node, module, module_name, inputs, scope
            )
            gnode.returns_input = node in tracer.returns_input
            self.nodes.append(gnode)
            key_of[node] = key
            if scope:
                scope_of[node] = frozenset(scope)
            for depth, ckey in enumerate(scope):
                if ckey not in container_first:
                    container_first[ckey] = len(self.nodes) - 1
                    qual = stack[ckey][0]
                    cmod = modules.get(qual)
                    if cmod is not None:
                        self.containers[ckey] = ContainerInfo(
                            ckey, qual, cmod, type(cmod).__name__, None, depth
                        )
        self._key_of = key_of
        # A container's output: the single inner node whose value is used outside the container (a node leaves
        # each container it is in and a user of it is not).
        leaving: dict[str, list[fx.Node]] = {}
        outside: frozenset[str] = frozenset()
        for node, inside in scope_of.items():
            left: set[str] = set()
            for user in node.users:
                left |= inside - scope_of.get(user, outside)
            for ckey in left:
                leaving.setdefault(ckey, []).append(node)
        for ckey, info in self.containers.items():
            nodes = leaving.get(ckey, [])
            if len(nodes) == 1:
                info.output_key = key_of[nodes[0]]

    @property
    def model(self) -> nn.Module:
        model = self._model_ref()
        if model is None:
            raise RuntimeError("the model of this layer graph no longer exists")
        return model

    # -- queries -------------------------------------------------------------------------------------------------
    def node(self, key: str) -> GraphNode:
        return self._by_key[key]

    def constant(self, fx_node: Any) -> Any:
        """The parameter or buffer a ``get_attr`` node reads (e.g. the weight of ``F.conv2d(x, self.weight)``)."""
        if getattr(fx_node, "op", None) != "get_attr":
            return None
        value: Any = self.model
        for part in str(fx_node.target).split("."):
            value = getattr(value, part, None)
            if value is None:
                return None
        return value

    def node_key(self, fx_node: Any) -> str | None:
        """The capture key of an fx node (None for parameters, constants and plumbing)."""
        return self._key_of.get(fx_node)

    def __contains__(self, key: str) -> bool:
        if not self.traced:
            return key.split("@")[0] in self.module_keys
        return key in self._by_key or key in self.containers

    def keys(self) -> list[str]:
        """All capturable keys: layer nodes and containers."""
        if not self.traced:
            return list(self.module_keys)
        return [n.key for n in self.nodes] + list(self.containers)

    def ordered_keys(self) -> Iterator[tuple[str, bool, int]]:
        """(key, is_container, depth) in execution order, each container just before its first inner layer."""
        emitted: set[str] = set()
        for node in self.nodes:
            if node.kind == "input":
                continue
            for depth, ckey in enumerate(node.scope):
                if ckey not in emitted and ckey in self.containers:
                    emitted.add(ckey)
                    yield ckey, True, depth
            yield node.key, False, len(node.scope)

    # -- code generation -----------------------------------------------------------------------------------------
    def capture_module(
        self, keys: frozenset[str] | None, keep: Callable[[Any], Any] | None = None
    ) -> fx.GraphModule:
        """A GraphModule computing the model and returning ``(output, {key: value})`` for the chosen layer keys.

        In-place operations in the graph are made out-of-place so that a later in-place op cannot overwrite a
        captured value. ``keep`` (e.g. a float16 cast) is applied to each captured value as it is produced, so
        memory stays bounded.
        """
        cache_key = (keys, keep)
        gm = self._capture_modules.get(cache_key)
        if gm is not None:
            return gm
        gm = _flat_module(self.model, self.capture_graph(keys, keep))
        self._capture_modules[cache_key] = gm
        return gm

    def forget_capture_modules(self) -> None:
        """Drop the compiled captures (a leaf's setting they were compiled with changed)."""
        self._capture_modules.clear()

    def deferring_capture_module(
        self, tensors: frozenset[str]
    ) -> tuple[fx.GraphModule, dict[str, Recipe]]:
        """:meth:`capture_module` of every layer, except that the layers an exact elementwise recompute
        reproduces are not returned: the second item holds their recipes, in execution order. ``tensors``: the
        keys whose value is a tensor (from a pass that kept every value). A graph with a call that may write
        into a value (``y.copy_(z)``, ``setitem``, an ``out=`` argument) defers nothing: a kept
        value could change after a recipe's input was read."""
        assert self._fx_graph is not None
        recipes: dict[str, Recipe] = {}
        if any(_may_write(n) for n in self._fx_graph.nodes):
            return self.capture_module(None), recipes
        graph = self.capture_graph(None, None, recipes, tensors)
        return _flat_module(self.model, graph), recipes

    def capture_graph(
        self,
        keys: frozenset[str] | None,
        keep: Callable[[Any], Any] | None = None,
        deferred: dict[str, Recipe] | None = None,
        tensors: frozenset[str] = frozenset(),
    ) -> fx.Graph:
        """The graph of :meth:`capture_module`, not yet compiled (to be rewritten before it is).

        With ``deferred`` (an empty dict, filled here), the layers an exact elementwise recompute reproduces are
        not returned: their recipes go into ``deferred`` (see :mod:`cnnviz.core.analysis.deferred`). Only layers
        in ``tensors`` (those whose value is a tensor) are deferred, and only from inputs in it.
        """
        assert self._fx_graph is not None
        new_graph = fx.Graph()
        env: dict[fx.Node, fx.Node] = {}
        wanted: dict[str, fx.Node] = {}
        node_by_fx = {n.fx_node: n for n in self.nodes if n.fx_node is not None}
        container_out = {info.output_key for info in self.containers.values() if info.output_key}
        # the old nodes whose value the capture returns or recomputes, with their keys
        available: dict[fx.Node, str] = {}
        overwritten = _Overwritten()
        chain = RecomputeChain()
        output_value = None
        for old in self._fx_graph.nodes:
            if old.op == "output":
                output_value = fx.map_arg(old.args[0], lambda n: env[overwritten.holder(n)])
                continue
            gnode = node_by_fx.get(old)
            args, kwargs = overwritten.arguments(old)
            recipe = None
            new = None
            if deferred is not None and gnode is not None and gnode.key in tensors:
                target, plain_kwargs = out_of_place_call(old.op, old.target, kwargs)
                recipe = recipe_for(old.op, target, args, plain_kwargs, gnode.module, available)
                if recipe is not None and (
                    any(k not in tensors for k in recipe.refs)
                    or not chain.admits(gnode.key, recipe)
                ):
                    recipe = None
                source = old.args[0] if old.args else None
                if (
                    recipe is not None
                    and isinstance(source, fx.Node)
                    and args[0] is source
                    and not overwritten.holds_another(source)
                ):
                    below = deferred.get(self._key_of.get(source, ""))
                    call = in_place_call(recipe, source, below) if below is not None else None
                    if call is not None:
                        fn, extra, fn_kwargs = call
                        new = new_graph.call_function(fn, (env[source], *extra), fn_kwargs)
            if new is None:
                new = new_graph.node_copy(old, lambda n: env[overwritten.holder(n)])
                new.meta = {}
                _make_out_of_place(new)
            overwritten.note(old, args, gnode.module if gnode is not None else None)
            env[old] = new
            if gnode is None:
                continue
            if (
                keys is not None
                and gnode.key not in keys
                and not (
                    gnode.key in container_out
                    and any(
                        c.output_key == gnode.key and c.key in keys
                        for c in self.containers.values()
                    )
                )
            ):
                continue
            # the caller's input may change after the capture: nothing is recomputed from it
            if old.op != "placeholder":
                available[old] = gnode.key
            if recipe is not None and deferred is not None:
                deferred[gnode.key] = recipe
                continue
            value = new
            if keep is not None:
                value = new_graph.call_function(keep, (new,))
            wanted[gnode.key] = value
        new_graph.output((output_value, wanted))
        return new_graph

    def truncated_module(self, key: str) -> fx.GraphModule:
        """A GraphModule that stops at layer ``key`` and returns its value (for gradients to that layer)."""
        cache_key = ("truncate", key)
        gm = self._capture_modules.get(cache_key)
        if gm is not None:
            return gm
        assert self._fx_graph is not None
        target_key = self.containers[key].output_key if key in self.containers else key
        if target_key is None:
            raise LayerError(f"layer '{key}' has no single output to take a gradient of")
        target = self._by_key[target_key].fx_node
        assert target is not None  # every node of a traced graph has its fx node
        new_graph = fx.Graph()
        env: dict[fx.Node, fx.Node] = {}
        overwritten = _Overwritten()
        modules = dict(self.model.named_modules())
        for old in self._fx_graph.nodes:
            if old.op == "output":
                break
            new = new_graph.node_copy(old, lambda n: env[overwritten.holder(n)])
            new.meta = {}
            _make_out_of_place(new)
            args, _ = overwritten.arguments(old)
            overwritten.note(
                old, args, modules.get(str(old.target)) if old.op == "call_module" else None
            )
            env[old] = new
            if old is target:
                break
        new_graph.output(env[target])
        gm = fx.GraphModule(self.model, new_graph)
        gm.graph.eliminate_dead_code()
        gm.recompile()
        self._capture_modules[cache_key] = gm
        return gm


def _flat_module(model: nn.Module, graph: fx.Graph) -> fx.GraphModule:
    """``graph`` compiled against ``model``, each module and attribute it reads held at the top level.

    fx's code reaches ``features.3.conv.1`` through a ``Module.__getattr__`` per dot, on every call of every
    layer; here each module is an instance attribute of the compiled module, a plain attribute read. The
    objects are the model's own, so their flags and weights are the model's.
    """
    held: dict[str, Any] = {}
    names: dict[str, str] = {}
    for node in graph.nodes:
        if node.op not in ("call_module", "get_attr"):
            continue
        target = str(node.target)
        name = names.get(target)
        if name is None:
            name = names[target] = f"m{len(names)}_{re.sub(r'[^0-9a-zA-Z_]', '_', target)}"
            value: Any = model
            for part in target.split("."):
                value = getattr(value, part)
            held[name] = value
        node.target = name
    gm = fx.GraphModule(held, graph)
    for name, value in held.items():
        # modules only: a parameter read as an attribute would hide the one functional_call swaps in
        if isinstance(value, nn.Module):
            gm.__dict__[name] = value
    return gm


class _Overwritten:
    """Values that in-place calls overwrote, for a copy of a graph whose calls are made out of place.

    In the model, ``y.relu_()`` leaves the result in ``y``, so every later reader of ``y`` reads the result; out
    of place, ``y`` keeps its old value (which the capture shows as ``y``'s layer), and the later readers must read
    the call's output instead, or the copy would compute something else than the model.
    """

    def __init__(self) -> None:
        self._by: dict[fx.Node, fx.Node] = {}
        self._holders: set[fx.Node] = set()

    def holder(self, node: fx.Node) -> fx.Node:
        """The node whose output holds ``node``'s value at this point of the graph."""
        by = self._by
        while node in by:
            node = by[node]
        return node

    def arguments(self, node: fx.Node) -> tuple[Any, Any]:
        """``node``'s arguments and keyword arguments, each node replaced by its holder."""
        if not self._by:
            return node.args, node.kwargs
        return fx.map_arg(node.args, self.holder), fx.map_arg(node.kwargs, self.holder)

    def note(self, node: fx.Node, args: Any, module: nn.Module | None) -> None:
        """Record ``node`` (with its holder-mapped ``args``) as the holder of its first argument when it is an
        in-place call."""
        if not args or not isinstance(args[0], fx.Node):
            return
        if node.op == "call_module":
            in_place = module is not None and module_in_place(module)
        else:
            in_place = out_of_place_call(node.op, node.target, node.kwargs) != (
                node.target,
                node.kwargs,
            )
        if in_place:
            self._by[args[0]] = node
            self._holders.add(node)

    def holds_another(self, node: fx.Node) -> bool:
        """Whether ``node`` holds a value an in-place call overwrote (so that value's readers read ``node``)."""
        return node in self._holders


def _may_write(node: fx.Node) -> bool:
    """Whether a graph call may still write into one of its inputs once made out of place."""
    if node.op not in ("call_function", "call_method"):
        return False
    target, kwargs = out_of_place_call(node.op, node.target, node.kwargs)
    if "out" in kwargs or target is operator.setitem:
        return True
    name = target if node.op == "call_method" else getattr(target, "__name__", "")
    return isinstance(name, str) and name.endswith("_")  # _foreach_mul_ too


def module_in_place(module: nn.Module) -> bool:
    """Whether ``module`` was built to overwrite its input (``inplace=True``, also while eval_mode switches it off)."""
    flags = module.__dict__
    return flags.get("inplace") is True or flags.get(SWITCHED_IN_PLACE) is True


def _make_out_of_place(node: fx.Node) -> None:
    node.target, node.kwargs = out_of_place_call(node.op, node.target, node.kwargs)


# torch.relu_, F.relu_, torch.sigmoid_ ... -> their out-of-place counterparts
_OUT_OF_PLACE_FUNCTIONS = {
    fn: getattr(space, name[:-1])
    for space in (torch, torch.nn.functional)
    for name in dir(space)
    if re.fullmatch(r"[a-z][a-z0-9_]*[a-z0-9]_", name)
    and callable(fn := getattr(space, name))
    and callable(getattr(space, name[:-1], None))
}
# set by eval_mode on each module whose inplace=True it switched off, so that a graph compiled meanwhile still
# knows the model's own calls were in place
SWITCHED_IN_PLACE = "_cnnviz_switched_in_place"


def out_of_place_call(op: str, target: Any, kwargs: Any) -> tuple[Any, Any]:
    """The target and keyword arguments of a graph call, made out of place (``iadd`` -> ``add``, ``relu_`` ->
    ``relu``, ``inplace=True`` -> False), so that no later operation can overwrite an earlier layer's value."""
    if op == "call_function":
        target = _INPLACE_OPERATORS.get(target, target)
        target = _OUT_OF_PLACE_FUNCTIONS.get(target, target)
        if kwargs.get("inplace") is True:
            kwargs = {**kwargs, "inplace": False}
    elif op == "call_method":
        name = str(target)
        if re.fullmatch(r"[a-z][a-z0-9_]*[a-z0-9]_", name) and hasattr(torch.Tensor, name[:-1]):
            target = name[:-1]
    return target, kwargs


@contextmanager
def eval_mode(model: nn.Module, *, out_of_place: bool = False) -> Iterator[None]:
    """Run in eval mode, restoring each module's own train/eval flag afterwards; with ``out_of_place`` also
    switch off ``inplace=True`` on every module (ReLU, Dropout ...), so that no layer overwrites another's
    output. One walk over the tree for both: a capture pays it on every pass."""
    # Set the flags directly (as Module.__setattr__ would end up doing, after several checks per call): some
    # modules (torch.export's) refuse eval() because their mode is fixed. Only modules that need a change are
    # touched, so a model in eval mode costs the walk alone.
    training: list[tuple[nn.Module, Any]] = []
    switched: list[nn.Module] = []
    for m in all_modules(model):
        flags = m.__dict__
        if flags.get("training"):
            training.append((m, flags["training"]))
            flags["training"] = False
        if out_of_place and flags.get("inplace") is True:
            switched.append(m)
            flags["inplace"] = False
            flags[SWITCHED_IN_PLACE] = True
    try:
        yield
    finally:
        for m, mode in training:
            m.__dict__["training"] = mode
        for m in switched:
            flags = m.__dict__
            flags["inplace"] = True
            flags.pop(SWITCHED_IN_PLACE, None)


_SIMPLE = frozenset({int, float, bool, str, type(None)})
# torch's own tables hold no settings; one look-up skips each
_NOT_SETTINGS = TORCH_OWN_ATTRIBUTES - {"training"}


def _settings(module: nn.Module) -> tuple[Any, ...]:
    """A module's plain settings (``stride``, ``inplace``, ``p`` ...), its train/eval flag, and any forward set
    on the instance."""
    d = module.__dict__
    out = [
        (k, v)
        for k, v in d.items()
        if k not in _NOT_SETTINGS
        and (type(v) in _SIMPLE or (type(v) is tuple and all(type(e) in _SIMPLE for e in v)))
    ]
    forward = d.get("forward")
    if forward is not None:
        out.append(("forward", id(forward)))
    return tuple(out)


_LEAF_TYPES: dict[type, bool] = {}


def _is_leaf(m: nn.Module) -> bool:
    """torch.fx's default leaf rule (a ``torch.nn`` module other than ``Sequential``), per class."""
    kind = type(m)
    leaf = _LEAF_TYPES.get(kind)
    if leaf is None:
        leaf = _LEAF_TYPES[kind] = fx.Tracer().is_leaf_module(m, "")
    return leaf


def graph_fingerprint(module: nn.Module) -> tuple[Any, ...]:
    """What the traced graph of ``module`` depends on, from the modules fx traces through (``module``, its
    containers, blocks, any module outside ``torch.nn``): each one's identity, class, settings (its forward may
    branch on them), children (a layer replaced or added) and the identity of its parameters and buffers (read
    by reference). A leaf (``nn.Conv2d``) reads its own settings and weights when it runs, so only its identity
    counts: the walk stops there, which keeps it cheap enough for every capture to check."""
    parts: list[Any] = []
    seen: set[int] = set()
    stack = [module]
    while stack:
        m = stack.pop()
        if id(m) in seen:
            continue
        seen.add(id(m))
        children = m._modules
        parts.append(
            (
                id(m),
                type(m),
                _settings(m),
                tuple(children),
                tuple(map(id, children.values())),
                tuple(m._parameters),
                tuple(map(id, m._parameters.values())),
                tuple(m._buffers),
                tuple(map(id, m._buffers.values())),
            )
        )
        stack.extend(c for c in children.values() if c is not None and not _is_leaf(c))
    return tuple(parts)


def structure_fingerprint(module: nn.Module) -> tuple[Any, ...]:
    """What a table of ``module`` depends on: its :func:`graph_fingerprint`, the settings of leaf modules, each
    module's identity, each parameter's and buffer's shape, dtype and trainability (not their values), and
    every module's hooks.

    Two equal fingerprints of one model mean its table is the same; any edit in place (a layer replaced, a
    stride changed, a weight resized or frozen) changes it.
    """
    return graph_fingerprint(module), _table_part(module)


def _table_part(module: nn.Module) -> tuple[Any, ...]:
    parts: list[Any] = []
    for m in all_modules(module):
        if _is_leaf(m):
            parts.append((id(m), _settings(m)))
        for p in m._parameters.values():
            if p is not None:
                parts.append((p.shape, p.dtype, p.requires_grad))
        for b in m._buffers.values():
            if b is not None:
                parts.append((b.shape, b.dtype))
        if m._forward_hooks or m._forward_pre_hooks:
            parts.append((id(m), tuple(m._forward_hooks), tuple(m._forward_pre_hooks)))
    return tuple(parts)


_GRAPHS: weakref.WeakKeyDictionary[nn.Module, tuple[LayerGraph, tuple[Any, ...]]] = (
    weakref.WeakKeyDictionary()
)


def graph_and_fingerprint(model: nn.Module) -> tuple[LayerGraph, tuple[Any, ...]]:
    """The current layer graph of ``model`` and its :func:`structure_fingerprint` (empty for TorchScript)."""
    graph = layer_graph(model)
    if graph.compiled:
        return graph, ()
    return graph, (_GRAPHS[model][1], _table_part(model))


def layer_graph(model: nn.Module) -> LayerGraph:
    """The (cached) layer graph of ``model``.

    The graph is traced once and kept; a model changed in place since (a layer replaced or added, a setting or
    a parameter swapped) is traced again, so no stale graph is ever handed out.
    """
    # a TorchScript archive is one compiled program, not a module tree to edit: its graph stays
    compiled = isinstance(model, torch.jit.ScriptModule)
    fingerprint: tuple[Any, ...] = () if compiled else graph_fingerprint(model)
    hit = _GRAPHS.get(model)
    if hit is not None and (compiled or hit[1] == fingerprint):
        return hit[0]
    graph = LayerGraph(model)
    _GRAPHS[model] = (graph, fingerprint)
    return graph


def forget_graph(model: nn.Module) -> None:
    """Drop the cached graph (its tables with it); the next use traces again."""
    _GRAPHS.pop(model, None)


def unwrap_module(model: Any) -> nn.Module:
    """Accept an ``nn.Module`` or anything with a ``.module`` (a LoadedModel)."""
    module = getattr(model, "module", model)
    if not isinstance(module, nn.Module):
        raise TypeError(f"expected a torch.nn.Module or a loaded model, got {type(model).__name__}")
    return module


def unwrap_input(x: Any) -> torch.Tensor:
    """Accept a tensor (batched or not) or anything with a ``.tensor`` (a LoadedImage)."""
    tensor = getattr(x, "tensor", x)
    if not isinstance(tensor, torch.Tensor):
        raise TypeError(f"expected a tensor or a loaded image, got {type(x).__name__}")
    if tensor.dim() == 3:
        tensor = tensor.unsqueeze(0)
    return tensor


def model_device(module: nn.Module) -> torch.device:
    """The device of the first parameter or buffer (CPU for a module with neither)."""
    for p in module.parameters():
        return p.device
    for b in module.buffers():
        return b.device
    return torch.device("cpu")


def resolve_layer(graph: LayerGraph, name: str) -> str:
    """Return ``name`` if it is a layer of the graph, else raise a LayerError listing the closest names."""
    if name in graph:
        return name
    keys = [k for k in graph.keys() if k != "input"]
    close = difflib.get_close_matches(name, keys, n=5, cutoff=0.5)
    if not close:
        close = [k for k in keys if name.lower() in k.lower()][:5]
    hint = f"; closest: {', '.join(close)}" if close else f"; layers are e.g. {', '.join(keys[:5])}"
    raise LayerError(f"unknown layer '{name}'{hint}")
