"""Rebuilding modules with new constructor arguments, and applying a list of edits to a model.

A module's constructor arguments are read back with :func:`cnnviz.core.models.spec.io.layer_object` (the
spec's own reader) plus the argument a spec infers (``in_channels`` ...), so any module of a spec type can be
rebuilt with some of them changed. Edits never change the model they are given: the modules on the path from
the root to an edited module are shallow copies with their own child registry, everything else is shared.
That makes each edited model a cheap snapshot (undo keeps the old one) and a real model edited this way keeps
the very weight tensors of every module it did not touch.
"""

from __future__ import annotations

import copy
import functools
import re
import warnings
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from cnnviz.core.errors import SpecError, one_line
from cnnviz.core.models.edits.patch import ModuleEdit
from cnnviz.core.models.layertypes import INFERRED, SUPPORTED_TYPES
from cnnviz.core.models.spec.check import _static_check
from cnnviz.core.models.spec.io import layer_object
from cnnviz.core.models.spec.schema import _type_info

Renamer = Callable[[str], str | None]


def rebuildable(module: nn.Module) -> bool:
    """Whether ``module`` is exactly one of the spec's layer types (so its arguments can be read back)."""
    name = type(module).__name__
    return name in SUPPORTED_TYPES and type(module) is getattr(nn, name)


def why_not_editable(module: nn.Module) -> str | None:
    """Why ``module``'s own settings cannot be edited (None when they can)."""
    if rebuildable(module):
        return None
    cls = type(module).__name__
    if any(True for _ in module.children()):
        return f"a {cls} is edited through the modules inside it"
    return (
        f"{cls} is not a layer type cnnviz can rebuild; replace it by one of "
        f"{', '.join(SUPPORTED_TYPES)}, or edit the layers around it"
    )


def module_config(module: nn.Module) -> dict[str, Any]:
    """The layer object of ``module``: its ``type`` and constructor arguments, the inferred one included."""
    layer = layer_object(module)
    key = INFERRED.get(layer["type"])
    if key is not None:
        layer[key] = int(getattr(module, key))
    return layer


def full_config(module: nn.Module) -> dict[str, Any]:
    """Every constructor argument of a rebuildable module, defaults included (for "restore stride 1")."""
    config = module_config(module)
    for key in _accepted(config["type"]):
        if key == "bias":
            config.setdefault(key, getattr(module, "bias", None) is not None)
        elif key not in config and hasattr(module, key):
            config[key] = getattr(module, key)
    return config


def _groups_problem(layer: dict[str, Any]) -> str | None:
    groups = layer.get("groups", 1)
    if not isinstance(groups, int) or groups < 1:
        return None
    for key in ("in_channels", "out_channels"):
        value = layer.get(key)
        if isinstance(value, int) and value % groups:
            return (
                f"groups {groups} must divide {key} {value}; choose a number of groups that divides "
                f"both in_channels {layer.get('in_channels')} and out_channels {layer.get('out_channels')}"
            )
    return None


def build_module(
    layer: dict[str, Any], *, device: torch.device | str | None = None, where: str = ""
) -> nn.Module:
    """A module from a layer object (arguments checked as a spec checks them); SpecError in words otherwise."""
    prefix = f"{where}: " if where else ""
    layer_type, reason, kwargs = _static_check(layer)
    if reason is None and layer_type in INFERRED and INFERRED[layer_type] not in kwargs:
        reason = f"{INFERRED[layer_type]} is needed to build a {layer_type} here"
    if reason is None and layer_type in ("Conv2d", "ConvTranspose2d"):
        reason = _groups_problem({**layer, **kwargs})
    if reason is not None or layer_type is None:
        raise SpecError(f"{prefix}{reason}")
    meta = device is not None and torch.device(device).type == "meta"
    try:
        if meta:
            return _meta_module(layer_type, tuple(sorted(kwargs.items())))
        with warnings.catch_warnings(), torch.device(device or "cpu"):
            warnings.simplefilter("ignore")
            return getattr(nn, layer_type)(**dict(kwargs))
    except SpecError:
        raise
    except Exception as exc:  # noqa: BLE001 - torch's checks, worded as a one-line error
        raise SpecError(
            f"{prefix}{layer_type} cannot be built with these settings: {one_line(exc)}"
        ) from None


@functools.lru_cache(maxsize=4096)
def _meta_module(layer_type: str, kwargs: tuple[tuple[str, Any], ...]) -> nn.Module:
    """A module on the meta device, shared by every snapshot that builds the same layer (never changed in place)."""
    cls = getattr(nn, layer_type)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if _type_info(layer_type).takes_device:
            # no initialisation: meta weights have shapes and nothing to initialise
            module = torch.nn.utils.skip_init(cls, device="meta", **dict(kwargs))
        else:
            module = cls(**dict(kwargs))
    return module.eval()


def _signature_shapes(module: nn.Module) -> dict[str, tuple[int, ...]]:
    return {k: tuple(v.shape) for k, v in module.state_dict().items()}


