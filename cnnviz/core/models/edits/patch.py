"""The edit patch: a JSON object naming a base model and the module edits made to it.

::

    {"base": "resnet18",
     "edits": [{"module": "layer2.0.conv1", "set": {"stride": 1}},
               {"module": "layer2.0.downsample", "replace": {"type": "Identity"}},
               {"module": "layer1", "insert": {"index": 1, "type": "ReLU"}},
               {"module": "features.3", "delete": true}]}

``base`` is anything :func:`cnnviz.core.models.load_model` opens (a model name or a file; a relative path is
read from the patch file's folder). Each edit names a module by its qualified name as in ``named_modules()``
and does one thing: ``set`` constructor arguments of it, ``replace`` it by another layer type (with that
type's arguments), ``insert`` a new layer into it (an ``nn.Sequential``) at ``index``, or ``delete`` it from the
``nn.Sequential`` holding it. Edits apply in order, each to the model the previous ones left; an edit that
another one implied (a batch norm's ``num_features`` following a convolution's ``out_channels``) carries
``"follows": true``. Optional ``name`` and ``description`` are strings for display.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

from cnnviz.core.errors import SpecError
from cnnviz.core.jsonio import read_json

OPERATIONS = ("set", "replace", "insert", "delete")
_PATCH_KEYS = ("base", "edits", "name", "description")
_EDIT_KEYS = ("module", *OPERATIONS, "follows")


def _freeze(value: Any) -> Any:
    if isinstance(value, list | tuple):
        return tuple(_freeze(v) for v in value)
    return value


def _thaw(value: Any) -> Any:
    if isinstance(value, tuple | list):
        return [_thaw(v) for v in value]
    return value


@dataclass(frozen=True)
class ModuleEdit:
    """One edit of one module (immutable; lists in ``settings`` are stored as tuples).

    ``op`` is ``"set"`` (``settings`` are the new constructor arguments), ``"replace"`` (a ``type`` with its
    ``settings``), ``"insert"`` (a ``type`` with ``settings`` at ``index`` of the ``nn.Sequential`` named
    ``module``) or ``"delete"``. ``follows`` marks an edit implied by the one before it (channel propagation).
    """

    op: str
    module: str
    settings: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    type: str | None = None
    index: int | None = None
    follows: bool = False

    def __post_init__(self) -> None:
        frozen = MappingProxyType({str(k): _freeze(v) for k, v in dict(self.settings).items()})
        object.__setattr__(self, "settings", frozen)

    def __hash__(self) -> int:
        return hash((self.op, self.module, tuple(sorted(self.settings.items())), self.type))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ModuleEdit):
            return NotImplemented
        return self.to_json() == other.to_json()

    def to_json(self) -> dict[str, Any]:
        """The edit as a patch's JSON object."""
        out: dict[str, Any] = {"module": self.module}
        settings = {k: _thaw(v) for k, v in self.settings.items()}
        if self.op == "set":
            out["set"] = settings
        elif self.op == "replace":
            out["replace"] = {"type": self.type, **settings}
        elif self.op == "insert":
            out["insert"] = {"index": self.index, "type": self.type, **settings}
        else:
            out["delete"] = True
        if self.follows:
            out["follows"] = True
        return out

    def describe(self) -> str:
        """The edit in words: ``layer1.0.conv1 now has stride 2``."""

        def show(v: Any) -> str:
            if isinstance(v, tuple) and len(set(v)) == 1:
                v = v[0]
            return str(v)

        if self.op == "set":
            parts = ", ".join(f"{k} {show(v)}" for k, v in self.settings.items())
            return f"{self.module or 'the model'} now has {parts}"
        article = "an" if str(self.type)[:1].upper() in "AEIOU" else "a"
        if self.op == "replace":
            return f"{self.module} is now {article} {self.type}"
        if self.op == "insert":
            where = self.module or "the model"
            return f"{article} {self.type} was inserted into {where} at position {self.index}"
        return f"{self.module} was deleted"


@dataclass(frozen=True)
class Patch:
    """A parsed patch: the base model and its edits. ``folder`` resolves a relative base path."""

    base: str
    edits: tuple[ModuleEdit, ...]
    name: str | None = None
    description: str | None = None
    folder: Path | None = None

    def base_spec(self) -> str:
        """The base as load_model takes it: a relative file path is read from the patch's folder."""
        if self.folder is not None:
            candidate = self.folder / self.base
            if not Path(self.base).is_absolute() and candidate.exists():
                return str(candidate)
        return self.base

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"base": self.base}
        if self.name:
            out["name"] = self.name
        if self.description:
            out["description"] = self.description
        out["edits"] = [e.to_json() for e in self.edits]
        return out


