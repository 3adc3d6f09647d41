"""Temporary: the old path of receptive fields; imports move to cnnviz.core.analysis.receptive."""

from cnnviz.core.analysis.receptive import *  # noqa: F403
from cnnviz.core.analysis.receptive import (  # noqa: F401
    Box,
    analyse,
    measured_unit_box,
    structural_copy,
    support_box,
    to_receptive_field,
    unit_box_from_analysis,
)
