"""Temporary: the old path of the per-layer table; imports move to cnnviz.core.analysis.summary."""

from cnnviz.core.analysis.summary import (  # noqa: F401
    conv_formula,
    conv_padding,
    fill_layer_geometry,
    module_macs,
    module_params,
    summarize,
)
