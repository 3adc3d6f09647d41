"""Receptive fields: exact, per axis, on the traced layer graph.

Two levels, both computed on the torch.fx graph (never in hook order, which is wrong for branching networks):

* **Per layer** (the table): size ``r``, effective stride ``S`` and effective padding ``P`` per axis as defined by
  Araujo, Norris & Sim, "Computing Receptive Fields of Convolutional Neural Networks" (Distill, 2019): unit ``y``
  sees input rows ``y*S - P .. y*S - P + r - 1``. Paths that meet (residual additions, concatenations) are merged
  by their extreme left and right edges, as the paper does. After global pooling, flatten or linear layers every
  unit sees the whole input: the field is marked *global*. A squeeze-and-excitation gate multiplies a local path
  by a global one: what follows it is marked *gated* -- the local box of the path, and through the gate the
  whole input, which is what the gradient says. Reductions over H or W
  (``mean``, ``sum``, ``amax``, ``std``, ``softmax`` ...) are global; channel-only operations (a channel shuffle's
  ``view``/``transpose``, ``split``, ``chunk``, ``narrow``, channel indexing) keep the field, which the shapes
  of each layer's input and output confirm. A vision transformer's tokens (H and W flattened into one
  sequence axis) are followed through per-token layers to attention over the whole, unmasked sequence, from
  which every unit is global (``tokens``). An input whose spatial dependence is not understood is never
  dropped: every field that depends on it is reported as not derived, never as a smaller local box.
* **Per unit** (:func:`receptive_field`): the box of the formula above (``box``); that box clipped to the input
  (``clipped_box``); and ``support_box``, the exact extent of the input pixels the unit can depend on, found by
  walking index sets back through every layer. ``support_box`` equals the bounding box of the input gradient's
  support (with positive weights); it is smaller than ``clipped_box`` only where a layer never reads some border
  pixels (a stride that does not divide the padded size drops the last rows, or dilation gaps at the border).

Upsampling and transposed convolutions make strides fractional: a stride of 1/2 means that moving one unit in the
layer moves half an input pixel, i.e. two neighbouring units share the same input window (the figure is then
marked non-uniform and ``box`` comes from the exact index sets).

The package: ``analytic`` (the per-layer fields on the graph, with ``facts``, ``indexmaps`` and ``tokens``), ``boxes`` (one
unit's box and its exact support), ``effective`` (the gradient-based field), ``measured`` (untraceable models), ``index`` (one analysis answering
many units) and ``mapping`` (moving a unit between layers and picking one from an input pixel).
"""

from cnnviz.core.analysis.receptive.analytic import (
    analyse,
    attach_receptive_fields,
    to_receptive_field,
)
from cnnviz.core.analysis.receptive.boxes import Box, UnitBox, support_box, unit_box_from_analysis
from cnnviz.core.analysis.receptive.effective import EffectiveRF, effective_receptive_field
from cnnviz.core.analysis.receptive.index import ReceptiveFieldIndex, receptive_field
from cnnviz.core.analysis.receptive.mapping import carry_unit, unit_at_input
from cnnviz.core.analysis.receptive.measured import measured_unit_box, structural_copy

__all__ = [
    "ReceptiveFieldIndex",
    "UnitBox",
    "EffectiveRF",
    "receptive_field",
    "effective_receptive_field",
    "attach_receptive_fields",
    "Box",
    "carry_unit",
    "unit_at_input",
    "analyse",
    "measured_unit_box",
    "structural_copy",
    "support_box",
    "to_receptive_field",
    "unit_box_from_analysis",
]
