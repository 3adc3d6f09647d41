"""Editing the layers of any traceable model live: :class:`GraphEditSession`.

The session holds the loaded model, an immutable tuple of :class:`ModuleEdit` (undo and redo move between
such tuples), and for each tuple an edited copy of the model on the meta device (shapes, no memory; modules
that no edit touched are shared between snapshots). The table is computed over the traced graph node by node
(:class:`cnnviz.core.models.edits.walk.MetaWalk`, cached per module configuration and input shapes), so a
hyperparameter edit re-runs only the nodes it affects and never re-traces; a structural edit (an insertion, a
deletion, a container replaced) traces the edited copy once. Where the graph breaks, the table carries the
explained error; every row of the original stays, in its order, and those that depend on the failed node (the
containers around it included) say *not computed: depends on ...*, while parallel branches are computed.

Channel propagation (``propagate``, on by default; :mod:`cnnviz.core.editing.graph_propagate`): when
``out_channels``/``out_features`` of a module changes, the consumers that must follow are set too (recorded as
edits with ``follows``): the next batch norm's ``num_features``, the next convolution's ``in_channels`` (a
depthwise one follows entirely), a squeeze-and-excitation gate's last convolution, a Linear's ``in_features``
after a flatten. At a residual addition or a concatenation it stops; if the other side does not fit, the
explained error says what else must change.
"""

from __future__ import annotations

import copy
import functools
import os
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch
from torch import nn

from cnnviz.core.analysis.graph import ContainerInfo, GraphNode, LayerGraph
from cnnviz.core.editing.architecture import NotEditableError
from cnnviz.core.editing.graph_apply import GraphApplyResult, build_edited
from cnnviz.core.editing.graph_propagate import followers
from cnnviz.core.editing.graph_table import GraphRow, GraphTable, RowCache, summary_rows
from cnnviz.core.errors import CnnvizError, SpecError
from cnnviz.core.models import LoadedModel
from cnnviz.core.models.edits import (
    EditOutcome,
    GraphEditError,
    MetaWalk,
    ModuleEdit,
    explain,
    meta_copy,
    module_config,
    parse_patch,
    read_patch,
    rebuildable,
    why_not_editable,
)
from cnnviz.core.models.edits.explain import first_breaking
from cnnviz.core.models.edits.modules import full_config, get_module
from cnnviz.core.models.edits.walk import WalkFailure, module_signature
from cnnviz.core.models.layertypes import ACTIVATION_TYPES, DROPOUT_TYPES, INFERRED

_POOL_TYPES = ("MaxPool2d", "AvgPool2d")
_BATCH_NORMS = ("BatchNorm2d", "BatchNorm1d")


@dataclass(frozen=True)
class EditableModule:
    """One module of the tree, in ``named_modules()`` order (``""`` is the model itself)."""

    name: str
    type: str
    depth: int
    editable: bool
    why_not: str | None
    in_sequential: bool
    is_container: bool


@dataclass(frozen=True)
class EditField:
    """One editable setting: ``kind`` is ``"int"``, ``"pair"`` (height, width), ``"bool"`` or ``"choice"``."""

    key: str
    kind: str
    value: Any
    choices: tuple[Any, ...] | None = None
    minimum: int | None = None
    follows: bool = False


@dataclass
class _State:
    edits: tuple[ModuleEdit, ...]
    outcome: EditOutcome
    graph: LayerGraph
    walk: MetaWalk
    table: GraphTable | None = None
    values: dict[str, Any] | None = None
    structural: bool = False


