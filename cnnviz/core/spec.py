"""Temporary: the old path of architecture specs; imports move to cnnviz.core.models.spec."""

from cnnviz.core.models.spec import (
    ACTIVATION_TYPES,
    DROPOUT_TYPES,
    SUPPORTED_TYPES,
    LayerCheck,
    SpecReport,
    accepted_arguments,
    build_model,
    infer_output_shape,
    load_spec,
    save_spec,
    spec_from_sequential,
    spec_preprocess,
    validate_spec,
    warm_up,
)
from cnnviz.core.models.spec.build import _WARM_UP_SPEC

__all__ = [
    "ACTIVATION_TYPES",
    "DROPOUT_TYPES",
    "SUPPORTED_TYPES",
    "LayerCheck",
    "SpecReport",
    "_WARM_UP_SPEC",
    "accepted_arguments",
    "build_model",
    "infer_output_shape",
    "load_spec",
    "save_spec",
    "spec_from_sequential",
    "spec_preprocess",
    "validate_spec",
    "warm_up",
]
