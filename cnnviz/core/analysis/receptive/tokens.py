"""Token sequences: a map's image positions flattened into one axis, as vision transformers do.

A reshape that merges a map's H and W axes (in that order) into one axis makes that axis a sequence with one
token per image position. What a single token sees is not followed here (its field stays unknown), but where the
sequence axis is, and that it still holds every position of the image, is: per-token operations (norms and
linear layers over the channels, elementwise operations, permutes, reshapes and splits that leave the axis
whole, constant tokens such as a class token concatenated to it) hand it on. Attention that reads the whole
sequence then gives every output token all of the image's tokens: it sees the whole input, exactly as for a
global pooling. Anything else that touches the sequence axis makes the field unknown, never a guess.

Windowed attention on a map (torchvision's Swin) whose one window holds the whole map is attention over the
whole sequence as well; with several windows each unit sees its own window, which is not a per-layer field
(measured per unit instead).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from torch import fx, nn

from cnnviz.core.analysis.graph import GraphNode
from cnnviz.core.analysis.receptive.facts import (
    _RESHAPES,
    _SPLITS,
    _arg,
    _NodeRF,
    _prod,
    _shape,
    is_pointwise,
    permute_order,
    same_dim,
)
from cnnviz.core.analysis.receptive.indexmaps import every_map


def merged_token_axis(
    in_shape: tuple[int, ...], out_shape: tuple[int, ...], axes: tuple[int, int]
) -> int | None:
    """The output dim of a reshape that merges the input's adjacent (H, W) dims, row by row, into one."""
    h, w = axes
    if w != h + 1:
        return None
    return same_dim(in_shape[h] * in_shape[w], _prod(in_shape[:h]), out_shape)


def token_rule(
    node: GraphNode,
    in_keys: list[str],
    info: Mapping[str, _NodeRF],
    values: Mapping[str, Any],
    key_of: Callable[[Any], str | None],
) -> _NodeRF:
    """The facts of a layer that reads at least one token sequence (``info[k].tokens`` set)."""
    unknown = _NodeRF(None, None, None)
    module = node.module
    name = node.type.split(".")[-1].lower()
    inputs = [(k, info[k]) for k in in_keys]
    if any(i.axes is not None for _, i in inputs) or any(
        i.tokens is None and not i.global_ for _, i in inputs
    ):
        return unknown  # a sequence next to a map, or next to a value whose field is unknown: not followed
    if isinstance(module, nn.MultiheadAttention) or name == "scaled_dot_product_attention":
        return _attention(node, module, info, values, key_of)
    sequences = [(k, i) for k, i in inputs if i.tokens is not None]
    if len(sequences) < len(inputs):
        # a value that already sees the whole image, mixed into every element: so does the result
        return _NodeRF(None, None, None, global_=True) if _is_pointwise(node, name) else unknown
    axis = sequences[0][1].tokens
    assert axis is not None
    if any(i.tokens != axis for _, i in sequences):
        return unknown
    if name == "getitem" and sequences[0][1].parts:
        # one piece of a split that left the sequence whole
        assert node.fx_node is not None
        if not isinstance(node.fx_node.args[1], int):
            return unknown
        return _NodeRF(None, None, None, tokens=axis)
    first_key = sequences[0][0]
    in_shape = _shape(values.get(first_key))
    out_value = values.get(node.key)
    if in_shape is None:
        return unknown
    if isinstance(out_value, (tuple, list)):
        return _split(node, name, axis, in_shape, out_value)
    out_shape = _shape(out_value)
    if out_shape is None:
        return unknown
    new_axis = _rule(node, module, name, axis, in_shape, out_shape, len(sequences))
    grown = name == "cat" and new_axis == axis and len(out_shape) == len(in_shape)
    if new_axis is None or new_axis >= len(out_shape):
        return unknown
    if out_shape[new_axis] != in_shape[axis] and not grown:
        return unknown
    return _NodeRF(None, None, None, tokens=new_axis)


def _rule(
    node: GraphNode,
    module: nn.Module | None,
    name: str,
    axis: int,
    in_shape: tuple[int, ...],
    out_shape: tuple[int, ...],
    sequences: int,
) -> int | None:
    """Where the sequence axis is in the output, or None where the op reads across tokens (or is not known)."""
    ndim = len(in_shape)
    if isinstance(module, (nn.Flatten, nn.Unflatten)) or (
        module is None and (name in _RESHAPES or name in ("squeeze", "unsqueeze"))
    ):
        return same_dim(in_shape[axis], _prod(in_shape[:axis]), out_shape)
    if name in ("permute", "transpose", "movedim"):
        return permute_order(node, name, ndim).index(axis)
    if isinstance(module, nn.Linear) or name == "linear":
        return axis if axis != ndim - 1 else None  # over the channels, token by token
    if isinstance(module, nn.LayerNorm) or name == "layer_norm":
        shape = (
            module.normalized_shape
            if isinstance(module, nn.LayerNorm)
            else _arg(node, 1, "normalized_shape", ())
        )
        count = 1 if isinstance(shape, int) else len(shape)
        return axis if axis < ndim - count else None
    if name == "cat":
        dim = int(_arg(node, 1, "dim", 0)) % ndim
        # constant tokens (a class token) joined to the one sequence still leave every position in it
        return axis if dim != axis or sequences == 1 else None
    if _is_pointwise(node, name) and len(out_shape) == ndim:
        return axis
    return None