class _EditedGraph(LayerGraph):
    """The traced graph of the base structure with the edited copy's modules: no new trace.

    Only the modules that edits rebuilt, and the containers above them (copies along the path), differ from the
    base graph's; every other node is the base graph's own.
    """

    def __init__(self, structure: LayerGraph, model: nn.Module, rebuilt: set[str]):
        self._structure = structure
        self._rebuilt = rebuilt
        super().__init__(model)

    def _trace(self) -> None:
        model = self.model
        base = self._structure
        changed = set(self._rebuilt)
        above = {""}
        for name in changed:
            parts = name.split(".")
            above.update(".".join(parts[:i]) for i in range(1, len(parts)))
        self.nodes = [
            _with_module(n, model.get_submodule(n.module_name))
            if n.module_name is not None and n.module_name in changed
            else n
            for n in base.nodes
        ]
        self.containers = {
            k: _with_container(c, model.get_submodule(c.module_name))
            if c.module_name in above or c.module_name in changed
            else c
            for k, c in base.containers.items()
        }
        self._fx_graph = base._fx_graph
        self._key_of = base._key_of


def _with_module(node: GraphNode, module: nn.Module) -> GraphNode:
    return replace(node, module=module, type=type(module).__name__)


def _with_container(info: ContainerInfo, module: nn.Module) -> ContainerInfo:
    return replace(info, module=module, type=type(module).__name__)


def _is_structural(edit: ModuleEdit, model: nn.Module) -> bool:
    if edit.op in ("insert", "delete"):
        return True
    target = get_module(model, edit.module)
    return any(True for _ in target.children())


def _pair(value: Any) -> tuple[int, int]:
    if isinstance(value, list | tuple):
        return (int(value[0]), int(value[-1]))
    return (int(value), int(value))


def _normal(value: Any) -> Any:
    if isinstance(value, list):
        return tuple(value)
    return value


