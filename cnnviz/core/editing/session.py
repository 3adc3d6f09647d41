"""An edit session: the current snapshot, undoable edits, the live table against the original, Apply."""

from __future__ import annotations

import difflib
import functools
from collections.abc import Callable, Mapping
from dataclasses import replace
from types import MappingProxyType
from typing import Any

from cnnviz.core import text
from cnnviz.core.editing.apply import ApplyResult, _signatures, apply_architecture
from cnnviz.core.editing.architecture import (
    Architecture,
    EditLayer,
    Shape,
    architecture_from_spec,
    editable_architecture,
    new_layer,
)
from cnnviz.core.editing.live import LiveTable, live_table
from cnnviz.core.errors import SpecError
from cnnviz.core.models import LoadedModel


class EditSession:
    """Editing one model: the original snapshot, the current one, and the model Apply takes weights from.

    Each edit method returns the new current snapshot. ``goto`` sets the current snapshot (undo/redo keep the
    snapshots they return to). :meth:`table` is the live table of the current snapshot, with deltas against
    the original.
    """

    def __init__(self, arch: Architecture, model: LoadedModel | None = None):
        self.model = model
        self.original = arch
        self.current = arch
        self.applied = arch
        self.reinitialised: frozenset[int] = frozenset()
        self._next_uid = max((layer.uid for layer in arch.layers), default=-1) + 1
        # Without a model there are no weights to keep: every layer is "new on Apply".
        self._applied_sigs: dict[int, str | None] = _signatures(arch) if model is not None else {}
        self.baseline = live_table(arch)
        self._table: tuple[Architecture, LiveTable] | None = None

    @classmethod
    def from_model(cls, model: LoadedModel) -> EditSession:
        """Raises :class:`NotEditableError` (with the reason) for read-only models."""
        return cls(editable_architecture(model), model)

    @classmethod
    def from_spec(cls, spec: Mapping[str, Any]) -> EditSession:
        """A session without weights (Apply initialises every layer)."""
        return cls(architecture_from_spec(spec))

    # -- state -----------------------------------------------------------------------------------------------
    def new_uid(self) -> int:
        uid = self._next_uid
        self._next_uid += 1
        return uid

    def goto(self, arch: Architecture) -> Architecture:
        self.current = arch
        for layer in arch.layers:
            self._next_uid = max(self._next_uid, layer.uid + 1)
        return arch

    def table(self, arch: Architecture | None = None) -> LiveTable:
        """The live table of ``arch`` (default: the current snapshot); the last one is cached."""
        arch = self.current if arch is None else arch
        if self._table is not None and self._table[0] is arch:
            return self._table[1]
        table = live_table(
            arch,
            baseline=self.baseline,
            applied=self._applied_sigs,
            reinitialised=self.reinitialised,
        )
        if arch is self.current:
            self._table = (arch, table)
        return table

    @property
    def editable_spec(self) -> dict[str, Any]:
        return self.current.spec()

    # -- edits -----------------------------------------------------------------------------------------------
    def set_param(self, index: int, key: str, value: Any) -> Architecture:
        return self.goto(self.current.with_param(index, key, value))

    def set_type(self, index: int, new_type: str) -> Architecture:
        return self.goto(self.current.with_type(index, new_type))

    def insert(self, index: int, kind: str | Mapping[str, Any]) -> Architecture:
        """Insert ``kind`` (an :data:`INSERTABLE` name or a layer object) at position ``index``."""
        if isinstance(kind, str):
            shape = self.input_shape_at(index)
            config: Mapping[str, Any] = new_layer(kind, shape)
        else:
            config = kind
        return self.goto(self.current.inserted(index, config, self.new_uid()))

    def delete(self, index: int) -> Architecture:
        return self.goto(self.current.without(index))

    def move(self, index: int, offset: int) -> Architecture:
        return self.goto(self.current.moved(index, offset))

    def input_shape_at(self, index: int) -> Shape | None:
        """The shape that reaches position ``index`` in the current snapshot (None past an error)."""
        if index == 0:
            return self.current.input_shape
        rows = self.table().rows
        if 0 < index <= len(rows):
            return rows[index - 1].output_shape
        return None

    def replace_spec(self, spec: Mapping[str, Any]) -> Architecture:
        """Open a spec as the new current snapshot (an edit): layers that match the current ones keep their uids.

        The spec must take the same input shape; for VGG/AlexNet it must end with the model's fixed layers
        (as a saved architecture does) or hold the features alone.
        """
        arch = architecture_from_spec(spec)
        current = self.current
        if arch.input_shape != current.input_shape:
            shape = text.dims(arch.input_shape)
            ours = text.dims(current.input_shape)
            raise SpecError(
                f"this architecture takes {shape} inputs but the model being edited takes {ours}; "
                "open it as a model instead (File → Open model)"
            )
        incoming = list(arch.layers)
        locked = [layer for layer in current.layers if layer.locked]
        if locked:
            tail_keys = [layer.key() for layer in locked]
            if [layer.key() for layer in incoming[-len(locked) :]] == tail_keys:
                incoming = incoming[: -len(locked)]
            elif any(layer.key() in tail_keys for layer in incoming[-len(locked) :]):
                names = ", ".join(layer.name or "" for layer in locked)
                raise SpecError(
                    "this architecture does not end with the fixed layers of the model being edited "
                    f"({names}); open one saved from this model, or one with its features alone"
                )
        editable = [layer for layer in current.layers if not layer.locked]
        matcher = difflib.SequenceMatcher(
            a=[layer.key() for layer in editable],
            b=[layer.key() for layer in incoming],
            autojunk=False,
        )
        uids: list[int | None] = [None] * len(incoming)
        for tag, a0, a1, b0, b1 in matcher.get_opcodes():
            if tag == "equal":
                for k in range(a1 - a0):
                    uids[b0 + k] = editable[a0 + k].uid
            elif tag == "replace":
                # Layers in the same place with the same type are the same layer, changed.
                for a, b in zip(range(a0, a1), range(b0, b1), strict=False):
                    if editable[a].type == incoming[b].type:
                        uids[b] = editable[a].uid
        layers = [
            EditLayer(uid if uid is not None else self.new_uid(), layer.config)
            for uid, layer in zip(uids, incoming, strict=True)
        ]
        meta = dict(current.meta)
        for key in ("name", "description", "labels", "preprocess"):
            if key in arch.meta and current.family == "spec":
                meta[key] = arch.meta[key]
        new = replace(current, layers=tuple(layers) + tuple(locked), meta=MappingProxyType(meta))
        return self.goto(new)

    # -- apply -----------------------------------------------------------------------------------------------
    def build(self, arch: Architecture | None = None, *, seed: int | None = None) -> ApplyResult:
        """Build ``arch`` (default: the current snapshot) without changing the session; see :meth:`commit`."""
        return apply_architecture(
            self.model,
            self.applied if self.model is not None else None,
            self.current if arch is None else arch,
            seed=seed,
        )

    def builder(self) -> Callable[[], ApplyResult]:
        """A call that builds the current snapshot later, e.g. on a worker thread, whatever is edited meanwhile."""
        model, applied, arch = self.model, self.applied, self.current
        return functools.partial(
            apply_architecture, model, applied if model is not None else None, arch
        )

    def commit(self, result: ApplyResult) -> None:
        """Make an applied result the model later Applies take weights from (deltas stay against the original)."""
        self.model = result.model
        self.applied = result.architecture
        self._applied_sigs = _signatures(result.architecture)
        self.reinitialised = frozenset(
            result.architecture.layers[i].uid for i in result.reinitialised
        )
        self._table = None

    def apply(self, *, seed: int | None = None) -> ApplyResult:
        """Build and commit in one step."""
        result = self.build(seed=seed)
        self.commit(result)
        return result
