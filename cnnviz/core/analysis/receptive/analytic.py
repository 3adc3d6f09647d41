"""Per-layer receptive fields on the traced graph: size, effective stride and padding per axis.

Every node of the torch.fx graph gets its field (Araujo, Norris & Sim, Distill 2019) and, for the exact unit
boxes, maps that carry a mask over an output axis back to the axes of its inputs. See the package docstring.
"""

from __future__ import annotations

import math
from fractions import Fraction
from typing import Any

import numpy as np
import torch
from torch import nn

from cnnviz.core.analysis.graph import GraphNode, LayerGraph
from cnnviz.core.analysis.receptive.facts import (
    _RESHAPES,
    _SPLITS,
    _arg,
    _AxisRF,
    _conv_like,
    _holds_tensor,
    _kept_axes,
    _merge,
    _NodeRF,
    _pair,
    _shape,
    _tensor_args,
    as_fraction,
    is_pointwise,
    permute_order,
)
from cnnviz.core.analysis.receptive.indexmaps import (
    IndexMap,
    adaptive_map,
    broadcast_map,
    every_map,
    gather_map,
    identity_map,
    transposed_map,
    window_map,
)
from cnnviz.core.analysis.receptive.tokens import (
    merged_token_axis,
    token_rule,
    whole_window_attention,
)
from cnnviz.core.analysis.types import ReceptiveField, Summary
from cnnviz.core.models.layertypes import (
    ADAPTIVE_MODULES,
    DIM_MIXERS,
    DIM_REDUCTIONS,
    SPATIAL_GLOBAL_MODULES,
    window_geometry,
)

# --------------------------------------------------------------------------------------------------------------
# Per-layer analysis