class GraphEditSession:
    """Editing one traceable model: edits, the live table with deltas, propagation, undo/redo and Apply."""

    def __init__(self, model: LoadedModel):
        self.model = model
        self.propagate = True
        if model.source in ("torchscript", "export"):
            kind = (
                "a TorchScript archive"
                if model.source == "torchscript"
                else "a torch.export program"
            )
            raise NotEditableError(
                f"{model.name} is read-only: it is {kind}, whose layers cannot be rebuilt"
            )
        base = meta_copy(model.module)
        for m in base.modules():
            m.training = False
        self._base_meta = base
        graph = LayerGraph(base)
        if not graph.traced:
            raise NotEditableError(f"{model.name} is read-only: {graph.note}")
        self._base_graph = graph
        self._states: OrderedDict[tuple[ModuleEdit, ...], _State] = OrderedDict()
        self._base_state = _State((), EditOutcome(base), graph, MetaWalk(graph))
        self._states[()] = self._base_state
        self._history: list[tuple[ModuleEdit, ...]] = [()]
        self._pos = 0
        self._base_modules = dict(model.module.named_modules())
        self._rows_cache = RowCache(base)
        self._applied: GraphApplyResult | None = None
        self.original_table = self._table(self._base_state)
        self._base_rows = {r.name: r for r in self.original_table.rows}

    @classmethod
    def from_model(cls, model: LoadedModel) -> GraphEditSession:
        """Raises :class:`NotEditableError` with the reason when the model cannot be traced."""
        return cls(model)

    @classmethod
    def from_patch(
        cls,
        patch: str | os.PathLike[str] | Mapping[str, Any],
        weights: Any = "default",
        trust: bool = False,
    ) -> GraphEditSession:
        """A session on a patch's base model (``weights``/``trust`` as load_model takes them) with the patch's
        edits as the current ones (one undo step away from the original)."""
        from cnnviz.core.models import load_model

        parsed = parse_patch(patch) if isinstance(patch, Mapping) else read_patch(patch)
        session = cls(load_model(parsed.base_spec(), weights, trust))
        session.goto(parsed.edits)
        return session

    @staticmethod
    def patch_edits(patch: str | os.PathLike[str] | Mapping[str, Any]) -> tuple[ModuleEdit, ...]:
        """The edits of a patch file or object (to :meth:`goto` them in a session of its base)."""
        parsed = parse_patch(patch) if isinstance(patch, Mapping) else read_patch(patch)
        return parsed.edits

    # -- reading -----------------------------------------------------------------------------------------------
    @property
    def edits(self) -> tuple[ModuleEdit, ...]:
        return self._history[self._pos]

    @property
    def original_rows(self) -> list[GraphRow]:
        return self.original_table.rows

    @property
    def current_model(self) -> nn.Module:
        """The edited copy on the meta device (shapes only)."""
        return self._state(self.edits).outcome.module

    def table(self) -> GraphTable:
        """The table of the current edits, with deltas against the original."""
        state = self._state(self.edits)
        if state.table is None:
            state.table = self._table(state)
        return state.table

    def modules(self) -> list[EditableModule]:
        """Every module of the edited model in tree order (the Layers dock's tree)."""
        model = self.current_model
        out = []
        for name, module in model.named_modules():
            parent = model if "." not in name else model.get_submodule(name.rpartition(".")[0])
            why = why_not_editable(module)
            out.append(
                EditableModule(
                    name,
                    type(module).__name__,
                    0 if not name else name.count(".") + 1,
                    why is None,
                    why,
                    bool(name) and isinstance(parent, nn.Sequential),
                    any(True for _ in module.children()),
                )
            )
        return out

    def fields(self, name: str) -> list[EditField]:
        """The editable settings of module ``name`` (none for containers and types cnnviz cannot rebuild)."""
        module = get_module(self.current_model, name)
        followed = {k for e in self.edits if e.follows and e.module == name for k in e.settings}
        original = self._base_modules.get(name)
        if isinstance(module, nn.Identity) and isinstance(
            original, nn.modules.batchnorm._BatchNorm
        ):
            return [EditField("enabled", "bool", False)]
        if not rebuildable(module):
            return []
        config = module_config(module)
        t = config["type"]
        out: list[EditField] = []

        def add(
            key: str, kind: str, minimum: int | None = None, choices: tuple[Any, ...] | None = None
        ) -> None:
            value = getattr(module, key) if key != "bias" else module.bias is not None
            if kind == "pair":
                if isinstance(value, str):
                    return
                value = _pair(value)
            out.append(EditField(key, kind, value, choices, minimum, key in followed))

        if t in ("Conv2d", "ConvTranspose2d"):
            add("in_channels", "int", 1)
            add("out_channels", "int", 1)
            for key, minimum in (
                ("kernel_size", 1),
                ("stride", 1),
                ("padding", 0),
                ("dilation", 1),
            ):
                add(key, "pair", minimum)
            add("groups", "int", 1)
            add("bias", "bool")
        elif t in _POOL_TYPES:
            out.append(EditField("type", "choice", t, _POOL_TYPES))
            for key, minimum in (("kernel_size", 1), ("stride", 1), ("padding", 0)):
                add(key, "pair", minimum)
            add("ceil_mode", "bool")
        elif t in ("AdaptiveAvgPool2d", "AdaptiveMaxPool2d"):
            out.append(EditField("type", "choice", t, ("AdaptiveAvgPool2d", "AdaptiveMaxPool2d")))
            if not isinstance(module.output_size, tuple) or None not in module.output_size:
                add("output_size", "pair", 1)
        elif t == "Linear":
            add("in_features", "int", 1)
            add("out_features", "int", 1)
            add("bias", "bool")
        elif t in ACTIVATION_TYPES:
            out.append(EditField("type", "choice", t, ACTIVATION_TYPES))
        elif t in DROPOUT_TYPES:
            out.append(EditField("type", "choice", t, DROPOUT_TYPES))
        elif t in _BATCH_NORMS:
            out.append(EditField("enabled", "bool", True))
            add("num_features", "int", 1)
        return out

    # -- state ------------------------------------------------------------------------------------------------
    def _state(self, edits: tuple[ModuleEdit, ...]) -> _State:
        state = self._states.get(edits)
        if state is not None:
            self._states.move_to_end(edits)
            return state
        # extend the longest known prefix: only the new edits are applied
        start = self._base_state
        for n in range(len(edits) - 1, 0, -1):
            known = self._states.get(edits[:n])
            if known is not None:
                start = known
                break
        outcome = copy.copy(start.outcome)
        outcome.rebuilt = set(start.outcome.rebuilt)
        outcome.fresh = set(start.outcome.fresh)
        outcome.renamers = list(start.outcome.renamers)
        structural = start.structural
        model = outcome.module
        for i, edit in enumerate(edits[len(start.edits) :], start=len(start.edits)):
            structural = structural or _is_structural(edit, model)
            try:
                from cnnviz.core.models.edits.modules import apply_edit

                model = apply_edit(model, edit, outcome, device=torch.device("meta"))
            except SpecError as exc:
                raise SpecError(f"edit {i + 1} ({edit.describe()}): {exc}") from None
        outcome.module = model
        if structural:
            graph = LayerGraph(model)
            if not graph.traced:
                raise CnnvizError(f"the edited model can no longer be traced: {graph.note}")
            walk = MetaWalk(graph)
        else:
            graph = _EditedGraph(self._base_graph, model, outcome.rebuilt)
            walk = self._base_state.walk
        state = _State(edits, outcome, graph, walk, structural=structural)
        self._states[edits] = state
        while len(self._states) > 64:
            oldest = next(iter(self._states))
            if oldest == ():
                self._states.move_to_end(oldest)
                continue
            self._states.popitem(last=False)
        return state

    def _values(
        self, state: _State
    ) -> tuple[dict[str, Any], GraphEditError | None, dict[str, str]]:
        values, failure = state.walk.run(tuple(self.model.input_shape), graph=state.graph)
        error = None
        if failure is not None:
            cause = self._first_breaking(state, failure)
            error = explain(failure, state.graph, state.edits, self._original_config, cause)
        state.values = values
        return values, error, failure.blocked if failure is not None else {}

    def _first_breaking(self, state: _State, failure: WalkFailure) -> ModuleEdit | None:
        """The user edit after which the graph first breaks as it does now (earlier snapshots are walked; their
        nodes are mostly cached)."""

        def walk(prefix: tuple[ModuleEdit, ...]) -> WalkFailure | None:
            earlier = self._state(prefix)
            return earlier.walk.run(tuple(self.model.input_shape), graph=earlier.graph)[1]

        return first_breaking(state.edits, failure, walk)

    def _original_config(self, name: str) -> dict[str, Any] | None:
        module = self._base_modules.get(name)
        if module is None or not rebuildable(module):
            return None
        return full_config(module)

    def _table(self, state: _State) -> GraphTable:
        values, error, blocked = self._values(state)
        summary, order = summary_rows(state.graph, values, blocked, cache=self._rows_cache)
        layer_of = {r.name: r for r in summary.rows}
        base_rows = getattr(self, "_base_rows", None)
        outcome = state.outcome
        rows: list[GraphRow] = []
        for key, is_container, depth, first_input, cause in order:
            computed = cause is None
            original = outcome.original_name(key)
            if (
                not computed
                and base_rows is not None
                and original is not None
                and original not in base_rows
            ):
                # an operation the original has no row for (a getattr's size, not a tensor) would only show up
                # here, uncomputed; a row the edits inserted (no original name) stays, marked new
                continue
            layer = layer_of.get(key)
            module: nn.Module | None
            if is_container:
                info = state.graph.containers[key]
                type_name, kind, module = info.type, "container", info.module
            else:
                gnode = state.graph.node(key)
                type_name, kind, module = gnode.type, gnode.kind, gnode.module
            row = GraphRow(key, type_name, kind, depth, layer if computed else None)
            if first_input is not None and first_input not in blocked:
                inp = values.get(first_input)
                if isinstance(inp, torch.Tensor):
                    row.input_shape = tuple(int(s) for s in inp.shape)
            row.settings = (
                self._rows_cache.settings_text(module)
                if kind in ("module", "container") and module is not None
                else ""
            )
            if not computed:
                row.computed = False
                row.reason = (
                    error.message
                    if error is not None and key == cause == error.node
                    else f"not computed: depends on {cause}"
                    if cause != key
                    else f"not computed: {key} fails as well"
                )
            row.original_name = original
            if base_rows is not None:
                base = base_rows.get(original) if original is not None else None
                if base is None:
                    row.status = "new"
                else:
                    row.base_output_shape = base.output_shape
                    row.base_params, row.base_macs = base.params, base.macs
                    row.status = self._status(key, kind, module, original, outcome)
            rows.append(row)
        present = {r.original_name for r in rows}
        removed = (
            [r.name for r in self.original_table.rows if r.name not in present] if base_rows else []
        )
        base_params = self.original_table.total_params if base_rows else summary.total_params
        base_macs = self.original_table.total_macs if base_rows else summary.total_macs
        return GraphTable(
            rows, error, tuple(self.model.input_shape), summary.total_params, summary.total_macs,
            base_params, base_macs, summary, removed,
        )  # fmt: skip

    def _status(
        self,
        key: str,
        kind: str,
        module: nn.Module | None,
        original: str | None,
        outcome: EditOutcome,
    ) -> str:
        if kind == "container":
            return (
                "changed"
                if any(n == key or n.startswith(key + ".") for n in outcome.rebuilt)
                else "same"
            )
        if module is None or original is None:
            return "same"
        base = self._base_state.graph
        try:
            node = base.node(original)
        except KeyError:
            return "new"
        if node.module is None or module_signature(node.module) == module_signature(module):
            return "same"
        return "changed" if type(node.module) is type(module) or rebuildable(module) else "same"

    # -- history -----------------------------------------------------------------------------------------------
    @property
    def can_undo(self) -> bool:
        return self._pos > 0

    @property
    def can_redo(self) -> bool:
        return self._pos < len(self._history) - 1

    def undo(self) -> GraphTable:
        if self.can_undo:
            self._pos -= 1
        return self.table()

    def redo(self) -> GraphTable:
        if self.can_redo:
            self._pos += 1
        return self.table()

    def goto(self, edits: tuple[ModuleEdit, ...] | list[ModuleEdit]) -> GraphTable:
        """Make ``edits`` the current ones (an edit of its own for undo); SpecError when one cannot be made."""
        edits = tuple(edits)
        self._state(edits)  # raises before anything changes
        if edits != self.edits:
            del self._history[self._pos + 1 :]
            self._history.append(edits)
            self._pos += 1
        return self.table()

    def reset(self) -> GraphTable:
        """Back to the original model (undoable)."""
        return self.goto(())

    # -- edits -------------------------------------------------------------------------------------------------
    def set(self, name: str, key: str, value: Any) -> GraphTable:
        """Set constructor argument ``key`` of module ``name``; ``type`` and ``enabled`` replace the module."""
        module = get_module(self.current_model, name)
        if key == "type":
            return self.replace(name, str(value))
        if key == "enabled":
            return self._enable(name, module, bool(value))
        value = _normal(value)
        edits = list(self.edits)
        # a repeated change of the same module is one edit: the latest group is rewritten
        settings: dict[str, Any] = {key: value}
        last_user = len(edits) - 1
        while last_user >= 0 and edits[last_user].follows:
            last_user -= 1
        if last_user >= 0 and edits[last_user].op == "set" and edits[last_user].module == name:
            settings = {**edits[last_user].settings, key: value}
            del edits[last_user:]
        before = get_module(self._state(tuple(edits)).outcome.module, name)
        if rebuildable(before):
            config = module_config(before)
            settings = {k: v for k, v in settings.items() if not _same(config.get(k), v)}
        if not settings:
            return self.goto(tuple(edits))
        edit = ModuleEdit("set", name, settings)
        followers = self._followers(tuple(edits), edit) if self.propagate else []
        return self.goto((*edits, edit, *followers))

    def _enable(self, name: str, module: nn.Module, on: bool) -> GraphTable:
        if not on:
            if not isinstance(module, nn.modules.batchnorm._BatchNorm):
                raise SpecError(f"{name} is not a batch norm to switch off")
            return self.replace(name, "Identity")
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            return self.table()
        original = self._original_config(self.table().row(name).original_name or name) or {
            "type": "BatchNorm2d"
        }
        row = self.table().row(name)
        settings = {k: v for k, v in original.items() if k != "type"}
        if row.input_shape is not None and len(row.input_shape) >= 2:
            settings["num_features"] = int(row.input_shape[1])
        return self.replace(name, str(original["type"]), **settings)

    def replace(self, name: str, type_name: str, **settings: Any) -> GraphTable:
        """Replace module ``name`` by a new ``type_name`` layer (arguments both types take are kept)."""
        get_module(self.current_model, name)
        edit = ModuleEdit("replace", name, {k: _normal(v) for k, v in settings.items()}, type_name)
        return self.goto((*self.edits, edit))

    def insert(self, container: str, index: int, type_name: str, **settings: Any) -> GraphTable:
        """Insert a new ``type_name`` layer at position ``index`` of the Sequential ``container``."""
        if type_name in INFERRED and INFERRED[type_name] not in settings:
            shape = self._input_at(container, index)
            if shape is not None and len(shape) >= 2:
                settings[INFERRED[type_name]] = int(
                    shape[1] if type_name != "Linear" else shape[-1]
                )
        if type_name in ("Conv2d", "ConvTranspose2d"):
            settings.setdefault("out_channels", settings.get("in_channels", 16))
            settings.setdefault("kernel_size", 3)
            settings.setdefault("padding", 1)
        if type_name == "Linear":
            settings.setdefault("out_features", settings.get("in_features", 10))
        edit = ModuleEdit(
            "insert", container, {k: _normal(v) for k, v in settings.items()}, type_name, index
        )
        return self.goto((*self.edits, edit))

    def delete(self, name: str) -> GraphTable:
        """Delete module ``name`` from the Sequential holding it."""
        get_module(self.current_model, name)
        return self.goto((*self.edits, ModuleEdit("delete", name)))

    def _input_at(self, container: str, index: int) -> tuple[int, ...] | None:
        """The shape that reaches position ``index`` of ``container`` in the current table."""
        seq = get_module(self.current_model, container)
        names = list(seq._modules)
        rows = {r.name: r for r in self.table().rows}
        prefix = f"{container}." if container else ""
        if index > 0 and index - 1 < len(names):
            row = rows.get(prefix + names[index - 1])
            return (
                tuple(row.output_shape)
                if row is not None and isinstance(row.output_shape, tuple)
                else None
            )
        if index < len(names):
            row = rows.get(prefix + names[index])
            return row.input_shape if row is not None else None
        return None

    # -- propagation -------------------------------------------------------------------------------------------
    def _followers(self, before: tuple[ModuleEdit, ...], edit: ModuleEdit) -> list[ModuleEdit]:
        key = (
            "out_channels"
            if "out_channels" in edit.settings
            else "out_features"
            if "out_features" in edit.settings
            else None
        )
        if key is None:
            return []
        state = self._state(before)
        if state.values is None:
            self._values(state)
        return followers(state.graph, state.values or {}, edit.module, int(edit.settings[key]))

    # -- apply and patches -------------------------------------------------------------------------------------
    def apply(self) -> GraphApplyResult:
        """Build the edited model with real weights; refused while it is broken.

        Every module whose parameter shapes are those it had at the last Apply keeps the weights of that Apply
        (before the first, those of the loaded model); the others get fresh ones (``reinitialised``).
        """
        table = self.table()
        if table.error is not None:
            raise SpecError(f"the edited model cannot be built: {table.error.message}")
        result = self.builder()()
        self.commit(result)
        return result

    def builder(self) -> Callable[[], GraphApplyResult]:
        """A call that builds the current edits later (on a worker thread), whatever is edited meanwhile; hand
        its result to :meth:`commit` to make it the model the next Apply takes weights from."""
        return functools.partial(build_edited, self.model, self.edits, self._applied)

    def commit(self, result: GraphApplyResult) -> None:
        """Make an applied result the one later Applies keep weights from."""
        self._applied = result

    def to_patch(self) -> dict[str, Any]:
        """The current edits as a patch object (``base`` is the model's name, or its file).

        A model that is itself an edited model (a patch opened, an Apply) writes its base and its own edits
        first, so the patch opens as what is shown. A model cnnviz could not open again by a name or a file (an
        ``nn.Module`` given in Python) cannot be saved as a patch: SpecError says so.
        """
        return self._patch(self._patch_base(None))

    def _patch(self, base: str) -> dict[str, Any]:
        meta = self.model.metadata
        prior = (
            list(meta.get("edited", {}).get("edits", [])) if self.model.source == "edited" else []
        )
        return {"base": base, "edits": prior + [e.to_json() for e in self.edits]}

    def _patch_base(self, spec_file: Path | None) -> str:
        """The base a patch names; ``spec_file``: where a model built from a spec alone may write it."""
        meta = self.model.metadata
        candidates = [meta.get("base"), meta.get("path"), self.model.name]
        for base in candidates:
            if isinstance(base, str) and base and _openable(base):
                return base
        if self.model.spec is not None and self.model.source != "edited":
            if spec_file is None:
                raise SpecError(
                    f"{self.model.name} was built from a spec that is in no file: save the patch to a file "
                    "(its spec is written beside it) rather than asking for the patch object"
                )
            import json

            from cnnviz.core.fileio import atomic_write_bytes

            atomic_write_bytes(spec_file, (json.dumps(self.model.spec, indent=2) + "\n").encode())
            return spec_file.name  # read from the patch's folder
        if self.model.source == "module" or (
            self.model.source == "edited" and not meta.get("base")
        ):
            raise SpecError(
                f"{self.model.name} cannot be saved as a patch: a patch needs a base that cnnviz can open "
                "(a model name or file), and this model was given as a Python object; save it to a file "
                "(torch.save or TorchScript) and open that file to edit it"
            )
        raise SpecError(
            f"{self.model.name} cannot be saved as a patch: a patch needs a base that cnnviz can open "
            f"(a model name or file), and {meta.get('path') or self.model.name!r} is neither any more; "
            "open the model from its file again"
        )

    def save_patch(self, path: str | os.PathLike[str]) -> Path:
        """Write :meth:`to_patch` to ``path`` atomically; a model built from a spec in no file gets that spec
        written beside it (``<stem>-base.json``, the patch's base)."""
        import json

        from cnnviz.core.fileio import atomic_write_bytes

        target = Path(path)
        patch = self._patch(self._patch_base(target.with_name(f"{target.stem}-base.json")))
        data = (json.dumps(patch, indent=2) + "\n").encode()
        return atomic_write_bytes(target, data)


def _openable(base: str) -> bool:
    """Whether load_model can open ``base`` again: a model file that exists, or a model name it knows."""
    from cnnviz.core.models.load import DEFAULT_MODEL
    from cnnviz.core.models.timm import is_timm_name
    from cnnviz.core.models.torchvision import torchvision_model_names

    if Path(base).expanduser().is_file():
        return True
    return is_timm_name(base) or base == DEFAULT_MODEL or base in torchvision_model_names()


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, list | tuple) or isinstance(b, list | tuple):
        return (
            _pair(a) == _pair(b)
            if a is not None and b is not None and not isinstance(a, str)
            else a == b
        )
    return bool(a == b)
