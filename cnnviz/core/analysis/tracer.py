"""torch.fx's tracer as the layer graph uses it: modules that hand back their input keep a node, tuple unpacking
reads the caller's bytecode once per function, and tracing leaves the model as it found it.

Each override keeps fx's own answer and drops only work fx repeats per node (see each docstring).
"""

from __future__ import annotations

import bisect
import copy
import dis
import sys
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import CodeType
from typing import Any

import torch
import torch.fx as fx
from torch import nn

from cnnviz.core.moduletree import all_modules

_INSTRUCTIONS: dict[CodeType, tuple[list[int], list[dis.Instruction]]] = {}


class _Proxy(fx.Proxy):
    """fx's proxy, unpacking as fx does (``a, b = x.chunk(2)`` is two ``getitem`` nodes) but reading the caller's
    bytecode once per function: fx disassembles the whole calling function on every unpacking (ShuffleNet does
    one per block)."""

    def __iter__(self) -> Iterator[fx.Proxy]:
        frame = sys._getframe(1)
        code = frame.f_code
        found = _INSTRUCTIONS.get(code)
        if found is None:
            if len(_INSTRUCTIONS) > 10_000:
                _INSTRUCTIONS.clear()
            instructions = list(dis.get_instructions(code))
            found = _INSTRUCTIONS[code] = ([i.offset for i in instructions], instructions)
        offsets, instructions = found
        # fx's own look-up: the instruction at the call's offset (3.11 on) or at half of it (before)
        index = (
            bisect.bisect_left(offsets, frame.f_lasti)
            if sys.version_info >= (3, 11)
            else frame.f_lasti // 2
        )
        inst = instructions[index]
        if inst.opname == "UNPACK_SEQUENCE":
            return (self[i] for i in range(inst.argval))  # type: ignore[index]
        return self.tracer.iter(self)


# Arguments fx stores as they are (its base types and constants, less tensors, which may be parameters).
_CONSTANT_ARGUMENTS = frozenset(
    {str, int, float, bool, complex, type(None), type(...), torch.dtype, torch.device}
    | {torch.memory_format, torch.layout}
)


class _ModuleStack(OrderedDict[str, tuple[str, Any]]):
    """fx's stack of module calls, copied into every node's ``nn_module_stack`` as an OrderedDict of its own:
    ``copy.copy`` of a plain OrderedDict goes through pickling's reduce protocol, several times the C copy."""

    def __copy__(self) -> OrderedDict[str, tuple[str, Any]]:
        return OrderedDict(self)


class _Scope(fx.proxy.Scope):
    """fx's current module scope, which fx copies on entering every module call: ``copy.copy`` of a plain
    object goes through pickling's reduce protocol, several times making a new one."""

    def __copy__(self) -> _Scope:
        return _Scope(self.module_path, self.module_type)


# fx patches ``nn.Module.__call__`` and ``__getattr__`` for every trace and puts them back after. Assigning a
# special method to a class makes CPython update that slot on every subclass: over a thousand once torchvision
# and timm are imported, about a millisecond per assignment, four per trace. Patching the classes of the
# traced model alone (a dozen) intercepts the same calls, as long as each of them inherits nn.Module's own
# method; otherwise fx patches nn.Module as it always does.
_PATCHED_METHODS = ("__call__", "__getattr__")
_TRACE_CLASSES = threading.local()
_FxPatcher: Any = getattr(fx._symbolic_trace, "_Patcher", None)
_FxSetAttr: Any = getattr(fx._symbolic_trace, "_PatchedFnSetAttr", None)


def _install_class_patcher() -> bool:
    """Let fx's patcher of this thread's next trace patch the traced model's classes (see above); fx's own
    behaviour is unchanged for any other trace. False where this torch lacks the patcher."""
    if _FxPatcher is None or _FxSetAttr is None:
        return False
    if fx._symbolic_trace._Patcher is not _ClassPatcher:
        if fx._symbolic_trace._Patcher is not _FxPatcher:
            return False  # someone else's patcher: leave it
        setattr(fx._symbolic_trace, "_Patcher", _ClassPatcher)  # noqa: B010 - mypy refuses assigning to a class
    return True


