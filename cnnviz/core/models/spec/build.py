"""Building a checked spec: ``nn.Sequential`` on the CPU, the output shape, and the one-time warm-up."""

from __future__ import annotations

import warnings
from typing import Any

from torch import nn

from cnnviz.core.errors import SpecBudgetError, SpecError, one_line
from cnnviz.core.models.spec.check import _BudgetReason, validate_spec
from cnnviz.core.models.spec.schema import Shape, SpecReport, _layer_name, _type_info

_WARM_UP_SPEC = {
    "input_shape": [2, 9, 9],
    "layers": [
        {"type": "ZeroPad2d", "padding": 1},
        {"type": "Conv2d", "out_channels": 2, "kernel_size": 3},
        {"type": "ConvTranspose2d", "out_channels": 2, "kernel_size": 2},
        {"type": "Upsample", "scale_factor": 2},
        {"type": "MaxPool2d", "kernel_size": 2},
        {"type": "AvgPool2d", "kernel_size": 2},
        {"type": "AdaptiveMaxPool2d", "output_size": 2},
        {"type": "AdaptiveAvgPool2d", "output_size": 1},
        {"type": "Flatten"},
        {"type": "Linear", "out_features": 2},
    ],
}


def warm_up() -> None:
    """Pay now torch's one-time cost of the first meta runs (a second or two: it imports sympy).

    An editor that validates on every keystroke can call this in a background thread at start-up.
    """
    validate_spec(_WARM_UP_SPEC)


def _raise_for(report: SpecReport) -> None:
    error = report.first_error
    if error is not None:
        cls = SpecBudgetError if isinstance(error.reason, _BudgetReason) else SpecError
        raise cls(error.message or "the spec is invalid", error.index, error.type)


def build_model(spec: Any) -> nn.Sequential:
    """Validate ``spec`` and build it on the CPU as ``nn.Sequential`` (layers named "0", "1", ...).

    Raises :class:`SpecError` (one line, with ``index`` and ``layer_type``) for the first problem.
    The model is in training mode with torch's default initialisation.
    """
    report = validate_spec(spec)
    _raise_for(report)
    modules: list[nn.Module] = []
    for check in report.layers:
        assert check.type is not None
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                modules.append(_type_info(check.type).cls(**check.module_kwargs))
        except Exception as exc:
            raise SpecError(
                f"{_layer_name(check.index, check.type)}: {one_line(exc)}",
                check.index,
                check.type,
            ) from None
    return nn.Sequential(*modules)


def infer_output_shape(spec: Any) -> Shape:
    """The output shape (without batch) of a valid spec; raises :class:`SpecError` otherwise."""
    report = validate_spec(spec)
    _raise_for(report)
    assert report.output_shape is not None
    return report.output_shape
