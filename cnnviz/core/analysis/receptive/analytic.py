"""Per-layer receptive fields on the traced graph: size, effective stride and padding per axis.

Every node of the torch.fx graph gets its field (Araujo, Norris & Sim, Distill 2019) and, for the exact unit
boxes, maps that carry a mask over an output axis back to the axes of its inputs. See the package docstring.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import numpy as np
import torch
from torch import nn

from cnnviz.core.analysis.graph import GraphNode, LayerGraph
from cnnviz.core.analysis.types import ReceptiveField, Summary
from cnnviz.core.models.layertypes import (
    ADAPTIVE_MODULES,
    DIM_MIXERS,
    DIM_REDUCTIONS,
    POINTWISE_FUNCTIONS,
    POINTWISE_MODULES,
    SPATIAL_GLOBAL_MODULES,
    window_geometry,
)

# Maps a boolean mask over one axis of a layer's output to the mask over that axis of one of its inputs.
IndexMap = Callable[[np.ndarray], np.ndarray]


@dataclass
class _AxisRF:
    r: Fraction
    s: Fraction
    p: Fraction


@dataclass
class _NodeRF:
    """What the analysis knows about one layer's output."""

    axes: tuple[int, int] | None  # tensor dims that are (H, W); None: no spatial map
    sizes: tuple[int, int] | None  # (H, W) of the output
    rf: tuple[_AxisRF, _AxisRF] | None  # None with global_ False: unknown
    global_: bool = False
    uniform: bool = True
    gated: bool = False  # multiplied by a global gate (squeeze-and-excitation): depends on everything through it
    # per input key: index maps (H, W) from this node's output axes to that input's axes; None: every position
    back: Mapping[str, tuple[IndexMap, IndexMap] | None] | None = None


# --------------------------------------------------------------------------------------------------------------
# Per-layer analysis


def _tensor_args(node: GraphNode, graph: LayerGraph) -> list[str]:
    """Keys of the layer inputs in argument order (flattening lists, e.g. torch.cat([a, b]))."""
    assert node.fx_node is not None
    keys: list[str] = []

    def visit(a: Any) -> None:
        if isinstance(a, (list, tuple)):
            for v in a:
                visit(v)
        elif hasattr(a, "op"):
            k = graph.node_key(a)
            if k is not None:
                keys.append(k)

    for a in node.fx_node.args:
        visit(a)
    for a in node.fx_node.kwargs.values():
        visit(a)
    return keys


def _arg(node: GraphNode, index: int, name: str, default: Any) -> Any:
    assert node.fx_node is not None
    if name in node.fx_node.kwargs:
        return node.fx_node.kwargs[name]
    if len(node.fx_node.args) > index:
        return node.fx_node.args[index]
    return default


def _pair(v: Any) -> tuple[int, int]:
    if isinstance(v, int):
        return (v, v)
    v = tuple(int(x) for x in v)
    return (v[0], v[0]) if len(v) == 1 else (v[-2], v[-1])


def _window_map(k: int, s: int, p: int, d: int, n_in: int) -> IndexMap:
    taps = np.arange(k) * d

    def back(mask: np.ndarray) -> np.ndarray:
        out = np.zeros(n_in, dtype=bool)
        ys = np.flatnonzero(mask)
        if ys.size:
            idx = (ys[:, None] * s - p + taps[None, :]).ravel()
            out[idx[(idx >= 0) & (idx < n_in)]] = True
        return out

    return back


def _transposed_map(k: int, s: int, p: int, d: int, n_in: int) -> IndexMap:
    # output y = i*s - p + t*d  <=>  i = (y + p - t*d) / s when that is a whole number
    taps = np.arange(k) * d

    def back(mask: np.ndarray) -> np.ndarray:
        out = np.zeros(n_in, dtype=bool)
        ys = np.flatnonzero(mask)
        if ys.size:
            num = (ys[:, None] + p - taps[None, :]).ravel()
            ok = num % s == 0
            idx = num[ok] // s
            out[idx[(idx >= 0) & (idx < n_in)]] = True
        return out

    return back


