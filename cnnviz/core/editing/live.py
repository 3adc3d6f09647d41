"""The live table of a snapshot: shapes, parameters, MACs and receptive fields without running anything.

:func:`live_table` computes, without running anything, what
:func:`cnnviz.core.analysis.summary.summarize` computes for the built model: shapes, parameters with
their formula, MACs and receptive fields. Shapes come from :func:`cnnviz.core.models.spec.validate_spec`
(torch's own shape rules on meta tensors, cached per layer and input shape); parameters, MACs and
formulas from the per-module functions of :mod:`cnnviz.core.models.layertypes`, which the summary uses
too, applied to meta modules (cached per configuration); receptive fields from
:func:`cnnviz.core.analysis.receptive.analyse` on the chain's layer graph. A fresh ``summarize`` of a
meta-built model gives the same numbers but spends most of its time in meta kernels (about 0.2 s for 30
layers); this path takes a few milliseconds and the tests hold both to the same figures. Rows after the
first invalid layer are *not checked*; the ones before it stay valid.
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import torch
import torch.fx as fx
from torch import nn

from cnnviz.core import text
from cnnviz.core.analysis.graph import GraphNode, LayerGraph
from cnnviz.core.analysis.receptive import analyse, to_receptive_field
from cnnviz.core.analysis.types import LayerRow, ReceptiveField, Summary
from cnnviz.core.editing.architecture import Architecture, Shape
from cnnviz.core.models.layertypes import (
    geometry,
    module_macs,
    module_params,
    settings_text,
)
from cnnviz.core.models.spec import SpecReport, validate_spec


@dataclass
class LiveRow:
    """One row of the live table.

    ``status`` compares with the original model: ``"same"``, ``"changed"`` (same layer, new settings) or
    ``"new"`` (inserted). ``weights`` says what Apply does with the layer's weights: ``"kept"``,
    ``"re-initialised"`` (fresh weights from the last Apply), ``"new on Apply"`` (will be re-initialised), or
    ``""`` for layers without parameters or buffers. ``dense_params`` is what a fully-connected layer from this
    layer's input to its output would need (convolutions only).
    """

    index: int
    uid: int
    name: str
    type: str
    locked: bool
    ok: bool
    checked: bool
    reason: str | None
    input_shape: Shape | None
    output_shape: Shape | None
    params: int | None = None
    macs: int | None = None
    formula: str | None = None
    rf: ReceptiveField | None = None
    settings: str = ""
    status: str = "same"
    weights: str = ""
    base_params: int | None = None
    base_macs: int | None = None
    base_output_shape: Shape | None = None
    dense_params: int | None = None
    signature: str | None = None
    config_key: str = ""
    layer: LayerRow | None = None

    @property
    def params_delta(self) -> int | None:
        if self.params is None:
            return None
        return self.params - (self.base_params or 0)

    def cells(self) -> dict[str, Any]:
        """Plain values for comparisons (tests) and JSON."""
        return {
            "name": self.name,
            "type": self.type,
            "ok": self.ok,
            "checked": self.checked,
            "reason": self.reason,
            "output_shape": list(self.output_shape) if self.output_shape else None,
            "params": self.params,
            "macs": self.macs,
            "formula": self.formula,
            "rf": self.rf.to_json() if self.rf is not None else None,
            "settings": self.settings,
            "status": self.status,
            "weights": self.weights,
            "params_delta": self.params_delta,
        }


@dataclass(frozen=True)
class DenseComparison:
    """Convolutions versus fully-connected layers with the same input and output sizes."""

    conv_layers: int
    conv_params: int
    dense_params: int

    @property
    def ratio(self) -> float | None:
        return self.dense_params / self.conv_params if self.conv_params else None

    def text(self) -> str:
        if not self.conv_layers:
            return "No convolutions yet: insert a Conv2d to compare with a fully-connected layer."
        what = (
            "the convolution has"
            if self.conv_layers == 1
            else f"the {self.conv_layers} convolutions have"
        )
        ratio = self.ratio
        times = f" ({text.ratio(ratio)} more)" if ratio is not None else ""
        return (
            f"Parameter sharing: {what} {self.conv_params:,} parameters; fully-connected layers with the same "
            f"input and output sizes would need {self.dense_params:,}{times}."
        )


@dataclass
class LiveTable:
    """The live table of a snapshot: one :class:`LiveRow` per layer, totals, deltas and the first error.

    Totals cover the valid layers (all of them when ``ok``). ``error`` is one line naming the layer and the
    reason; ``error_index`` is its row (None for a whole-model problem such as labels that no longer fit).
    ``summary`` is the per-layer table of the valid layers in the summary's own types.
    """

    rows: list[LiveRow]
    ok: bool
    error: str | None
    error_index: int | None
    input_shape: tuple[int, int, int]
    output_shape: Shape | None
    total_params: int
    total_macs: int
    base_params: int | None
    base_macs: int | None
    base_output_shape: Shape | None
    dense: DenseComparison
    removed: list[str]
    summary: Summary

    @property
    def params_delta(self) -> int | None:
        return None if self.base_params is None else self.total_params - self.base_params

    def totals_text(self) -> str:
        """One line with totals and their change against the original model."""
        c, h, w = self.input_shape
        out = text.dims(self.output_shape) if self.output_shape else "?"
        params = f"{self.total_params:,}"
        macs = f"{self.total_macs:,}"
        if self.ok and self.base_params is not None and self.base_macs is not None:
            params += f" ({delta_text(self.total_params, self.base_params)})"
            macs += f" ({delta_text(self.total_macs, self.base_macs)})"
        scope = "" if self.ok else " (valid layers only)"
        return f"Input {c}×{h}×{w} → output {out} · parameters {params} · MACs {macs}{scope}"

    def cells(self) -> list[dict[str, Any]]:
        return [row.cells() for row in self.rows]


def delta_text(new: int, old: int) -> str:
    """``+1,234 (+12%)``-style change; ``unchanged`` when equal."""
    diff = new - old
    if diff == 0:
        return "unchanged"
    sign = "+" if diff > 0 else "−"
    change = f"{sign}{abs(diff):,}"
    if not old:
        return change
    pct = abs(100.0 * diff / old)
    if pct >= 10:
        share = f"{pct:.0f}%"
    elif pct >= 1:
        share = f"{pct:.1f}%"
    elif pct >= 0.01:
        share = f"{pct:.2f}%"
    else:
        share = "<0.01%"
    return f"{change}, {sign}{share}"


@functools.lru_cache(maxsize=4096)
def _meta_module(layer_type: str, kwargs: tuple[tuple[str, Any], ...]) -> nn.Module:
    """A module on the meta device: its parameters have shapes but no memory (cached per configuration)."""
    with warnings.catch_warnings(), torch.device("meta"):
        warnings.simplefilter("ignore")
        return getattr(nn, layer_type)(**dict(kwargs))


def _module_of(check: Any) -> nn.Module:
    return _meta_module(str(check.type), tuple(check.module_kwargs.items()))


def _signature(module: nn.Module) -> str:
    """What torch builds, as text: equal signatures mean interchangeable weights and the same layer."""
    return f"{type(module).__name__}({module.extra_repr()})"


def _has_state(module: nn.Module) -> bool:
    return any(True for _ in module.parameters()) or any(True for _ in module.buffers())


class _ChainGraph(LayerGraph):
    """The layer graph of a chain of modules, built directly: what torch.fx traces for an ``nn.Sequential``.

    Tracing costs about as much per layer as the rest of the live table together; a chain has only one
    possible graph (input -> "0" -> "1" -> ...), so it is written down instead. The tests compare the result
    with the traced graph's receptive fields.
    """

    def _trace(self) -> None:
        graph = fx.Graph()
        x = graph.placeholder("x")
        self.nodes.append(GraphNode("input", "input", "Input", x))
        key_of: dict[fx.Node, str] = {x: "input"}
        previous = "input"
        for name, module in self.model._modules.items():
            assert module is not None
            x = graph.call_module(name, (x,))
            self.nodes.append(
                GraphNode(name, "module", type(module).__name__, x, module, name, [previous], [])
            )
            key_of[x] = name
            previous = name
        graph.output(x)
        self._fx_graph = graph
        self._key_of = key_of


def _numel(shape: Iterable[int]) -> int:
    n = 1
    for s in shape:
        n *= int(s)
    return n


def _dense_params(module: nn.Module, inp: Shape, out: Shape) -> int | None:
    if not isinstance(module, nn.Conv2d | nn.ConvTranspose2d):
        return None
    n_in, n_out = _numel(inp), _numel(out)
    return n_in * n_out + (n_out if module.bias is not None else 0)


def _message(arch: Architecture, report: SpecReport) -> tuple[str | None, int | None]:
    error = report.first_error
    if error is None:
        return None, None
    if error.index is None:
        return error.reason, None
    reason = _worded(arch, error.index, error.reason)
    return f"layer {arch.name_of(error.index)} ({error.type}): {reason}", error.index


def _worded(arch: Architecture, index: int, reason: str | None) -> str | None:
    if reason is None or not arch.layers[index].locked or reason.startswith("not checked"):
        return reason
    # The usual hint ("set in_features to ...") would ask for an edit the fixed part does not allow.
    return reason.split("; ")[0] + (
        f"; {arch.name_of(index)} belongs to the fixed part of the model, so change the editable "
        "layers until it fits again"
    )


def live_table(
    arch: Architecture,
    *,
    baseline: LiveTable | None = None,
    applied: Mapping[int, str | None] | None = None,
    reinitialised: Iterable[int] = (),
) -> LiveTable:
    """The table of ``arch`` without computing anything (see the module docstring).

    ``baseline`` (the original model's table) gives the deltas and each row's status; ``applied`` maps the
    uids of the model Apply takes weights from to their signatures, and ``reinitialised`` holds the uids that
    the last Apply gave fresh weights: together they fill the ``weights`` column.
    """
    spec = arch.spec()
    report = validate_spec(spec)
    error, error_index = _message(arch, report)
    base_rows = {row.uid: row for row in baseline.rows} if baseline is not None else {}
    fresh = set(reinitialised)

    rows: list[LiveRow] = []
    modules: list[nn.Module] = []
    for index, (layer, check) in enumerate(zip(arch.layers, report.layers, strict=True)):
        row = LiveRow(
            index=index,
            uid=layer.uid,
            name=arch.name_of(index),
            type=layer.type,
            locked=layer.locked,
            ok=check.ok,
            checked=check.checked,
            reason=_worded(arch, index, check.reason),
            input_shape=check.input_shape,
            output_shape=check.output_shape,
            settings=settings_text(layer.type, {**layer.config, **check.module_kwargs}),
            config_key=layer.key(),
        )
        if check.ok:
            module = _module_of(check)
            modules.append(module)
            row.signature = _signature(module)
        rows.append(row)

    # The valid prefix as a chain of meta modules: the summary's own per-module numbers, the receptive-field
    # analysis on its graph.
    valid = len(modules)
    chain = nn.Sequential(*modules)
    graph = _ChainGraph(chain)
    values: dict[str, Any] = {"input": torch.empty((1, *arch.input_shape), device="meta")}
    for i in range(valid):
        shape = rows[i].output_shape
        assert shape is not None
        values[str(i)] = torch.empty((1, *shape), device="meta")
    info = analyse(graph, values) if graph.traced else {}
    summary_rows: list[LayerRow] = []
    dense_layers = dense_conv = dense_total = 0
    for i in range(valid):
        row, module = rows[i], modules[i]
        inp = values["input"] if i == 0 else values[str(i - 1)]
        out = values[str(i)]
        layer_row = LayerRow(row.name, row.type, "module", 0, tuple(out.shape))
        layer_row.params, layer_row.trainable_params = module_params(module)
        layer_row.macs = module_macs(module, inp, out)
        for key, value in geometry(module).items():
            setattr(layer_row, key, value)
        layer_row.rf = to_receptive_field(info.get(str(i)))
        layer_row.inputs = [rows[i - 1].name if i else "input"]
        summary_rows.append(layer_row)
        row.layer = layer_row
        row.params, row.macs = layer_row.params, layer_row.macs
        row.formula, row.rf = layer_row.param_formula, layer_row.rf
        assert row.input_shape is not None and row.output_shape is not None
        row.dense_params = _dense_params(module, row.input_shape, row.output_shape)
        if row.dense_params is not None:
            dense_layers += 1
            dense_conv += row.params
            dense_total += row.dense_params

    for row in rows:
        base = base_rows.get(row.uid)
        if base is None:
            row.status = "new" if baseline is not None else "same"
        else:
            row.base_params, row.base_macs = base.params, base.macs
            row.base_output_shape = base.output_shape
            same = (
                base.signature == row.signature
                if row.signature is not None and base.signature is not None
                else base.config_key == row.config_key
            )
            row.status = "same" if same else "changed"
        if row.signature is not None and _has_state(modules[row.index]):
            if applied is None:
                row.weights = "kept"
            elif applied.get(row.uid) == row.signature:
                row.weights = "re-initialised" if row.uid in fresh else "kept"
            else:
                row.weights = "new on Apply"

    total_params = sum(r.params or 0 for r in rows)
    total_macs = sum(r.macs or 0 for r in rows)
    present = {row.uid for row in rows}
    removed = [row.name for row in baseline.rows if row.uid not in present] if baseline else []
    summary = Summary(
        model_name=str(arch.meta.get("name") or "edited model"),
        input_shape=arch.input_shape,
        rows=summary_rows,
        total_params=total_params,
        trainable_params=sum(r.trainable_params for r in summary_rows),
        total_macs=total_macs,
    )
    return LiveTable(
        rows=rows,
        ok=report.ok,
        error=error,
        error_index=error_index,
        input_shape=arch.input_shape,
        output_shape=report.output_shape,
        total_params=total_params,
        total_macs=total_macs,
        base_params=baseline.total_params if baseline is not None else None,
        base_macs=baseline.total_macs if baseline is not None else None,
        base_output_shape=baseline.output_shape if baseline is not None else None,
        dense=DenseComparison(dense_layers, dense_conv, dense_total),
        removed=removed,
        summary=summary,
    )


def dense_row_text(row: LiveRow) -> str | None:
    """The parameter-sharing lesson for one convolution row, or None for other layers."""
    if row.dense_params is None or row.params is None:
        return None
    assert row.input_shape is not None and row.output_shape is not None
    shape_in = text.dims(row.input_shape)
    shape_out = text.dims(row.output_shape)
    ratio = f" ({text.ratio(row.dense_params / row.params)} more)" if row.params else ""
    return (
        f"{row.name} maps {shape_in} to {shape_out} with {row.params:,} parameters; a fully-connected layer "
        f"between the same sizes would need {row.dense_params:,}{ratio}."
    )
