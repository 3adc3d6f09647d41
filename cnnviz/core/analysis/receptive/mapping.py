"""Moving between a layer's units and the input through their receptive fields.

A unit ``y`` of a layer with field size ``r``, effective stride ``S`` and padding ``P`` is centred on input row
``y*S - P + (r - 1)/2``; these functions invert that formula, rounding to the nearest unit inside the map.
"""

from __future__ import annotations

import math

from cnnviz.core.analysis.types import ReceptiveField


def _nearest(index: float, n: int) -> int:
    return min(max(int(math.floor(index + 0.5)), 0), n - 1)


def unit_at_input(
    rf: ReceptiveField | None, point: tuple[float, float], size: tuple[int, int] | None
) -> tuple[int, int] | None:
    """The unit of a layer (field ``rf``, map ``size``) centred nearest model-input point (y, x).

    None where the layer has no local field (global, unknown) or no spatial map.
    """
    if rf is None or rf.global_ or size is None or rf.size is None:
        return None
    assert rf.stride is not None and rf.padding is not None  # set with size for local fields
    unit = []
    for axis, pos in enumerate(point):
        index = (pos + float(rf.padding[axis]) - (rf.size[axis] - 1) / 2) / float(rf.stride[axis])
        unit.append(_nearest(index, size[axis]))
    return (unit[0], unit[1])


def carry_unit(
    old: ReceptiveField | None,
    unit: tuple[int, int],
    new: ReceptiveField | None,
    size: tuple[int, int] | None,
) -> tuple[int, int] | None:
    """The unit of the new layer (field ``new``, map ``size``) whose field centre is nearest that of ``unit``.

    ``old`` is the field of the layer ``unit`` belongs to. None where either field is not local or the new layer
    has no spatial map.
    """
    if old is None or new is None or old.global_ or new.global_ or size is None:
        return None
    if old.size is None or new.size is None:
        return None
    assert old.stride is not None and old.padding is not None
    assert new.stride is not None and new.padding is not None
    out = []
    for axis in (0, 1):
        centre = unit[axis] * old.stride[axis] - old.padding[axis] + (old.size[axis] - 1) / 2
        pos = (centre + new.padding[axis] - (new.size[axis] - 1) / 2) / new.stride[axis]
        out.append(_nearest(float(pos), size[axis]))
    return (out[0], out[1])