class _Analyzer:
    def __init__(self, graph: LayerGraph, values: dict[str, Any]):
        self.graph = graph
        self.values = values
        self.info: dict[str, _NodeRF] = {}

    def run(self) -> dict[str, _NodeRF]:
        for node in self.graph.nodes:
            try:
                result = self._analyse(node)
            except Exception:  # noqa: BLE001 - an op we cannot reason about: unknown, never wrong
                result = _NodeRF(None, None, None)
            if not result.global_ and any(
                self.info[k].gated for k in node.inputs if k in self.info
            ):
                result.gated = True
            self.info[node.key] = result
        return self.info

    def _depends(self, key: str) -> bool:
        """Whether a layer input carries data of the image (not a parameter, a constant or a size)."""
        if key not in self.info or self.info[key].const:
            return False
        # a value we were not given may be a tensor: it counts, so that nothing is dropped unseen
        return key not in self.values or _holds_tensor(self.values[key])

    def _analyse(self, node: GraphNode) -> _NodeRF:
        out_value = self.values.get(node.key)
        out_shape = _shape(out_value)
        if node.kind == "input":
            if out_shape is None or len(out_shape) != 4:
                return _NodeRF(None, None, None)
            one = _AxisRF(1, 1, 0)
            return _NodeRF((2, 3), (out_shape[2], out_shape[3]), (one, one))
        in_keys = [k for k in _tensor_args(node, self.graph) if self._depends(k)]
        if not in_keys:
            return _NodeRF(None, None, None, const=True)
        if any(self.info[k].tokens is not None for k in in_keys):
            return token_rule(node, in_keys, self.info, self.values, self.graph.node_key)
        # Every input that carries image data counts: one whose spatial dependence is unknown makes the
        # result unknown, never dropped (dropping it would report a local box where the unit sees more).
        spatial = [(k, self.info[k]) for k in in_keys if self.info[k].axes is not None]
        others = [(k, self.info[k]) for k in in_keys if self.info[k].axes is None]
        if any(not info.global_ for _, info in others):
            return _NodeRF(None, None, None)
        module = node.module
        name = node.type.split(".")[-1].lower()
        if name == "getitem" and len(in_keys) == 1 and self.info[in_keys[0]].parts:
            return self._element(node, in_keys[0], self.info[in_keys[0]])
        if not spatial:
            # only inputs that already see the whole image (e.g. after global pooling and flatten)
            return _NodeRF(None, None, None, global_=True)
        if isinstance(out_value, (tuple, list)):
            return self._tuple_output(node, name, spatial, others, out_value)
        if out_shape is None:
            return _NodeRF(None, None, None)
        result = self._rule(node, module, name, spatial, out_shape)
        if others:
            # inputs that see the whole image next to a map: a gate (squeeze-and-excitation) for elementwise
            # ops; anything else that mixes them in depends on everything
            back = dict(result.back or {})
            back.update((k, None) for k, _ in others)
            result.back = back
            if result.rf is not None and is_pointwise(module, name):
                result.gated = True
            elif result.rf is not None or result.global_:
                result.rf, result.global_ = None, True
        return result

    def _tuple_output(
        self,
        node: GraphNode,
        name: str,
        spatial: list[tuple[str, _NodeRF]],
        others: list[tuple[str, _NodeRF]],
        out_value: tuple[Any, ...] | list[Any],
    ) -> _NodeRF:
        """Split, chunk and unbind of one map, or a reduction returning (values, indices)."""
        if others or len(spatial) != 1 or not out_value:
            return _NodeRF(None, None, None)
        shapes = [_shape(v) for v in out_value]
        if any(s is None for s in shapes) or len(set(shapes)) > 1 and name not in _SPLITS:
            return _NodeRF(None, None, None)
        first_key, first = spatial[0]
        assert first.axes is not None
        if name in DIM_REDUCTIONS:  # max / min over a dim: values and indices share their shape
            shape = shapes[0]
            assert shape is not None
            result = self._rule(node, None, name, spatial, shape)
            result.parts = True
            return result
        in_val = self.values.get(first_key)
        if not isinstance(in_val, torch.Tensor) or (name not in _SPLITS and name != "unbind"):
            return _NodeRF(None, None, None)
        ndim = in_val.dim()
        position, default = _SPLITS.get(name, (1, 0))
        dim = int(_arg(node, position, "dim", default)) % ndim
        if dim in first.axes:
            return _NodeRF(None, None, None)  # pieces of the spatial extent: not followed
        axes = first.axes
        if name == "unbind":
            axes = (axes[0] - (dim < axes[0]), axes[1] - (dim < axes[1]))
        for shape in shapes:
            assert shape is not None
            if max(axes) >= len(shape) or (shape[axes[0]], shape[axes[1]]) != first.sizes:
                return _NodeRF(None, None, None)
        return _NodeRF(
            axes, first.sizes, first.rf, first.global_, first.uniform,
            back={first_key: None}, parts=True,
        )  # fmt: skip

    def _element(self, node: GraphNode, in_key: str, parts: _NodeRF) -> _NodeRF:
        """One element of a split: the facts of the pieces, read position for position."""
        assert node.fx_node is not None
        if not isinstance(node.fx_node.args[1], int):
            return _NodeRF(None, None, None)
        return _NodeRF(
            parts.axes, parts.sizes, parts.rf, parts.global_, parts.uniform, parts.gated,
            back={in_key: None},
        )  # fmt: skip

    def _rule(
        self,
        node: GraphNode,
        module: nn.Module | None,
        name: str,
        spatial: list[tuple[str, _NodeRF]],
        out_shape: tuple[int, ...],
    ) -> _NodeRF:
        """The field of one layer from those of its inputs that carry a spatial map."""
        first_key, first = spatial[0]
        if len(spatial) > 1 and not (
            is_pointwise(module, name)
            or name == "cat"
            or name in DIM_REDUCTIONS
            or name in DIM_MIXERS
        ):
            return _NodeRF(None, None, None)  # two maps into an op that reads one: not followed

        # ----- layers with a window (convolution, pooling)
        geometry = self._window_geometry(node, module, name)
        if geometry is not None:
            return self._window(node, first_key, first, out_shape, *geometry)
        if isinstance(module, ADAPTIVE_MODULES) or name in (
            "adaptive_avg_pool2d",
            "adaptive_max_pool2d",
        ):
            return self._adaptive(first_key, first, out_shape)
        if isinstance(
            module, (nn.Upsample, nn.UpsamplingNearest2d, nn.UpsamplingBilinear2d)
        ) or name in (
            "interpolate",
            "upsample",
        ):
            return self._upsample(node, module, first_key, first, out_shape)
        if isinstance(
            module, (nn.ZeroPad2d, nn.ConstantPad2d, nn.ReflectionPad2d, nn.ReplicationPad2d)
        ) or (name == "pad"):
            return self._pad(node, module, first_key, first, out_shape)
        if name == "shifted_window_attention":
            return whole_window_attention(node, first_key, first, out_shape)
        # ----- layers that look at every position
        if isinstance(
            module,
            (
                nn.Flatten,
                nn.Unflatten,
                nn.Linear,
                nn.Bilinear,
                nn.LayerNorm,
                nn.Softmax,
                nn.LogSoftmax,
            ),
        ) or (name in ("linear", *_RESHAPES) or name in DIM_REDUCTIONS or name in DIM_MIXERS):
            return self._reduce_or_keep(node, module, name, first_key, first, out_shape, spatial)
        if isinstance(module, SPATIAL_GLOBAL_MODULES) or name in ("instance_norm", "group_norm"):
            return _NodeRF(first.axes, first.sizes, None, global_=True)
        if name in ("permute", "transpose", "movedim"):
            return self._permute(node, name, first_key, first, out_shape)
        if name in ("getitem", "squeeze", "unsqueeze"):
            return self._index(node, name, first_key, first, out_shape)
        if name in ("narrow", "select", "index_select"):
            return self._narrow(node, name, first_key, first, out_shape)
        if name == "cat":
            return self._cat(node, spatial, out_shape)
        if is_pointwise(module, name) or node.returns_input:
            return self._pointwise(spatial, out_shape)
        # An op the analysis does not know: its field is unknown. Where it keeps its input's shape the image
        # axes are taken to stay put, so that a later global pooling is still seen as global (no rule turns
        # an unknown field into a local one, so a wrong guess can only cost that "global").
        in_val = self.values.get(first_key)
        if len(spatial) == 1 and isinstance(in_val, torch.Tensor) and in_val.shape == out_shape:
            return _NodeRF(first.axes, first.sizes, None)
        return _NodeRF(None, None, None)

    # -- rules --------------------------------------------------------------------------------------------------
    def _window_geometry(
        self, node: GraphNode, module: nn.Module | None, name: str
    ) -> tuple[tuple[int, int], tuple[int, int], tuple[int, int], tuple[int, int], bool] | None:
        """(kernel, stride, padding, dilation, transposed) of a convolution or pooling layer, else None."""
        if module is not None:
            return window_geometry(module)
        if name in ("conv2d", "conv_transpose2d"):
            assert node.fx_node is not None
            weight_arg = node.fx_node.args[1]
            weight_key = self.graph.node_key(weight_arg)
            weight = (
                self.values.get(weight_key)
                if weight_key is not None
                else self.graph.constant(weight_arg)
            )
            if weight is None:
                return None
            k = (int(weight.shape[-2]), int(weight.shape[-1]))
            s = _pair(_arg(node, 3, "stride", 1))
            p = _arg(node, 4, "padding", 0)
            d = _pair(_arg(node, 6 if name == "conv2d" else 7, "dilation", 1))
            if isinstance(p, str):
                p = (0, 0) if p == "valid" else (d[0] * (k[0] - 1) // 2, d[1] * (k[1] - 1) // 2)
            return (k, s, _pair(p), d, name == "conv_transpose2d")
        if name == "_patch_merging_pad":  # rows and columns 2i, 2i+1, zero-padded to an even size
            return ((2, 2), (2, 2), (0, 0), (1, 1), False)
        if name in ("max_pool2d", "avg_pool2d", "max_pool2d_with_indices"):
            k = _pair(_arg(node, 1, "kernel_size", 1))
            stride = _arg(node, 2, "stride", None)
            s = _pair(stride) if stride not in (None, [], ()) else k
            p = _pair(_arg(node, 3, "padding", 0))
            d = _pair(_arg(node, 4, "dilation", 1)) if name != "avg_pool2d" else (1, 1)
            return (k, s, p, d, False)
        return None

    def _window(
        self,
        node: GraphNode,
        in_key: str,
        first: _NodeRF,
        out_shape: tuple[int, ...],
        k: tuple[int, int],
        s: tuple[int, int],
        p: tuple[int, int],
        d: tuple[int, int],
        transposed: bool,
    ) -> _NodeRF:
        # torchvision's Swin merges 2x2 patches of an (N, H, W, C) map; convolutions and pools read (N, C, H, W)
        axes = (1, 2) if node.type.endswith("_patch_merging_pad") else (2, 3)
        if first.axes != axes or len(out_shape) != 4 or first.sizes is None:
            return _NodeRF(None, None, None)
        sizes = (out_shape[axes[0]], out_shape[axes[1]])
        maps = []
        for a in range(2):
            if transposed:
                maps.append(transposed_map(k[a], s[a], p[a], d[a], first.sizes[a]))
            else:
                maps.append(window_map(k[a], s[a], p[a], d[a], first.sizes[a]))
        back = {in_key: (maps[0], maps[1])}
        if first.global_:
            return _NodeRF(axes, sizes, None, global_=True, back=back)
        if first.rf is None:
            return _NodeRF(axes, sizes, None, back=back)
        rf = []
        uniform = first.uniform
        for a in range(2):
            src = first.rf[a]
            if transposed:
                # unit y reads input units (y + p - d(k-1))/s .. (y + p)/s
                span = Fraction(d[a] * (k[a] - 1), s[a])
                r = src.r + span * src.s
                rf.append(
                    _AxisRF(
                        Fraction(math.ceil(r)),
                        Fraction(src.s, s[a]),
                        src.p - Fraction((p[a] - d[a] * (k[a] - 1)) * src.s, s[a]),
                    )
                )
                uniform = uniform and s[a] == 1
            else:
                rf.append(_conv_like(src, k[a], s[a], p[a], d[a]))
        return _NodeRF(axes, sizes, (rf[0], rf[1]), uniform=uniform, back=back)

    def _adaptive(self, in_key: str, first: _NodeRF, out_shape: tuple[int, ...]) -> _NodeRF:
        if first.axes != (2, 3) or first.sizes is None or len(out_shape) != 4:
            return _NodeRF(None, None, None)
        sizes = (out_shape[2], out_shape[3])
        back = {
            in_key: (
                adaptive_map(first.sizes[0], sizes[0]),
                adaptive_map(first.sizes[1], sizes[1]),
            )
        }
        if sizes == (1, 1) or first.global_:
            return _NodeRF((2, 3), sizes, None, global_=True, back=back)
        if first.rf is None:
            return _NodeRF((2, 3), sizes, None, back=back)
        rf = []
        uniform = first.uniform
        for a in range(2):
            n_in, n_out = first.sizes[a], sizes[a]
            if n_in % n_out == 0:
                k = n_in // n_out
                rf.append(_conv_like(first.rf[a], k, k, 0, 1))
            else:
                k = max(-((-(i + 1) * n_in) // n_out) - (i * n_in) // n_out for i in range(n_out))
                src = first.rf[a]
                rf.append(_AxisRF(src.r + (k - 1) * src.s, src.s * Fraction(n_in, n_out), src.p))
                uniform = False
        return _NodeRF((2, 3), sizes, (rf[0], rf[1]), uniform=uniform, back=back)

    def _upsample(
        self,
        node: GraphNode,
        module: nn.Module | None,
        in_key: str,
        first: _NodeRF,
        out_shape: tuple[int, ...],
    ) -> _NodeRF:
        if first.axes != (2, 3) or first.sizes is None or len(out_shape) != 4:
            return _NodeRF(None, None, None)
        mode = getattr(module, "mode", None) or _arg(node, 3, "mode", "nearest")
        if isinstance(module, nn.UpsamplingBilinear2d):
            mode = "bilinear"
        align = bool(
            getattr(module, "align_corners", None) or _arg(node, 4, "align_corners", False)
        )
        if isinstance(module, nn.UpsamplingBilinear2d):
            align = True
        sizes = (out_shape[2], out_shape[3])
        maps = []
        for a in range(2):
            n_in, n_out = first.sizes[a], sizes[a]
            y = np.arange(n_out)
            if mode == "nearest":
                src = np.minimum((y * n_in) // n_out, n_in - 1)
            elif mode in ("bilinear", "linear", "bicubic"):
                if align and n_out > 1:
                    pos = y * (n_in - 1) / (n_out - 1)
                else:
                    pos = np.maximum((y + 0.5) * n_in / n_out - 0.5, 0)
                lo = np.floor(pos).astype(int)
                reach = 2 if mode == "bicubic" else 1
                src = np.stack(
                    [np.clip(lo + t, 0, n_in - 1) for t in range(-(reach - 1), reach + 1)], 1
                )
            else:
                return _NodeRF(None, None, None)
            maps.append(gather_map(src, n_in))
        back = {in_key: (maps[0], maps[1])}
        if first.global_:
            return _NodeRF((2, 3), sizes, None, global_=True, back=back)
        if first.rf is None:
            return _NodeRF((2, 3), sizes, None, back=back)
        rf = []
        for a in range(2):
            src_rf = first.rf[a]
            extra = 0 if mode == "nearest" else (3 if mode == "bicubic" else 1)
            rf.append(
                _AxisRF(
                    src_rf.r + extra * src_rf.s,
                    src_rf.s * Fraction(first.sizes[a], sizes[a]),
                    src_rf.p,
                )
            )
        return _NodeRF((2, 3), sizes, (rf[0], rf[1]), uniform=False, back=back)

    def _pad(
        self,
        node: GraphNode,
        module: nn.Module | None,
        in_key: str,
        first: _NodeRF,
        out_shape: tuple[int, ...],
    ) -> _NodeRF:
        if first.axes != (2, 3) or first.sizes is None or len(out_shape) != 4:
            return _NodeRF(None, None, None)
        pads = (
            getattr(module, "padding", None) if module is not None else _arg(node, 1, "pad", None)
        )
        if pads is None:
            return _NodeRF(None, None, None)
        if isinstance(pads, int):
            pads = (pads,) * 4
        pads = tuple(int(v) for v in pads)
        if len(pads) == 2:
            pads = (*pads, 0, 0)
        left, _right, top, _bottom = pads[:4]
        reflect = isinstance(module, (nn.ReflectionPad2d, nn.ReplicationPad2d)) or (
            module is None and _arg(node, 2, "mode", "constant") != "constant"
        )
        sizes = (out_shape[2], out_shape[3])
        maps = []
        for a, lead in ((0, top), (1, left)):
            n_in = first.sizes[a]
            y = np.arange(sizes[a]) - lead
            if reflect:
                if (
                    isinstance(module, nn.ReplicationPad2d)
                    or _arg(node, 2, "mode", "") == "replicate"
                ):
                    y = np.clip(y, 0, n_in - 1)
                else:
                    y = np.abs(y)
                    y = np.where(y >= n_in, 2 * (n_in - 1) - y, y)
            maps.append(gather_map(y, n_in))
        back = {in_key: (maps[0], maps[1])}
        if first.global_ or first.rf is None:
            return _NodeRF((2, 3), sizes, None, global_=first.global_, back=back)
        rf = (
            _AxisRF(first.rf[0].r, first.rf[0].s, first.rf[0].p + top * first.rf[0].s),
            _AxisRF(first.rf[1].r, first.rf[1].s, first.rf[1].p + left * first.rf[1].s),
        )
        return _NodeRF((2, 3), sizes, rf, uniform=first.uniform and not reflect, back=back)

    def _reduce_or_keep(
        self,
        node: GraphNode,
        module: nn.Module | None,
        name: str,
        in_key: str,
        first: _NodeRF,
        out_shape: tuple[int, ...],
        spatial: list[tuple[str, _NodeRF]],
    ) -> _NodeRF:
        """Ops over some dims: global when they touch a spatial axis, position-wise otherwise."""
        assert first.axes is not None
        in_val = self.values.get(in_key)
        if isinstance(module, (nn.Flatten, nn.Unflatten)) or (module is None and name in _RESHAPES):
            return self._reshape(in_key, first, in_val, out_shape)
        ndim = in_val.dim() if isinstance(in_val, torch.Tensor) else len(out_shape)
        touched: set[int]
        if isinstance(module, (nn.Linear, nn.Bilinear)) or name == "linear":
            touched = {ndim - 1}
        elif isinstance(module, nn.LayerNorm):
            touched = set(range(ndim - len(module.normalized_shape), ndim))
        elif name == "layer_norm":
            shape = _arg(node, 1, "normalized_shape", ())
            touched = set(range(ndim - len(shape), ndim))
        elif isinstance(module, (nn.Softmax, nn.LogSoftmax)) or name in (
            "softmax",
            "log_softmax",
            "cumsum",
            "cumprod",
            "normalize",
        ):
            # an fx argument, or the attribute of a module named like the op: whatever it holds
            dim: Any = module.dim if module is not None else _arg(node, 1, "dim", None)
            touched = set(range(ndim)) if dim is None else {int(dim) % ndim}
        else:  # reductions
            dim = _arg(node, 2 if name == "norm" else 1, "dim", None)
            if dim is None:
                touched = set(range(ndim))
            else:
                dims = dim if isinstance(dim, (list, tuple)) else [dim]
                touched = {int(v) % ndim for v in dims}
        keepdim = len(out_shape) == ndim  # read from the shapes, whatever the argument was called
        if touched & set(first.axes) or first.global_:
            if len(spatial) > 1 or not keepdim or first.sizes is None:
                return _NodeRF(None, None, None, global_=True)
            # over the image (mean((2, 3), keepdim=True), softmax over H): each unit reads every position of
            # the reduced axes; the axes stay, so a gate made of it keeps its exact support
            sizes = (out_shape[first.axes[0]], out_shape[first.axes[1]])
            maps = tuple(
                every_map(first.sizes[i]) if a in touched else identity_map
                for i, a in enumerate(first.axes)
            )
            return _NodeRF(first.axes, sizes, None, global_=True, back={in_key: (maps[0], maps[1])})
        # position-wise over the spatial axes; for reductions without keepdim the axes shift down
        axes = first.axes
        if name in DIM_REDUCTIONS and not keepdim:
            axes = (
                axes[0] - sum(1 for t in touched if t < axes[0]),
                axes[1] - sum(1 for t in touched if t < axes[1]),
            )
        return self._pointwise(spatial, out_shape, axes)

    def _reshape(
        self, in_key: str, first: _NodeRF, in_val: Any, out_shape: tuple[int, ...]
    ) -> _NodeRF:
        """view / reshape / flatten: the geometry stays when H and W survive intact (from the meta shapes)."""
        assert first.axes is not None
        if not isinstance(in_val, torch.Tensor):
            return _NodeRF(None, None, None)
        axes = _kept_axes(tuple(in_val.shape), tuple(out_shape), first.axes)
        if (
            axes is not None
        ):  # channel-only (a channel shuffle's view/flatten): position for position
            return _NodeRF(
                axes, first.sizes, first.rf, first.global_, first.uniform, back={in_key: None}
            )
        tokens = merged_token_axis(tuple(in_val.shape), tuple(out_shape), first.axes)
        # H and W merged into one sequence (ViT's tokens)
        if tokens is not None and not first.global_:
            return _NodeRF(None, None, None, tokens=tokens)
        if first.global_ or len(out_shape) <= 2:
            # the classifier's flatten: every feature of the image in one vector, read whole by what follows
            return _NodeRF(None, None, None, global_=True)
        # the image axes cut up or merged (window partition, tokens): what each unit reads is not followed
        return _NodeRF(None, None, None)

    def _permute(
        self, node: GraphNode, name: str, in_key: str, first: _NodeRF, out_shape: tuple[int, ...]
    ) -> _NodeRF:
        assert first.axes is not None
        order = permute_order(node, name, len(out_shape))
        axes = (order.index(first.axes[0]), order.index(first.axes[1]))
        return _NodeRF(
            axes, first.sizes, first.rf, first.global_, first.uniform, back={in_key: None}
        )

    def _index(
        self, node: GraphNode, name: str, in_key: str, first: _NodeRF, out_shape: tuple[int, ...]
    ) -> _NodeRF:
        assert first.axes is not None and first.sizes is not None
        assert node.fx_node is not None
        fx_args: tuple[Any, ...] = node.fx_node.args  # fx arguments: checked where used
        in_val = self.values.get(in_key)
        ndim_in = in_val.dim() if isinstance(in_val, torch.Tensor) else len(out_shape)
        if name == "unsqueeze":
            d = int(fx_args[1]) % (ndim_in + 1)
            h, w = (a + 1 if a >= d else a for a in first.axes)
            return _NodeRF(
                (h, w), first.sizes, first.rf, first.global_, first.uniform, back={in_key: None}
            )
        if name == "squeeze":
            if len(fx_args) > 1:
                dims = [int(v) % ndim_in for v in fx_args[1:]]
            elif isinstance(in_val, torch.Tensor):
                dims = [i for i, s in enumerate(in_val.shape) if s == 1]
            else:
                return _NodeRF(None, None, None)
            if set(dims) & set(first.axes):
                return _NodeRF(None, None, None)
            h, w = (a - sum(1 for d in dims if d < a) for a in first.axes)
            return _NodeRF(
                (h, w), first.sizes, first.rf, first.global_, first.uniform, back={in_key: None}
            )
        return self._slice(in_key, first, fx_args[1], ndim_in, out_shape)

    def _narrow(
        self, node: GraphNode, name: str, in_key: str, first: _NodeRF, out_shape: tuple[int, ...]
    ) -> _NodeRF:
        """narrow / select / index_select: the same as indexing one dim (channels keep the geometry)."""
        assert first.axes is not None
        in_val = self.values.get(in_key)
        if not isinstance(in_val, torch.Tensor):
            return _NodeRF(None, None, None)
        dim = int(_arg(node, 1, "dim", 0)) % in_val.dim()
        lead: tuple[Any, ...] = (slice(None),) * dim
        if name == "narrow":
            start = int(_arg(node, 2, "start", 0)) % in_val.shape[dim]
            index = (*lead, slice(start, start + int(_arg(node, 3, "length", 0))))
        elif name == "select":
            index = (*lead, int(_arg(node, 2, "index", 0)))
        elif dim in first.axes:
            return _NodeRF(None, None, None)  # positions picked by a tensor: not followed
        else:
            index = (*lead, slice(None))  # index_select over channels
        return self._slice(in_key, first, index, in_val.dim(), out_shape)

    def _slice(
        self, in_key: str, first: _NodeRF, index: Any, ndim_in: int, out_shape: tuple[int, ...]
    ) -> _NodeRF:
        """Plain int / slice / None / Ellipsis indexing, and one index tensor over a non-spatial dim."""
        assert first.axes is not None and first.sizes is not None
        if not isinstance(index, tuple):
            index = (index,)
        if any(isinstance(i, Ellipsis.__class__) for i in index):
            pos = [i for i, v in enumerate(index) if v is Ellipsis][0]
            fill = ndim_in - (len(index) - 1 - sum(1 for v in index if v is None))
            index = index[:pos] + (slice(None),) * fill + index[pos + 1 :]
        in_dim = 0
        out_dim = 0
        new_axes: list[int] = []
        offsets: dict[int, slice] = {}
        tensors = 0
        for item in index:
            if item is None:
                out_dim += 1
                continue
            if isinstance(item, int):
                if in_dim in first.axes:
                    return _NodeRF(None, None, None)
                in_dim += 1
                continue
            if isinstance(item, slice):
                if in_dim in first.axes:
                    new_axes.append(out_dim)
                    offsets[first.axes.index(in_dim)] = item
                in_dim += 1
                out_dim += 1
                continue
            value = self._index_tensor(item)
            if value is None or value.dim() != 1 or in_dim in first.axes or tensors:
                return _NodeRF(None, None, None)  # positions picked by a tensor: not followed
            tensors += 1  # one 1-D index tensor keeps its dim in place (channels picked by a table)
            in_dim += 1
            out_dim += 1
        for d in range(in_dim, ndim_in):
            if d in first.axes:
                new_axes.append(out_dim + d - in_dim)
        if len(new_axes) != 2:
            return _NodeRF(None, None, None)
        sizes = list(first.sizes)
        maps: list[IndexMap] = [identity_map, identity_map]
        rf = list(first.rf) if first.rf is not None else None
        uniform = first.uniform
        for a, sl in offsets.items():
            start, stop, step = sl.indices(first.sizes[a])
            if (start, stop, step) == (0, first.sizes[a], 1):
                continue
            src = np.arange(start, stop, step)
            sizes[a] = len(src)
            maps[a] = gather_map(src, first.sizes[a])
            if rf is not None:
                rf[a] = _AxisRF(rf[a].r, rf[a].s * step, rf[a].p - start * rf[a].s)
        if max(new_axes) >= len(out_shape) or (out_shape[new_axes[0]], out_shape[new_axes[1]]) != (
            sizes[0],
            sizes[1],
        ):
            return _NodeRF(None, None, None)  # the shapes say otherwise: not followed
        back = {in_key: (maps[0], maps[1])}
        return _NodeRF(
            (new_axes[0], new_axes[1]),
            (sizes[0], sizes[1]),
            (rf[0], rf[1]) if rf is not None else None,
            first.global_,
            uniform,
            back=back,
        )

    def _index_tensor(self, item: Any) -> torch.Tensor | None:
        """The value of an index tensor that does not depend on the image (a buffer or a constant)."""
        if not hasattr(item, "op"):
            return None
        key = self.graph.node_key(item)
        if key is None:
            value = self.graph.constant(item)
        elif key in self.info and self.info[key].const:
            value = self.values.get(key)
        else:
            return None
        return value if isinstance(value, torch.Tensor) else None

    def _cat(
        self, node: GraphNode, spatial: list[tuple[str, _NodeRF]], out_shape: tuple[int, ...]
    ) -> _NodeRF:
        axes = spatial[0][1].axes
        assert axes is not None
        dim = int(_arg(node, 1, "dim", 0)) % len(out_shape)
        if dim in axes:
            return _NodeRF(None, None, None)  # concatenation along a spatial axis: not followed
        return self._pointwise(spatial, out_shape)

    def _pointwise(
        self,
        spatial: list[tuple[str, _NodeRF]],
        out_shape: tuple[int, ...],
        axes: tuple[int, int] | None = None,
    ) -> _NodeRF:
        axes = axes or spatial[0][1].axes
        assert axes is not None
        sizes = (out_shape[axes[0]], out_shape[axes[1]]) if max(axes) < len(out_shape) else None
        back: dict[str, tuple[IndexMap, IndexMap] | None] = {}
        local = []
        gated = False
        for key, info in spatial:
            if info.sizes == sizes:
                back[key] = None
                local.append(info)
            elif (
                info.sizes is not None
                and sizes is not None
                and all(s == 1 or s == t for s, t in zip(info.sizes, sizes, strict=True))
            ):
                # broadcast (a 1x1 gate such as squeeze-and-excitation): every output reads its only position
                back[key] = (
                    broadcast_map if info.sizes[0] != sizes[0] else identity_map,
                    broadcast_map if info.sizes[1] != sizes[1] else identity_map,
                )
                if info.global_:
                    gated = True  # the local field stays meaningful; the gate adds global context
                else:
                    local.append(_NodeRF(None, None, None))
            else:
                return _NodeRF(None, None, None)
        if not local:  # only a global gate, broadcast (expand_as): it sees everything
            return _NodeRF(axes, sizes, None, global_=True, back=back)
        rf, global_, uniform = _merge(local)
        return _NodeRF(axes, sizes, rf, global_, uniform, gated, back)


def analyse(graph: LayerGraph, values: dict[str, Any]) -> dict[str, _NodeRF]:
    """Receptive-field facts of every layer node of ``graph`` (values: meta outputs from the summary)."""
    return _Analyzer(graph, values).run()


def to_receptive_field(info: _NodeRF | None) -> ReceptiveField | None:
    if info is None:
        return None
    if info.global_:
        return ReceptiveField(None, None, None, global_=True)
    if info.rf is None:
        return None
    h, w = info.rf
    return ReceptiveField(
        (int(h.r), int(w.r)),
        (as_fraction(h.s), as_fraction(w.s)),
        (as_fraction(h.p), as_fraction(w.p)),
        uniform=info.uniform,
        gated=info.gated,
    )


def attach_receptive_fields(summary: Summary, graph: LayerGraph, values: dict[str, Any]) -> None:
    """Fill ``row.rf`` of every row of ``summary`` (containers take their output layer's field)."""
    info = analyse(graph, values)
    for row in summary.rows:
        key = row.name
        if key in graph.containers:
            key = graph.containers[key].output_key or key
        row.rf = to_receptive_field(info.get(key))