if _FxPatcher is not None and _FxSetAttr is not None:

    class _PatchedOwnMethod(_FxSetAttr):  # type: ignore[misc, valid-type]
        """fx's patch of a class attribute, on a class that only inherited it: removed again on revert (fx's
        would leave nn.Module's method set on the class itself)."""

        def revert(self) -> None:
            delattr(self.frame_dict, self.fn_name)

    class _ClassPatcher(_FxPatcher):  # type: ignore[misc, valid-type]
        """fx's patcher; made for a trace of the layer graph, it patches nn.Module's call and attribute
        methods on the model's classes instead of on nn.Module."""

        def __init__(self) -> None:
            super().__init__()
            # taken by the first patcher made after the trace began (its own): a nested trace gets fx's
            self._classes: frozenset[type] | None = getattr(_TRACE_CLASSES, "classes", None)
            _TRACE_CLASSES.classes = None

        def patch_method(
            self, cls: type, name: str, new_fn: Callable[..., Any], deduplicate: bool = True
        ) -> None:
            classes = self._classes
            orig = getattr(cls, name)
            if (
                classes is None
                or cls is not nn.Module
                or name not in _PATCHED_METHODS
                or getattr(orig, "__fx_already_patched", False)
                or any(name in c.__dict__ or getattr(c, name) is not orig for c in classes)
            ):
                super().patch_method(cls, name, new_fn, deduplicate)
                return
            new_fn.__fx_already_patched = deduplicate  # type: ignore[attr-defined]
            for c in classes:
                if getattr(c, name) is orig:  # not already reached through a patched base class
                    patch = _PatchedOwnMethod(c, name, None, new_fn)
                    self.patches_made.append(patch)
                    patch.patch()


class Tracer(fx.Tracer):
    """torch.fx's tracer, keeping modules that hand back their input unchanged as layers of their own.

    fx traces through every module outside ``torch.nn`` and through containers; one that returns its argument
    untouched (an empty ``nn.Sequential`` shortcut, timm's ``DropPath`` at inference) would leave no node, so
    no row, no shape and no capture entry. Such a call becomes a ``call_module`` node instead.
    """

    def proxy(self, node: fx.Node) -> fx.Proxy:
        return _Proxy(node, self)

    def trace(self, root: Any, concrete_args: dict[str, Any] | None = None) -> fx.Graph:
        """fx's trace, its module patches made on the model's own classes (see ``_install_class_patcher``)."""
        if not isinstance(root, nn.Module) or not _install_class_patcher():
            return super().trace(root, concrete_args)
        _TRACE_CLASSES.classes = frozenset(type(m) for m in all_modules(root))
        try:
            return super().trace(root, concrete_args)
        finally:
            _TRACE_CLASSES.classes = None

    def __init__(self) -> None:
        super().__init__()
        self.module_stack = _ModuleStack()
        self.scope = _Scope("", None)
        self._node_names: dict[Any, str] = {}
        self.returns_input: set[fx.Node] = set()
        self._tensor_names: tuple[dict[int, str], dict[int, str]] | None = None

    def _names(self) -> tuple[dict[int, str], dict[int, str]]:
        """The model's parameters and buffers by identity, named as ``named_parameters()`` first names them."""
        if self._tensor_names is None:
            params: dict[int, str] = {}
            for n, p in self.root.named_parameters():
                params.setdefault(id(p), n)
            buffers: dict[int, str] = {}
            for n, b in self.root.named_buffers():
                buffers.setdefault(id(b), n)
            self._tensor_names = params, buffers
        return self._tensor_names

    def create_node(
        self,
        kind: str,
        target: Any,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        name: str | None = None,
        type_expr: Any | None = None,
    ) -> fx.Node:
        """fx's node, its arguments set through the node's own setters once it exists: ``Graph.create_node``
        first walks every argument with pytree looking for raw symbolic sizes, which symbolic tracing never
        makes, and that walk was a seventh of the whole trace. The node's name is fx's own (see
        :meth:`_node_name`)."""
        if name is None:
            name = self._node_name(target)
        node = super().create_node(kind, target, (), {}, name, type_expr)
        if kwargs:
            node.kwargs = kwargs
        if args:
            node.args = args
        return node

    def _node_name(self, target: Any) -> str | None:
        """The name fx would derive from ``target`` (``add``, ``features_3_conv_1``), made once per target:
        fx makes it with a regular expression for every node, and most nodes share a few targets."""
        try:
            name = self._node_names.get(target)
        except TypeError:  # an unhashable callable: fx names it itself
            return None
        if name is None:
            name = self._node_names[target] = self.graph._target_to_str(target)
        return name

    def create_arg(self, a: Any) -> Any:
        """fx's own rule, a parameter or buffer passed as an argument named from the table (fx walks the
        whole model for each). The common kinds (proxies, plain constants, tuples and lists of them) are
        answered by their exact type, as fx's own answer would be (of dicts, those with string keys: keyword
        arguments): fx's chain of checks behind its fast path misses the tracer's proxy subclass, and ran
        for every argument of every node."""
        kind = type(a)
        if kind is _Proxy:
            return a.node
        if kind in _CONSTANT_ARGUMENTS:
            return a
        if kind is tuple:
            return tuple([self.create_arg(e) for e in a])
        if kind is list:
            return [self.create_arg(e) for e in a]
        if kind is dict and all(type(k) is str for k in a):  # keyword arguments
            return {k: self.create_arg(v) for k, v in a.items()}
        if isinstance(a, torch.Tensor):
            params, buffers = self._names()
            name = (params if isinstance(a, nn.Parameter) else buffers).get(id(a))
            if name is not None:
                return self.create_node("get_attr", name, (), {})
        return super().create_arg(a)

    def getattr(self, attr: str, attr_val: Any, parameter_proxy_cache: dict[str, Any]) -> Any:
        """fx's own rule (a parameter or buffer read becomes a ``get_attr`` node named as in
        ``named_parameters()``), with the names looked up in a table made once: fx walks every parameter of
        the model on each read, which made tracing quadratic (timm's BatchNormAct reads four per layer)."""
        if not isinstance(attr_val, torch.Tensor) or self.param_shapes_constant:
            return super().getattr(attr, attr_val, parameter_proxy_cache)
        params, buffers = self._names()
        name = params.get(id(attr_val)) if isinstance(attr_val, nn.Parameter) else None
        if name is None and self.proxy_buffer_attributes:
            name = buffers.get(id(attr_val))
        if name is None:
            return attr_val
        proxy = parameter_proxy_cache.get(name)
        if proxy is None:
            proxy = parameter_proxy_cache[name] = self.create_proxy(
                "get_attr", name, (), {}, proxy_factory_fn=None
            )
        return proxy

    def call_module(
        self,
        m: nn.Module,
        forward: Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
    ) -> Any:
        def traced(*a: Any, **k: Any) -> Any:
            before = len(self.graph.nodes)
            out = forward(*a, **k)
            if a and out is a[0] and isinstance(out, fx.Proxy) and len(self.graph.nodes) == before:
                proxy = self.create_proxy("call_module", self.path_of_module(m), a, k)
                self.returns_input.add(proxy.node)
                return proxy
            return out

        return super().call_module(m, traced, args, kwargs)