def _adaptive_map(n_in: int, n_out: int) -> IndexMap:
    starts = np.array([(i * n_in) // n_out for i in range(n_out)])
    ends = np.array([-((-(i + 1) * n_in) // n_out) for i in range(n_out)])  # ceil, exclusive

    def back(mask: np.ndarray) -> np.ndarray:
        out = np.zeros(n_in, dtype=bool)
        for y in np.flatnonzero(mask):
            out[starts[y] : ends[y]] = True
        return out

    return back


def _gather_map(source: np.ndarray, n_in: int) -> IndexMap:
    """Output position y reads input positions source[y] (a list of arrays or an int array)."""

    def back(mask: np.ndarray) -> np.ndarray:
        out = np.zeros(n_in, dtype=bool)
        idx = source[mask].ravel() if source.ndim > 1 else source[mask]
        idx = idx[(idx >= 0) & (idx < n_in)]
        out[idx] = True
        return out

    return back


def _identity_map(mask: np.ndarray) -> np.ndarray:
    return mask


def _broadcast_map(mask: np.ndarray) -> np.ndarray:
    # a size-1 axis broadcast over the output: any output position reads position 0
    return np.array([bool(mask.any())])


def _merge(rfs: list[_NodeRF]) -> tuple[tuple[_AxisRF, _AxisRF] | None, bool, bool]:
    """Merge paths by their extreme edges (Araujo et al.). Returns (rf, global, uniform)."""
    if any(r.global_ for r in rfs):
        return None, True, True
    known = [r.rf for r in rfs if r.rf is not None]
    if len(known) != len(rfs) or not rfs:
        return None, False, True
    merged = []
    uniform = all(r.uniform for r in rfs)
    for axis in range(2):
        items = [rf[axis] for rf in known]
        s = items[0].s
        if any(i.s != s for i in items):
            uniform = False
            s = min(i.s for i in items)
        left = min(-i.p for i in items)
        right = max(-i.p + i.r - 1 for i in items)
        merged.append(_AxisRF(right - left + 1, s, -left))
    return (merged[0], merged[1]), False, uniform


def _conv_like(rf: _AxisRF, k: int, s: int, p: int, d: int) -> _AxisRF:
    return _AxisRF(rf.r + (d * (k - 1)) * rf.s, rf.s * s, rf.p + p * rf.s)


def _shape(value: Any) -> tuple[int, ...] | None:
    if isinstance(value, torch.Tensor):
        return tuple(value.shape)
    return None


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

    def _spatial_inputs(self, keys: list[str]) -> list[tuple[str, _NodeRF]]:
        return [(k, self.info[k]) for k in keys if k in self.info and self.info[k].axes is not None]

    def _analyse(self, node: GraphNode) -> _NodeRF:
        out_shape = _shape(self.values.get(node.key))
        if node.kind == "input":
            if out_shape is None or len(out_shape) != 4:
                return _NodeRF(None, None, None)
            one = _AxisRF(Fraction(1), Fraction(1), Fraction(0))
            return _NodeRF((2, 3), (out_shape[2], out_shape[3]), (one, one))
        if out_shape is None:
            return _NodeRF(None, None, None)
        in_keys = _tensor_args(node, self.graph)
        spatial = self._spatial_inputs(in_keys)
        if not spatial:
            # constants or non-spatial inputs only (e.g. after flatten): nothing spatial to follow
            globals_ = [self.info[k] for k in in_keys if k in self.info and self.info[k].global_]
            if globals_:
                return _NodeRF(None, None, None, global_=True)
            return _NodeRF(None, None, None)
        module = node.module
        op = node.type.split(".")[-1]
        name = op.lower()
        first_key, first = spatial[0]

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
        # ----- layers that look at every position
        if isinstance(
            module, (nn.Flatten, nn.Linear, nn.Bilinear, nn.LayerNorm, nn.Softmax, nn.LogSoftmax)
        ) or (
            name in ("flatten", "linear", "view", "reshape")
            or name in DIM_REDUCTIONS
            or name in DIM_MIXERS
        ):
            return self._reduce_or_keep(node, module, name, first_key, first, out_shape, spatial)
        if isinstance(module, SPATIAL_GLOBAL_MODULES) or name in ("instance_norm", "group_norm"):
            return _NodeRF(first.axes, first.sizes, None, global_=True)
        if name in ("permute", "transpose", "movedim"):
            return self._permute(node, name, first_key, first, out_shape)
        if name in ("getitem", "squeeze", "unsqueeze"):
            return self._index(node, name, first_key, first, out_shape)
        if name == "cat":
            return self._cat(node, spatial, out_shape)
        if isinstance(module, POINTWISE_MODULES) or (
            module is None and name in POINTWISE_FUNCTIONS
        ):
            return self._pointwise(spatial, out_shape)
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
        if first.axes != (2, 3) or len(out_shape) != 4 or first.sizes is None:
            return _NodeRF(None, None, None)
        sizes = (out_shape[2], out_shape[3])
        maps = []
        for a in range(2):
            if transposed:
                maps.append(_transposed_map(k[a], s[a], p[a], d[a], first.sizes[a]))
            else:
                maps.append(_window_map(k[a], s[a], p[a], d[a], first.sizes[a]))
        back = {in_key: (maps[0], maps[1])}
        if first.global_:
            return _NodeRF((2, 3), sizes, None, global_=True, back=back)
        if first.rf is None:
            return _NodeRF((2, 3), sizes, None, back=back)
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
                        src.s / s[a],
                        src.p - (p[a] - d[a] * (k[a] - 1)) * src.s / s[a],
                    )
                )
                uniform = uniform and s[a] == 1
            else:
                rf.append(_conv_like(src, k[a], s[a], p[a], d[a]))
        return _NodeRF((2, 3), sizes, (rf[0], rf[1]), uniform=uniform, back=back)

    def _adaptive(self, in_key: str, first: _NodeRF, out_shape: tuple[int, ...]) -> _NodeRF:
        if first.axes != (2, 3) or first.sizes is None or len(out_shape) != 4:
            return _NodeRF(None, None, None)
        sizes = (out_shape[2], out_shape[3])
        back = {
            in_key: (
                _adaptive_map(first.sizes[0], sizes[0]),
                _adaptive_map(first.sizes[1], sizes[1]),
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
            maps.append(_gather_map(src, n_in))
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
            maps.append(_gather_map(y, n_in))
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
        ndim = in_val.dim() if isinstance(in_val, torch.Tensor) else len(out_shape)
        touched: set[int]
        if isinstance(module, (nn.Linear, nn.Bilinear)) or name == "linear":
            touched = {ndim - 1}
        elif isinstance(module, nn.LayerNorm):
            touched = set(range(ndim - len(module.normalized_shape), ndim))
        elif name == "layer_norm":
            shape = _arg(node, 1, "normalized_shape", ())
            touched = set(range(ndim - len(shape), ndim))
        elif isinstance(module, nn.Flatten) or name == "flatten":
            start = (
                module.start_dim
                if isinstance(module, nn.Flatten)
                else _arg(node, 1, "start_dim", 0)
            )
            end = module.end_dim if isinstance(module, nn.Flatten) else _arg(node, 2, "end_dim", -1)
            start, end = start % ndim, end % ndim
            touched = set(range(start, end + 1)) if end > start else set()
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
        elif name in ("view", "reshape"):
            if not isinstance(in_val, torch.Tensor):
                return _NodeRF(None, None, None)
            touched = set(range(ndim)) if tuple(out_shape) != tuple(in_val.shape) else set()
        else:  # reductions
            dim = _arg(node, 1, "dim", None)
            if dim is None:
                touched = set(range(ndim))
            else:
                dims = dim if isinstance(dim, (list, tuple)) else [dim]
                touched = {int(v) % ndim for v in dims}
        if touched & set(first.axes) or first.global_:
            return _NodeRF(None, None, None, global_=True)
        # position-wise over the spatial axes; for reductions without keepdim the axes shift down
        axes = first.axes
        if name in DIM_REDUCTIONS and not _arg(node, 2, "keepdim", False):
            axes = (
                axes[0] - sum(1 for t in touched if t < axes[0]),
                axes[1] - sum(1 for t in touched if t < axes[1]),
            )
        return self._pointwise(spatial, out_shape, axes)

    def _permute(
        self, node: GraphNode, name: str, in_key: str, first: _NodeRF, out_shape: tuple[int, ...]
    ) -> _NodeRF:
        assert first.axes is not None
        ndim = len(out_shape)
        assert node.fx_node is not None
        fx_args: tuple[Any, ...] = node.fx_node.args  # fx arguments: checked where used
        if name == "permute":
            dims = fx_args[1:] if len(fx_args) > 2 or isinstance(fx_args[1], int) else fx_args[1]
            dims = [int(v) % ndim for v in dims]
            order = dims
        else:  # transpose(a, b) / movedim(a, b)
            a, b = int(fx_args[1]) % ndim, int(fx_args[2]) % ndim
            order = list(range(ndim))
            if name == "transpose":
                order[a], order[b] = order[b], order[a]
            else:
                order.pop(a)
                order.insert(b, a)
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
        # getitem: plain int / slice / None / Ellipsis indexing
        index = fx_args[1]
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
            return _NodeRF(None, None, None)  # tensor indexing: unknown
        for d in range(in_dim, ndim_in):
            if d in first.axes:
                new_axes.append(out_dim + d - in_dim)
        if len(new_axes) != 2:
            return _NodeRF(None, None, None)
        sizes = list(first.sizes)
        maps: list[IndexMap] = [_identity_map, _identity_map]
        rf = list(first.rf) if first.rf is not None else None
        uniform = first.uniform
        for a, sl in offsets.items():
            start, stop, step = sl.indices(first.sizes[a])
            if (start, stop, step) == (0, first.sizes[a], 1):
                continue
            src = np.arange(start, stop, step)
            sizes[a] = len(src)
            maps[a] = _gather_map(src, first.sizes[a])
            if rf is not None:
                rf[a] = _AxisRF(rf[a].r, rf[a].s * step, rf[a].p - start * rf[a].s)
        back = {in_key: (maps[0], maps[1])}
        return _NodeRF(
            (new_axes[0], new_axes[1]),
            (sizes[0], sizes[1]),
            (rf[0], rf[1]) if rf is not None else None,
            first.global_,
            uniform,
            back=back,
        )

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
                    _broadcast_map if info.sizes[0] != sizes[0] else _identity_map,
                    _broadcast_map if info.sizes[1] != sizes[1] else _identity_map,
                )
                if info.global_:
                    gated = True  # the local field stays meaningful; the gate adds global context
                else:
                    local.append(_NodeRF(None, None, None))
            else:
                return _NodeRF(None, None, None)
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
        (int(h.r), int(w.r)), (h.s, w.s), (h.p, w.p), uniform=info.uniform, gated=info.gated
    )


def attach_receptive_fields(summary: Summary, graph: LayerGraph, values: dict[str, Any]) -> None:
    """Fill ``row.rf`` of every row of ``summary`` (containers take their output layer's field)."""
    info = analyse(graph, values)
    for row in summary.rows:
        key = row.name
        if key in graph.containers:
            key = graph.containers[key].output_key or key
        row.rf = to_receptive_field(info.get(key))
