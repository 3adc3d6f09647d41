"""Checking a spec layer by layer: static checks, the shape rules, a meta run, and the memory budget.

:func:`validate_spec` never raises for a bad spec; results are cached per (layer, input shape), so an
editor that re-validates on every keystroke only pays for layers whose input changed.
"""

from __future__ import annotations

import contextlib
import functools
import warnings
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import torch

from cnnviz.core import text
from cnnviz.core.errors import one_line
from cnnviz.core.jsonio import structure_problem
from cnnviz.core.models.layertypes import SHAPE_KEEPING as _SHAPE_KEEPING
from cnnviz.core.models.layertypes import SUPPORTED_TYPES
from cnnviz.core.models.spec.rules import RULES
from cnnviz.core.models.spec.schema import (
    _TOP_LEVEL_KEYS,
    LayerCheck,
    Shape,
    SpecReport,
    _closest_first,
    _describe,
    _freeze,
    _matches,
    _show,
    _type_info,
    _unknown_type_reason,
)

_NOT_CHECKED = "not checked: an earlier layer is invalid"


@dataclass(frozen=True)
class _Outcome:
    reason: str | None
    output_shape: Shape | None
    kwargs: tuple[tuple[str, Any], ...]
    params: int | None


def _static_check(layer: Any) -> tuple[str | None, str | None, dict[str, Any]]:
    """Checks that need no shape: (type, reason, frozen kwargs)."""
    if not isinstance(layer, dict):
        return (
            None,
            f'a layer must be an object like {{"type": "ReLU"}}, not {_show(layer)}',
            {},
        )
    layer_type = layer.get("type")
    if layer_type is None:
        return None, 'the layer has no "type"; add one, e.g. "type": "Conv2d"', {}
    if not isinstance(layer_type, str):
        return (
            None,
            f'"type" must be a layer type name such as "Conv2d", not {_show(layer_type)}',
            {},
        )
    if layer_type not in SUPPORTED_TYPES:
        return layer_type, _unknown_type_reason(layer_type), {}
    info = _type_info(layer_type)
    kwargs: dict[str, Any] = {}
    for key, raw in layer.items():
        if key == "type":
            continue
        param = info.params.get(key)
        if param is None:
            close, ordered = _closest_first(str(key), list(info.params))
            hint = f'; did you mean "{close[0]}"?' if close else ";"
            accepted = ", ".join(ordered) if ordered else "none"
            return (
                layer_type,
                f"unknown argument {_show(key)} for {layer_type}{hint} accepted arguments: {accepted}",
                {},
            )
        value = _freeze(raw)
        if not _matches(value, param.annotation):
            return layer_type, f"{key} must be {_describe(param.annotation)}, not {_show(raw)}", {}
        kwargs[key] = value
    missing = [name for name in info.required if name not in kwargs]
    if missing:
        needs = ", ".join(info.required)
        return (
            layer_type,
            f'missing required argument "{missing[0]}"; {layer_type} needs {needs}',
            {},
        )
    return layer_type, None, kwargs


@functools.lru_cache(maxsize=8192)
def _shape_check(layer_type: str, kwargs: tuple[tuple[str, Any], ...], shape: Shape) -> _Outcome:
    """Shape-dependent checks and the meta run; pure, hence cached."""
    kw = dict(kwargs)
    rule = RULES.get(layer_type)
    reason = rule(kw, shape) if rule else None
    info = _type_info(layer_type)
    frozen = tuple((name, kw[name]) for name in info.params if name in kw)  # constructor order
    if reason:
        return _Outcome(reason, None, frozen, None)
    # Called inside _quiet(): warnings silenced, no autograd.
    try:
        extra = {"device": "meta"} if info.takes_device else {}
        module = info.cls(**kw, **extra)
        params = sum(p.numel() for p in module.parameters())
        if layer_type in _SHAPE_KEEPING:
            out: Shape = shape
        elif layer_type == "Linear":
            # Its rule has checked the flat input; the first meta matmul costs about a second.
            out = (kw["out_features"],)
        else:
            module.eval()
            result = module(torch.empty((1, *shape), device="meta"))
            if not isinstance(result, torch.Tensor):
                return _Outcome("the layer returns more than one tensor", None, frozen, None)
            if result.dim() == 0 or result.shape[0] != 1:
                return _Outcome(
                    "the layer changes the batch dimension; a layer must keep it first",
                    None,
                    frozen,
                    None,
                )
            out = tuple(result.shape[1:])
    except Exception as exc:  # torch's own refusal, for the cases not worded above
        reason = one_line(exc)
        return _Outcome(reason, None, frozen, None)
    if len(out) == 0 or min(out) < 1:
        return _Outcome(
            f"its output would be empty ({text.dims(out) or 'a scalar'}) for its "
            f"{text.dims(shape)} input",
            None,
            frozen,
            None,
        )
    return _Outcome(None, out, frozen, params)


