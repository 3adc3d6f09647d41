"""Analyses over a whole folder of pictures, streamed in batches with bounded memory.

``topunits``: per channel of a layer, the units (picture, y, x) that fire most over the folder, each with the
picture crop of its receptive field. ``device``: the device such a run uses. The pictures come from
:mod:`cnnviz.core.images.folder`.
"""

from cnnviz.core.analysis.dataset.device import resolve_device
from cnnviz.core.analysis.dataset.topunits import TopUnit, TopUnits, top_units

__all__ = ["TopUnit", "TopUnits", "resolve_device", "top_units"]