def is_patch(obj: Any) -> bool:
    """Whether ``obj`` (a parsed JSON value) is a patch rather than a spec: an object with base and edits."""
    return isinstance(obj, Mapping) and "base" in obj and "edits" in obj


def _where(i: int) -> str:
    return f"edit {i + 1}"


def _settings(obj: Any, i: int, what: str) -> dict[str, Any]:
    if not isinstance(obj, Mapping):
        raise SpecError(
            f'{_where(i)}: "{what}" must be an object of constructor arguments such as {{"stride": 1}}'
        )
    for key, value in obj.items():
        if not isinstance(key, str):
            raise SpecError(f"{_where(i)}: argument names must be strings, not {key!r}")
        if isinstance(value, Mapping):
            raise SpecError(
                f"{_where(i)}: the value of {key!r} must be a number, a bool, a string or a list"
            )
    return dict(obj)


def parse_edit(obj: Any, i: int = 0) -> ModuleEdit:
    """One edit object -> :class:`ModuleEdit`; raises SpecError in words for anything malformed."""
    if not isinstance(obj, Mapping):
        raise SpecError(
            f'{_where(i)} must be an object such as {{"module": "layer1.0.conv1", "set": {{"stride": 1}}}}'
        )
    unknown = [k for k in obj if k not in _EDIT_KEYS]
    if unknown:
        raise SpecError(
            f'{_where(i)}: unknown key {unknown[0]!r}; an edit has "module" and one of '
            f'{", ".join(repr(o) for o in OPERATIONS)} (and optionally "follows")'
        )
    module = obj.get("module")
    if not isinstance(module, str):
        raise SpecError(
            f'{_where(i)} needs "module": the qualified name of a module, such as "layer1.0.conv1"'
        )
    ops = [op for op in OPERATIONS if op in obj]
    if len(ops) != 1:
        raise SpecError(
            f"{_where(i)} ({module}) must have exactly one of {', '.join(repr(o) for o in OPERATIONS)}, "
            f"not {len(ops)}"
        )
    op = ops[0]
    follows = obj.get("follows", False)
    if not isinstance(follows, bool):
        raise SpecError(f'{_where(i)} ({module}): "follows" must be true or false')
    body = obj[op]
    if op == "set":
        settings = _settings(body, i, "set")
        if not settings:
            raise SpecError(f'{_where(i)} ({module}): "set" names no argument to change')
        if "type" in settings:
            raise SpecError(
                f'{_where(i)} ({module}): change a layer\'s type with "replace", not "set"'
            )
        return ModuleEdit("set", module, settings, follows=follows)
    if op == "delete":
        if body is not True:
            raise SpecError(f'{_where(i)} ({module}): write "delete": true')
        if not module:
            raise SpecError(
                f"{_where(i)}: the whole model cannot be deleted; name one of its modules"
            )
        return ModuleEdit("delete", module, follows=follows)
    settings = _settings(body, i, op)
    layer_type = settings.pop("type", None)
    if not isinstance(layer_type, str):
        raise SpecError(f'{_where(i)} ({module}): "{op}" needs a "type" such as "Identity"')
    index = None
    if op == "insert":
        index = settings.pop("index", None)
        if not isinstance(index, int) or isinstance(index, bool) or index < 0:
            raise SpecError(f'{_where(i)} ({module}): "insert" needs "index", a position from 0')
    return ModuleEdit(op, module, settings, layer_type, index, follows)


def parse_patch(obj: Any, folder: Path | None = None) -> Patch:
    """A patch object -> :class:`Patch`; raises SpecError in one line for unknown keys or bad edits."""
    if not isinstance(obj, Mapping):
        raise SpecError(
            f'a patch must be a JSON object with "base" and "edits", not {type(obj).__name__}'
        )
    unknown = [k for k in obj if k not in _PATCH_KEYS]
    if unknown:
        raise SpecError(
            f"unknown patch key {unknown[0]!r}; a patch has {', '.join(repr(k) for k in _PATCH_KEYS)}"
        )
    base = obj.get("base")
    if not isinstance(base, str) or not base.strip():
        raise SpecError('the patch needs "base": a model name such as "resnet18" or a model file')
    edits = obj.get("edits")
    if not isinstance(edits, list | tuple):
        raise SpecError('the patch needs "edits": a list of edit objects')
    for key in ("name", "description"):
        if obj.get(key) is not None and not isinstance(obj[key], str):
            raise SpecError(f'the patch\'s "{key}" must be a string')
    return Patch(
        base,
        tuple(parse_edit(e, i) for i, e in enumerate(edits)),
        obj.get("name"),
        obj.get("description"),
        folder,
    )


def read_patch(path: str | os.PathLike[str]) -> Patch:
    """Read and parse a patch file."""
    p = Path(path)
    return parse_patch(read_json(p), p.parent)
