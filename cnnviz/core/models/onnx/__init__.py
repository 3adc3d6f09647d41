"""ONNX files as runnable torch modules: cnnviz's own converter into a ``torch.fx.GraphModule``.

Each ONNX node becomes a real torch layer where torch has one (``nn.Conv2d``, ``nn.BatchNorm2d``,
``nn.MaxPool2d``, ``nn.Linear``, ``nn.ReLU6`` ...) named after the node, so the table, the feature maps and the
receptive fields speak the file's own names; arithmetic and plumbing (``Add``, ``Concat``, ``Reshape``) become
torch functions, which the analysis already understands. Shape arithmetic is folded at load time for the
input size in effect (the file's own, or the one given), so the module runs a batch of one.

Why not onnx2torch: it stops on files torch itself exports (``Identity`` at opset 19), wraps every operator in
its own module type (``OnnxPadStatic``, ``OnnxBinaryMathOperation``), which no layer table or receptive-field
rule knows, and computes what it does not support approximately rather than refusing it. Here every attribute
is read or refused (see :mod:`cnnviz.core.models.onnx.ops`).

``onnx`` is an optional dependency (``pip install 'cnnviz[onnx]'``), imported only when an ONNX file is opened.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from cnnviz.core import text
from cnnviz.core.errors import CnnvizError
from cnnviz.core.images import Preprocess
from cnnviz.core.models.loaded import LoadedModel
from cnnviz.core.models.onnx.convert import convert, graph_input, resolve_input_shape
from cnnviz.core.models.onnx.reading import OnnxModelError, read_model

__all__ = ["OnnxModelError", "is_onnx_file", "load_onnx", "load_onnx_file", "sidecar_path"]

ONNX_SUFFIX = ".onnx"
SIDECAR_SUFFIX = ".preprocess.json"
_SIDECAR_KEYS = ("size", "mode", "resize_size", "mean", "std", "interpolation", "labels")


def sidecar_path(path: Path) -> Path:
    """Where the optional preprocessing of ``model.onnx`` lives: ``model.preprocess.json`` next to it."""
    return path.with_name(path.stem + SIDECAR_SUFFIX)


def load_onnx(path: Path, input_shape: tuple[int, ...] | None = None) -> LoadedModel:
    """The ONNX file ``path`` converted to a torch module, with its input size and preprocessing.

    ``input_shape`` (C, H, W) is needed when the file leaves a dimension open and overrides the file's
    otherwise. Preprocessing is none (pixels scaled to 0..1, stretched to the input size) unless a sidecar
    ``<stem>.preprocess.json`` gives ``mean``, ``std``, ``size``, ``mode`` (``resize``, ``resize_crop``),
    ``resize_size`` or ``labels``.
    """
    model = read_model(path)
    name, dims = graph_input(model)
    shape = resolve_input_shape(dims, input_shape, name)
    from cnnviz.core.budget import check_input

    check_input(shape)
    module, builder = convert(model, shape, path)
    notes = []
    preprocess, labels, from_sidecar = _preprocess(path, shape)
    if not from_sidecar:
        notes.append(
            "an ONNX file does not say how its pictures were prepared, so none is applied (pixels "
            f"0..1, stretched to {text.dims(shape[1:])}); put mean, std and size in {sidecar_path(path).name} "
            "next to it to change that"
        )
    kinds = {n.op_type for n in model.graph.node}
    if "Conv" in kinds and "BatchNormalization" not in kinds:
        notes.append(
            "the parameters are the file's own: exporters fold batch normalisation into the convolutions, "
            "so the count can be smaller than the original torch model's"
        )
    loaded = LoadedModel(
        module, path.stem, shape, preprocess, labels, None, "onnx",  # type: ignore[arg-type]
        {"path": str(path), "opset": builder.opset, "onnx_names": dict(builder.names)},
    )  # fmt: skip
    loaded.note = "; ".join(notes) if notes else None
    return loaded


def _preprocess(path: Path, shape: tuple[int, ...]) -> tuple[Preprocess, list[str] | None, bool]:
    channels = shape[0] if shape[0] in (1, 3) else 3
    size = (shape[1], shape[2]) if len(shape) == 3 else (1, 1)
    plain = Preprocess(channels, size, "resize", None, (0.0,), (1.0,))
    side = sidecar_path(path)
    if not side.is_file():
        return plain, None, False
    try:
        data = json.loads(side.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise OnnxModelError(f"{side} is not readable JSON; fix or remove it") from exc
    if not isinstance(data, dict) or set(data) - set(_SIDECAR_KEYS):
        raise OnnxModelError(
            f"{side} must be a JSON object with some of the keys {', '.join(_SIDECAR_KEYS)}"
        )
    labels = data.pop("labels", None)
    if labels is not None and not (
        isinstance(labels, list) and all(isinstance(v, str) for v in labels)
    ):
        raise OnnxModelError(f"'labels' in {side} must be a list of class names")
    settings = plain.to_dict() | data
    if tuple(settings["size"]) != size:
        raise OnnxModelError(
            f"{side} asks for pictures of {text.pair(settings['size'])}, but the model takes "
            f"{text.pair(size)}; give the same size or --input-size"
        )
    try:
        return Preprocess.from_dict(settings), labels, True
    except CnnvizError as exc:
        raise OnnxModelError(f"{side}: {exc}") from exc


def is_onnx_file(path: Any) -> bool:
    """True for a path named ``*.onnx``."""
    return str(path).lower().endswith(ONNX_SUFFIX)


def load_onnx_file(path: Path, weights: Any, input_shape: tuple[int, ...] | None) -> LoadedModel:
    """:func:`load_onnx` for ``load_model``: an ONNX file carries its own weights, so only "default"/"none" fit."""
    if weights is not None and not (
        isinstance(weights, str) and weights.lower() in ("default", "none", "pretrained", "random")
    ):
        raise OnnxModelError(
            f"{path.name} carries its own weights; an ONNX file takes no --weights file"
        )
    return load_onnx(path, input_shape)