def _spec_problem(reason: str) -> LayerCheck:
    return LayerCheck(index=None, type=None, ok=False, reason=reason)


def _check_input_shape(value: Any) -> str | None:
    if value is None:
        return 'the spec has no "input_shape"; add "input_shape": [C, H, W], e.g. [1, 28, 28]'
    if (
        not isinstance(value, list | tuple)
        or len(value) != 3
        or not all(isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in value)
    ):
        return f'"input_shape" must be [C, H, W], three positive integers such as [1, 28, 28], not {_show(value)}'
    return None


def validate_spec(spec: Any) -> SpecReport:
    """Check a spec layer by layer; never raises for a bad spec.

    Every layer up to and including the first invalid one gets a :class:`LayerCheck` with its
    shapes or its reason; later layers are marked not checked. Whole-spec problems (not an object,
    bad ``input_shape``, ``layers`` not a list, unknown keys, bad ``labels``) have ``index`` None.
    """
    too_deep = structure_problem(dict(spec) if isinstance(spec, Mapping) else spec)
    if too_deep:
        reason = "the spec " + too_deep.removeprefix("it ")
        return SpecReport(ok=False, layers=[], first_error=_spec_problem(reason))
    if not isinstance(spec, Mapping):
        reason = f'a spec must be a JSON object with "input_shape" and "layers", not {_show(spec)}'
        return SpecReport(ok=False, layers=[], first_error=_spec_problem(reason))
    problems: list[str] = []
    unknown = [k for k in spec if k not in _TOP_LEVEL_KEYS]
    if unknown:
        close, _ = _closest_first(str(unknown[0]), _TOP_LEVEL_KEYS)
        hint = f' (did you mean "{close[0]}"?)' if close else ""
        problems.append(
            f"unknown spec key {_show(unknown[0])}{hint}; a spec has only {', '.join(_TOP_LEVEL_KEYS)}"
        )
    shape_reason = _check_input_shape(spec.get("input_shape"))
    if shape_reason:
        problems.append(shape_reason)
    layers = spec.get("layers")
    if layers is None:
        problems.append('the spec has no "layers"; add "layers": [...], a list of layer objects')
    elif not isinstance(layers, list | tuple):
        problems.append(f'"layers" must be a list of layer objects, not {_show(layers)}')
    name = spec.get("name")
    if name is not None and not isinstance(name, str):
        problems.append(f'"name" must be a string, not {_show(name)}')
    description = spec.get("description")
    if description is not None and not isinstance(description, str):
        problems.append(f'"description" must be a string, not {_show(description)}')
    labels = spec.get("labels")
    if labels is not None and (
        not isinstance(labels, list | tuple) or not all(isinstance(v, str) for v in labels)
    ):
        problems.append(
            f'"labels" must be a list of strings such as ["cat", "dog"], not {_show(labels)}'
        )
        labels = None
    preprocess = spec.get("preprocess")
    if preprocess is not None and not isinstance(preprocess, dict):
        problems.append(f'"preprocess" must be an object, not {_show(preprocess)}')

    layer_list = list(layers) if isinstance(layers, list | tuple) else []
    input_shape = None if shape_reason else tuple(spec["input_shape"])
    label_list = list(labels) if labels is not None else None
    name_text = name if isinstance(name, str) else None
    if input_shape is None:
        checks = [
            _unchecked(i, layer, "not checked: the spec's input_shape is invalid")
            for i, layer in enumerate(layer_list)
        ]
        return SpecReport(
            ok=False,
            layers=checks,
            first_error=_spec_problem(problems[0]),
            labels=label_list,
            name=name_text,
        )

    checks, shape = _check_layers(layer_list, input_shape)
    layer_error = next((c for c in checks if not c.ok), None)
    if layer_error is None and label_list is not None and shape is not None:
        if len(shape) != 1:
            problems.append(
                f"the spec has {len(label_list)} labels but the last layer gives a "
                f"{text.dims(shape)} output, not a flat one; end with Flatten and Linear"
            )
        elif shape[0] != len(label_list):
            problems.append(
                f"the spec has {len(label_list)} labels but the last layer gives {shape[0]} outputs; "
                f"give {shape[0]} labels or change the last layer to {len(label_list)} outputs"
            )
    first_error = _spec_problem(problems[0]) if problems else layer_error
    ok = first_error is None
    return SpecReport(
        ok=ok,
        layers=checks,
        first_error=first_error,
        input_shape=input_shape,
        output_shape=shape if layer_error is None else None,
        labels=label_list,
        name=name_text,
    )


