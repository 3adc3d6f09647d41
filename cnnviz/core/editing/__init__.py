"""Live layer editing: an edit session over a sequence of layers, its live table, and Apply.

``architecture`` holds the immutable snapshots (:class:`Architecture` of :class:`EditLayer`) and says which
models are editable; ``live`` computes a snapshot's table (shapes, parameters, MACs, receptive fields)
without running anything; ``apply`` builds the edited model and keeps the weights of unchanged layers;
``session`` ties them together with undo (:class:`EditSession`). Any traceable model is edited module by
module in ``graph_session`` (:class:`GraphEditSession`, its table in ``graph_table``). The layer-type lists the editor offers
come from :mod:`cnnviz.core.models.layertypes` and are re-exported here for the editor dock.
"""

from __future__ import annotations

from cnnviz.core.editing.apply import ApplyResult, apply_architecture
from cnnviz.core.editing.architecture import (
    Architecture,
    EditLayer,
    NotEditableError,
    architecture_from_spec,
    argument_default,
    editable_architecture,
    new_layer,
)
from cnnviz.core.editing.graph_session import (
    EditableModule,
    EditField,
    GraphApplyResult,
    GraphEditSession,
)
from cnnviz.core.editing.graph_table import GraphRow, GraphTable
from cnnviz.core.editing.live import (
    DenseComparison,
    LiveRow,
    LiveTable,
    delta_text,
    dense_row_text,
    live_table,
)
from cnnviz.core.editing.session import EditSession
from cnnviz.core.models.edits import GraphEditError, ModuleEdit
from cnnviz.core.models.layertypes import (
    ACTIVATION_TYPES,
    ADAPTIVE_TYPES,
    DROPOUT_TYPES,
    INFERRED,
    INSERTABLE,
    POOLING_TYPES,
)

__all__ = [
    "ACTIVATION_TYPES",
    "ADAPTIVE_TYPES",
    "DROPOUT_TYPES",
    "INFERRED",
    "INSERTABLE",
    "POOLING_TYPES",
    "ApplyResult",
    "Architecture",
    "DenseComparison",
    "EditField",
    "EditLayer",
    "EditSession",
    "EditableModule",
    "GraphApplyResult",
    "GraphEditError",
    "GraphEditSession",
    "GraphRow",
    "GraphTable",
    "LiveRow",
    "LiveTable",
    "ModuleEdit",
    "NotEditableError",
    "apply_architecture",
    "architecture_from_spec",
    "argument_default",
    "delta_text",
    "dense_row_text",
    "editable_architecture",
    "live_table",
    "new_layer",
]