# The attributes every module gets from ``nn.Module.__init__`` (its parameters, buffers, submodules and hooks):
# torch's own tables, which hold tensors, modules and hooks only, never a proxy.
TORCH_OWN_ATTRIBUTES = frozenset(nn.Module().__dict__)


@contextmanager
def undo_trace_side_effects(model: nn.Module) -> Iterator[None]:
    """Leave the model as it was before tracing: a forward that caches in its own attributes (timm's LeViT keeps
    its attention biases in a dict per device) would otherwise keep fx proxies there -- a graph kept alive, and
    on the next trace a node of the old graph read back into the new one."""
    saved = []
    for m in all_modules(model):
        attrs = dict(m.__dict__)
        contents = {
            k: copy.copy(attrs[k])
            for k in attrs.keys() - TORCH_OWN_ATTRIBUTES
            if type(attrs[k]) in (dict, list)
        }
        saved.append((m, attrs, contents))
    try:
        yield
    finally:
        for m, attrs, contents in saved:
            now = m.__dict__
            for k in [k for k in now.keys() - TORCH_OWN_ATTRIBUTES if isinstance(now[k], fx.Proxy)]:
                if k in attrs:
                    now[k] = attrs[k]
                else:
                    del now[k]
            for k, before in contents.items():
                held = attrs[k]
                if _changed(held, before):
                    if type(held) is dict:
                        held.clear()
                        held.update(before)
                    else:
                        held[:] = before


def _changed(now: Any, before: Any) -> bool:
    if type(now) is dict:
        return now.keys() != before.keys() or any(now[k] is not v for k, v in before.items())
    return len(now) != len(before) or any(a is not b for a, b in zip(now, before, strict=False))
