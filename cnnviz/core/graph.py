"""Temporary: the old path of the layer graph; imports move to cnnviz.core.analysis.graph."""

from cnnviz.core.analysis.graph import (  # noqa: F401
    OUTPUT_KEY,
    ContainerInfo,
    GraphNode,
    LayerGraph,
    eval_mode,
    forget_graph,
    layer_graph,
    model_device,
    out_of_place,
    resolve_layer,
    unwrap_input,
    unwrap_module,
)