def _keep_weights(old: nn.Module, new: nn.Module) -> bool:
    """Copy ``old``'s parameters and buffers into ``new`` where every shape agrees; whether it did."""
    if not any(True for _ in new.parameters()) and not any(True for _ in new.buffers()):
        return False
    if type(old) is not type(new) or _signature_shapes(old) != _signature_shapes(new):
        return False
    if any(t.is_meta for t in old.state_dict().values()) or any(
        t.is_meta for t in new.state_dict().values()
    ):
        return True  # shapes only: nothing to copy
    with torch.no_grad():
        new.load_state_dict({k: v.detach().clone() for k, v in old.state_dict().items()})
    return True


def _device_of(module: nn.Module) -> torch.device:
    for t in module.state_dict().values():
        return t.device
    return torch.device("cpu")


def _with_child(root: nn.Module, path: list[str], new: nn.Module) -> nn.Module:
    """``root`` with the module at ``path`` replaced by ``new``; the modules along the path are copied."""
    if not path:
        return new
    head, rest = path[0], path[1:]
    child = root._modules.get(head)
    if child is None:
        raise KeyError(head)
    clone = copy.copy(root)
    clone._modules = OrderedDict(root._modules)
    clone._modules[head] = _with_child(child, rest, new)
    return clone


def _numbered(container: nn.Module) -> bool:
    return all(re.fullmatch(r"\d+", k) and int(k) == i for i, k in enumerate(container._modules))


def _closest(name: str, names: Iterable[str]) -> str:
    import difflib

    close = difflib.get_close_matches(name, list(names), n=3, cutoff=0.6)
    return f"; did you mean {', '.join(close)}?" if close else "; names are as in the Layers dock"


def get_module(root: nn.Module, name: str) -> nn.Module:
    """The module named ``name`` ("" is the model); SpecError with the closest names otherwise."""
    if not name:
        return root
    try:
        return root.get_submodule(name)
    except AttributeError:
        names = [n for n, _ in root.named_modules() if n]
        raise SpecError(f"the model has no module {name!r}{_closest(name, names)}") from None


def _parent(root: nn.Module, name: str) -> tuple[nn.Module, str, str]:
    parent_name, _, leaf = name.rpartition(".")
    return get_module(root, parent_name), parent_name, leaf


@dataclass
class EditOutcome:
    """An edited model: ``rebuilt`` holds the modules built anew (current names) and ``fresh`` those of them
    whose weights could not be kept; ``renamers`` map a current name back to the name it had before each
    structural edit (None: a module that did not exist)."""

    module: nn.Module
    rebuilt: set[str] = field(default_factory=set)
    fresh: set[str] = field(default_factory=set)
    renamers: list[Renamer] = field(default_factory=list)

    def original_name(self, name: str) -> str | None:
        """The name a current module or layer key had in the model before the edits (None: it is new)."""
        current: str | None = name
        for rename in reversed(self.renamers):
            if current is None:
                return None
            current = rename(current)
        return current


def _shift(container: str, start: int, offset: int, removed: int | None = None) -> Renamer:
    """Names under ``container`` with an index >= ``start`` move by ``offset``; ``removed`` maps to None."""
    prefix = f"{container}." if container else ""

    def rename(name: str) -> str | None:
        if not name.startswith(prefix):
            return name
        head, dot, tail = name[len(prefix) :].partition(".")
        bare = head.split("@")[0]
        if not bare.isdigit():
            return name
        i = int(bare)
        if removed is not None and i == removed:
            return None
        if i >= start:
            head = str(i + offset) + head[len(bare) :]
        return f"{prefix}{head}{dot}{tail}"

    return rename


def _new_name(container: str, key: str) -> Renamer:
    full = f"{container}.{key}" if container else key

    def rename(name: str) -> str | None:
        return None if name == full or name.startswith(full + ".") else name

    return rename


