"""Temporary: the old path of the per-layer table; imports move to cnnviz.core.analysis.summary.

The layer geometry, MACs and parameter counts now live in cnnviz.core.models.layertypes.
"""

from typing import Any

from cnnviz.core.analysis.summary import summarize  # noqa: F401
from cnnviz.core.models.layertypes import conv_padding, geometry, module_macs, module_params  # noqa: F401
from cnnviz.core.models.layertypes import param_formula as conv_formula  # noqa: F401


def fill_layer_geometry(row: Any, module: Any) -> None:
    """Temporary: sets the fields of :func:`cnnviz.core.models.layertypes.geometry` on ``row``."""
    for name, value in geometry(module).items():
        setattr(row, name, value)