def _unchecked(index: int, layer: Any, reason: str) -> LayerCheck:
    layer_type = layer.get("type") if isinstance(layer, dict) else None
    return LayerCheck(
        index=index,
        type=layer_type if isinstance(layer_type, str) else None,
        ok=False,
        reason=reason,
        checked=False,
    )


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Building and meta-running layers: torch's deprecation warnings are noise here."""
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        yield


def _check_layers(layers: list[Any], input_shape: Shape) -> tuple[list[LayerCheck], Shape | None]:
    with _quiet():
        return _check_layers_quietly(layers, input_shape)


class _BudgetReason(str):
    """A layer's reason that is the memory budget: :func:`build_model` raises SpecBudgetError for it."""


# Layers whose output is their input (or a view of it): no new memory.
_ALIASING = frozenset({"Flatten", "Identity"})


def _budget_check(
    layer_type: str, outcome: _Outcome, held: int, limit: int | None
) -> tuple[_BudgetReason | None, int]:
    """Whether a model holding ``held`` bytes can add this layer's parameters and output; the new total.

    Counted as a capture holds them: float32 parameters, the input and every layer's output at batch 1
    (see :mod:`cnnviz.core.budget`). Computed from the hyperparameters and the meta shapes, so a layer that
    cannot fit is refused before torch allocates its weight.
    """
    from cnnviz.core import budget

    assert outcome.output_shape is not None
    param_bytes = (outcome.params or 0) * budget.FLOAT_BYTES
    out_bytes = 0 if layer_type in _ALIASING else budget.tensor_bytes((1, *outcome.output_shape))
    total = held + param_bytes + out_bytes
    if limit is None or total <= limit:
        return None, total
    over = f"over the {budget.format_bytes(limit)} memory budget"
    if param_bytes >= out_bytes:
        what = f"its {outcome.params:,} parameters would take {budget.format_bytes(param_bytes)}"
        advice = "use fewer channels or features"
    else:
        dims = budget.shape_text((1, *outcome.output_shape))
        what = f"its {dims} output would take {budget.format_bytes(out_bytes)}"
        advice = "use a smaller input_shape, fewer channels or a smaller scale"
    if max(param_bytes, out_bytes) <= limit:
        what += f", bringing the model to {budget.format_bytes(total)}"
    return _BudgetReason(f"{what}, {over}; {advice}, or {budget.ADVICE}"), total


def _check_layers_quietly(
    layers: list[Any], input_shape: Shape
) -> tuple[list[LayerCheck], Shape | None]:
    from cnnviz.core import budget

    checks: list[LayerCheck] = []
    shape: Shape | None = input_shape
    limit = budget.memory_budget()
    held = budget.tensor_bytes((1, *input_shape))
    for index, layer in enumerate(layers):
        if shape is None:
            checks.append(_unchecked(index, layer, _NOT_CHECKED))
            continue
        layer_type, reason, kwargs = _static_check(layer)
        if reason is None:
            assert layer_type is not None
            outcome = _shape_check(layer_type, tuple(kwargs.items()), shape)
            reason, kwargs = outcome.reason, dict(outcome.kwargs)
            if reason is None:
                reason, held = _budget_check(layer_type, outcome, held, limit)
            if reason is None:
                checks.append(
                    LayerCheck(
                        index=index,
                        type=layer_type,
                        ok=True,
                        input_shape=shape,
                        output_shape=outcome.output_shape,
                        module_kwargs=kwargs,
                        params=outcome.params,
                    )
                )
                shape = outcome.output_shape
                continue
        checks.append(
            LayerCheck(
                index=index,
                type=layer_type,
                ok=False,
                reason=reason,
                input_shape=shape,
                module_kwargs=kwargs,
            )
        )
        shape = None
    return checks, shape