def apply_edit(
    root: nn.Module, edit: ModuleEdit, outcome: EditOutcome, *, device: torch.device | None = None
) -> nn.Module:
    """``root`` with one edit made (see :class:`EditOutcome`); SpecError naming the edit when it cannot be."""
    name = edit.module
    if edit.op in ("set", "replace"):
        old = get_module(root, name)
        if edit.op == "set":
            why = why_not_editable(old)
            if why is not None:
                raise SpecError(f"{name or 'the model'} cannot be edited: {why}")
            layer = module_config(old)
            unknown = [k for k in edit.settings if k not in _accepted(layer["type"])]
            if unknown:
                raise SpecError(
                    f"{name}: a {layer['type']} has no setting {unknown[0]!r}; its settings are "
                    f"{', '.join(_accepted(layer['type']))}"
                )
            layer.update(edit.settings)
        else:
            assert edit.type is not None
            layer = {"type": edit.type, **_carried(old, edit.type), **edit.settings}
        dev = device if device is not None else _device_of(old)
        new = build_module(layer, device=dev, where=name)
        outcome.rebuilt.add(name)
        if dev.type == "meta":  # shapes only: a shared module, nothing to keep
            return _with_child(root, name.split("."), new) if name else new
        new.train(old.training)
        if not _keep_weights(old, new):
            if any(True for _ in new.parameters()) or any(True for _ in new.buffers()):
                outcome.fresh.add(name)
        outcome.rebuilt.add(name)
        if not name:
            return new
        return _with_child(root, name.split("."), new)
    if edit.op == "insert":
        container = get_module(root, name)
        if not isinstance(container, nn.Sequential):
            raise SpecError(
                f"{name or 'the model'} is a {type(container).__name__}, not an nn.Sequential; "
                "layers can be inserted only into a Sequential"
            )
        index = edit.index if edit.index is not None else len(container)
        if not 0 <= index <= len(container):
            raise SpecError(
                f"{name}: a layer can be inserted at positions 0 to {len(container)}, not {index}"
            )
        assert edit.type is not None
        layer = {"type": edit.type, **edit.settings}
        dev = device if device is not None else _device_of(container)
        new = build_module(layer, device=dev, where=f"{name}[{index}]")
        if dev.type != "meta":
            new.train(container.training)
        items = list(container._modules.items())
        clone = copy.copy(container)
        if _numbered(container):
            modules = [m for _, m in items]
            modules.insert(index, new)
            clone._modules = OrderedDict((str(i), m) for i, m in enumerate(modules))
            key = str(index)
            outcome.renamers.append(_shift(name, index + 1, -1, removed=index))
        else:
            key = edit.type.lower()
            n = 1
            while key in container._modules:
                key = f"{edit.type.lower()}_{n}"
                n += 1
            items.insert(index, (key, new))
            clone._modules = OrderedDict(items)
            outcome.renamers.append(_new_name(name, key))
        full = f"{name}.{key}" if name else key
        outcome.rebuilt.add(full)
        if any(True for _ in new.parameters()):
            outcome.fresh.add(full)
        return _with_child(root, name.split(".") if name else [], clone)
    # delete
    get_module(root, name)
    parent, parent_name, leaf = _parent(root, name)
    if not isinstance(parent, nn.Sequential):
        raise SpecError(
            f"{name} is inside a {type(parent).__name__}, not an nn.Sequential; only layers of a Sequential "
            "can be deleted (replace it by an Identity instead)"
        )
    clone = copy.copy(parent)
    if _numbered(parent):
        index = int(leaf)
        modules = [m for k, m in parent._modules.items() if k != leaf]
        clone._modules = OrderedDict((str(i), m) for i, m in enumerate(modules))
        outcome.renamers.append(_shift(parent_name, index, 1))
    else:
        clone._modules = OrderedDict((k, m) for k, m in parent._modules.items() if k != leaf)
    return _with_child(root, parent_name.split(".") if parent_name else [], clone)


def _accepted(layer_type: str) -> list[str]:
    from cnnviz.core.models.spec.schema import accepted_arguments

    return accepted_arguments(layer_type)


def _carried(old: nn.Module, new_type: str) -> dict[str, Any]:
    """The arguments of ``old`` that ``new_type`` also takes (MaxPool2d -> AvgPool2d keeps its window)."""
    if not rebuildable(old) or new_type not in SUPPORTED_TYPES:
        return {}
    accepted = set(_accepted(new_type))
    config = module_config(old)
    carried = {k: v for k, v in config.items() if k != "type" and k in accepted}
    if new_type in INFERRED:
        # the incoming channel count, whatever the old type called it
        for key in ("in_channels", "num_features", "in_features"):
            if key in config:
                carried[INFERRED[new_type]] = config[key]
                break
        if type(old).__name__ in ("BatchNorm2d", "BatchNorm1d") and new_type in ("Conv2d",):
            carried.setdefault("out_channels", config.get("num_features"))
    return carried


def apply_edits(
    root: nn.Module, edits: Iterable[ModuleEdit], *, device: torch.device | None = None
) -> EditOutcome:
    """Apply ``edits`` in order to ``root`` (left unchanged); SpecError naming the first edit that fails."""
    outcome = EditOutcome(root)
    for i, edit in enumerate(edits):
        try:
            outcome.module = apply_edit(outcome.module, edit, outcome, device=device)
        except SpecError as exc:
            raise SpecError(f"edit {i + 1} ({edit.describe()}): {exc}") from None
    return outcome


def meta_copy(module: nn.Module) -> nn.Module:
    """A copy of ``module`` whose parameters and buffers live on the meta device (shapes only, no memory)."""
    memo: dict[int, Any] = {}
    for p in module.parameters():
        meta = torch.empty_like(p, device="meta")
        memo[id(p)] = nn.Parameter(meta, requires_grad=p.requires_grad)
    for b in module.buffers():
        memo[id(b)] = torch.empty_like(b, device="meta")
    return copy.deepcopy(module, memo)
