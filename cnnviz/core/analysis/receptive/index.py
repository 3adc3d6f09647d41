"""One model at one input shape, analysed once: unit boxes in well under a millisecond each."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from cnnviz.core.analysis.graph import layer_graph, resolve_layer, unwrap_module
from cnnviz.core.analysis.receptive.analytic import _NodeRF, analyse
from cnnviz.core.analysis.receptive.boxes import UnitBox, _layer_key, unit_box_from_analysis
from cnnviz.core.analysis.receptive.measured import (
    measured_traced_box,
    measured_unit_box,
    spatial_axes,
    structural_copy,
    truncated_structural,
)
from cnnviz.core.analysis.shapes import run_on_meta
from cnnviz.core.errors import LayerError
from cnnviz.core.validate import (
    check_geometry,
    check_layer_name,
    check_module,
    check_shape,
    check_unit,
)


class ReceptiveFieldIndex:
    """Receptive-field analysis of one model at one input shape; answers unit boxes in well under a millisecond.

    Models that torch.fx cannot trace are *measured* instead: each box is the gradient support of the unit on a
    structural copy of the model (see :func:`measured_unit_box`), labelled ``measured``. On a traced graph, a
    layer whose field cannot be derived (after Swin's window attention, say) has its units measured the same way,
    on the traced graph run with the copy's modules; the per-layer figures of such a layer stay unknown.
    """

    def __init__(self, model: Any, input_shape: tuple[int, int, int] | None = None):
        module = unwrap_module(model)
        if input_shape is None:
            input_shape = getattr(model, "input_shape", None)
        if input_shape is None:
            raise LayerError("an input shape (C, H, W) is needed for receptive fields")
        shape = tuple(int(v) for v in input_shape)
        if len(shape) != 3:
            raise LayerError(
                f"receptive fields need an input shape (C, H, W), not {list(shape)}: "
                "give channels, height and width"
            )
        self.input_shape: tuple[int, int, int] = shape
        self.module = module
        self.graph = layer_graph(module)
        if self.graph.compiled:
            raise LayerError(
                "receptive fields of a TorchScript archive cannot be derived or measured (it runs as one "
                "compiled program); open the original model or a torch.export .pt2 file"
            )
        self.measured = not self.graph.traced
        self._structural: nn.Module | None = None
        self._map_sizes: dict[str, tuple[int, int] | None] = {}
        if self.measured:
            values, _ = run_on_meta(self.graph, self.input_shape)
            for key, value in values.items():
                axes = (
                    spatial_axes(tuple(value.shape), shape[1:])
                    if isinstance(value, torch.Tensor)
                    else None
                )
                self._map_sizes[key] = (
                    (int(value.shape[axes[0]]), int(value.shape[axes[1]]))
                    if axes is not None
                    else None
                )
            self.info: dict[str, _NodeRF] = {}
            return
        values, _ = run_on_meta(self.graph, self.input_shape)
        self.info = analyse(self.graph, values)
        self._truncated: dict[str, nn.Module] = {}
        # layers the analysis lost the image axes of (after an operation it does not understand): read from shape
        for key, node in self.info.items():
            value = values.get(key)
            if node.axes is None and _underived(node) and isinstance(value, torch.Tensor):
                axes = spatial_axes(tuple(value.shape), shape[1:])
                if axes is not None:
                    self._map_sizes[key] = (int(value.shape[axes[0]]), int(value.shape[axes[1]]))

    def box(
        self, layer: str, unit: tuple[int, int], geometry: Any = None, exact_support: bool = True
    ) -> UnitBox:
        """The box of one unit; ``exact_support=False`` leaves ``support_box`` out (faster)."""
        if self.measured:
            if self._structural is None:
                self._structural = structural_copy(self.module)
            return measured_unit_box(
                self._structural,
                self.graph,
                layer,
                unit,
                self.input_shape,
                geometry,
                self._map_sizes,
            )
        key = _layer_key(self.graph, layer)
        node = self.info.get(key)
        if node is not None and self.is_measured(layer):
            return self._measure(layer, key, node, unit, geometry)
        return unit_box_from_analysis(
            self.graph,
            self.info,
            layer,
            unit,
            self.input_shape,
            geometry,
            exact_support,
        )

    def is_measured(self, layer: str) -> bool:
        """Whether :meth:`box` measures this layer's units (a backward pass, up to seconds) rather than
        deriving them (well under a millisecond): callers that must stay responsive run those off their thread."""
        if self.measured:
            return True
        key = _layer_key(self.graph, layer)
        node = self.info.get(key)
        return (
            node is not None
            and _underived(node)
            and (node.axes is not None or key in self._map_sizes)
        )

    def _measure(
        self, layer: str, key: str, node: _NodeRF, unit: tuple[int, int], geometry: Any
    ) -> UnitBox:
        sizes = node.sizes or self._map_sizes.get(key)
        if sizes is None:
            raise LayerError(f"layer '{layer}' has no spatial map to pick a unit from")
        y, x = int(unit[0]), int(unit[1])
        if not (0 <= y < sizes[0] and 0 <= x < sizes[1]):
            raise LayerError(
                f"unit ({y}, {x}) is outside layer '{layer}', whose map is {sizes[0]}×{sizes[1]}: "
                f"y must be 0..{sizes[0] - 1} and x 0..{sizes[1] - 1}"
            )
        truncated = self._truncated.get(key)
        if truncated is None:
            if self._structural is None:
                self._structural = structural_copy(self.module)
            truncated = self._truncated[key] = truncated_structural(
                self._structural, self.graph, resolve_layer(self.graph, layer)
            )
        return measured_traced_box(truncated, layer, (y, x), self.input_shape, node.axes, geometry)

    def map_size(self, layer: str) -> tuple[int, int] | None:
        if self.measured:
            return self._map_sizes.get(resolve_layer(self.graph, layer))
        key = _layer_key(self.graph, layer)
        node = self.info.get(key)
        if node is None:
            return None
        return node.sizes if node.sizes is not None else self._map_sizes.get(key)


def _underived(node: _NodeRF) -> bool:
    """The analysis could not derive this layer's field (neither a box nor global, nor free of the input)."""
    return node.rf is None and not node.global_ and not node.const


def receptive_field(
    model: Any,
    layer: str,
    unit: tuple[int, int],
    input_shape: tuple[int, int, int] | None = None,
    geometry: Any = None,
) -> UnitBox:
    """The receptive field of unit ``unit`` = (y, x) of ``layer`` on an input of ``input_shape`` (C, H, W).

    Raises LayerError for an unknown layer (listing the closest names), a unit outside the layer's map (stating
    the valid range) or a layer without a spatial map; arguments of the wrong kind raise
    :class:`~cnnviz.core.errors.ArgumentTypeError` or :class:`~cnnviz.core.errors.InvalidArgumentError`.
    """
    check_module(model)
    layer, unit = check_layer_name(layer), check_unit(unit)
    shape = check_shape(input_shape)
    geometry = check_geometry(geometry)
    return ReceptiveFieldIndex(model, shape).box(layer, unit, geometry)  # type: ignore[arg-type]