def _is_pointwise(node: GraphNode, name: str) -> bool:
    return is_pointwise(node.module, name) or node.returns_input


def _split(
    node: GraphNode,
    name: str,
    axis: int,
    in_shape: tuple[int, ...],
    pieces: tuple[Any, ...] | list[Any],
) -> _NodeRF:
    """unbind / chunk / split over another dim (a transformer's q, k, v): each piece keeps the sequence."""
    unknown = _NodeRF(None, None, None)
    ndim = len(in_shape)
    if name == "unbind":
        dim = int(_arg(node, 1, "dim", 0)) % ndim
        new_axis = axis - (dim < axis)
    elif name in _SPLITS:
        position, default = _SPLITS[name]
        dim = int(_arg(node, position, "dim", default)) % ndim
        new_axis = axis
    else:
        return unknown
    shapes = [_shape(p) for p in pieces]
    if dim == axis or any(
        s is None or len(s) <= new_axis or s[new_axis] != in_shape[axis] for s in shapes
    ):
        return unknown
    return _NodeRF(None, None, None, tokens=new_axis, parts=True)


def _attention(
    node: GraphNode,
    module: nn.Module | None,
    info: Mapping[str, _NodeRF],
    values: Mapping[str, Any],
    key_of: Callable[[Any], str | None],
) -> _NodeRF:
    """Attention whose keys and values are the whole sequence, unmasked: every output sees every token."""
    unknown = _NodeRF(None, None, None)
    assert node.fx_node is not None
    args = node.fx_node.args
    if isinstance(module, nn.MultiheadAttention):
        # (query, key, value, key_padding_mask, need_weights, attn_mask, average_attn_weights, is_causal)
        masked = _arg(node, 3, "key_padding_mask", None) is not None
        masked = masked or _arg(node, 5, "attn_mask", None) is not None
        causal = _arg(node, 7, "is_causal", False)
    else:
        # (query, key, value, attn_mask, dropout_p, is_causal, ...)
        masked = _arg(node, 3, "attn_mask", None) is not None
        causal = _arg(node, 5, "is_causal", False)
    if masked or causal is not False or len(args) < 3:
        return unknown  # a mask can keep a token from another: not followed
    for arg in (args[1], args[2]):  # key, value
        key = key_of(arg) if isinstance(arg, fx.Node) else None
        if key is None or key not in info:
            return unknown
        facts = info[key]
        if facts.global_:
            continue
        shape = _shape(values.get(key))
        if facts.tokens is None or shape is None:
            return unknown
        if isinstance(module, nn.MultiheadAttention):
            sequence_axis = 1 if module.batch_first and len(shape) == 3 else 0
        else:
            sequence_axis = len(shape) - 2  # (..., L, E)
        if facts.tokens != sequence_axis:
            return unknown
    return _NodeRF(None, None, None, global_=True)


def whole_window_attention(
    node: GraphNode, in_key: str, first: _NodeRF, out_shape: tuple[int, ...]
) -> _NodeRF:
    """torchvision's ``shifted_window_attention`` on an (N, H, W, C) map: global when one window covers it.

    The map is padded up to whole windows, and the shift is dropped where a window spans the padded map; so
    with ``H <= window[0]`` and ``W <= window[1]`` there is one window, no mask, and every output position
    attends to every input position. Otherwise the field is not derived (the axes stay: the shape does).
    """
    assert node.fx_node is not None
    window = _arg(node, 4, "window_size", None)
    if first.axes != (1, 2) or first.sizes is None or len(out_shape) != 4:
        return _NodeRF(None, None, None)
    kept = _NodeRF(first.axes, first.sizes, None)
    if not isinstance(window, (list, tuple)) or len(window) != 2:
        return kept
    (h, w), (wh, ww) = first.sizes, (int(window[0]), int(window[1]))
    if h > wh or w > ww:
        return kept
    back = {in_key: (every_map(h), every_map(w))}
    return _NodeRF(first.axes, first.sizes, None, global_=True, back=back)
