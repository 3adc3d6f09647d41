"""Analyses over a whole folder of pictures, streamed in batches with bounded memory.

``topunits``: per channel of a layer, the units (picture, y, x) that fire most over the folder, each with the
picture crop of its receptive field. ``erf``: a unit's effective receptive field averaged over the folder, its
high-contribution area ratios, and how the field grows with depth. The device a run uses is chosen by
:func:`cnnviz.core.analysis.device.resolve_device` (re-exported here).
The pictures come from :mod:`cnnviz.core.images.folder`.
"""

from cnnviz.core.analysis.dataset.erf import (
    DatasetERF,
    ERFGrowth,
    area_ratios,
    dataset_erf,
    erf_growth,
)
from cnnviz.core.analysis.dataset.topunits import TopUnit, TopUnits, top_units
from cnnviz.core.analysis.device import resolve_device

__all__ = [
    "DatasetERF",
    "ERFGrowth",
    "TopUnit",
    "TopUnits",
    "area_ratios",
    "dataset_erf",
    "erf_growth",
    "resolve_device",
    "top_units",
]
