"""Loading a model by name or file: the dispatch over every model source, and the spec and checkpoint paths."""

from __future__ import annotations

import contextlib
import difflib
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from torch import nn

from cnnviz.core.errors import ModelLoadError
from cnnviz.core.images import Preprocess
from cnnviz.core.models.files import (
    SAFETENSORS_SUFFIX,
    _existing_file,
    _exported_input_shape,
    _is_weights_default,
    _is_weights_none,
    _load_export_program,
    _load_state,
    _load_torch_file,
    _load_torchscript,
    _load_weights_file,
    _zip_member_names,
)
from cnnviz.core.models.loaded import LoadedModel, _shape3
from cnnviz.core.models.spec import build_model, load_spec, spec_preprocess
from cnnviz.core.models.torchvision import _torchvision, torchvision_model_names
from cnnviz.core.resources import resource_path

DEFAULT_MODEL = "default"

MODEL_FILE_SUFFIXES: tuple[str, ...] = (
    ".json", ".pt", ".pth", ".ckpt", ".pt2", ".ts", ".torchscript", ".bin", ".safetensors", ".onnx",
)  # fmt: skip
"""File suffixes that name a model (``.bin`` is a state_dict, as torch hubs name them)."""

_FALLBACK_NOTE = (
    "the trained digits model is not installed; using its architecture with random weights"
)


def _from_spec(spec: dict[str, Any], name: str, source: str) -> LoadedModel:
    module = build_model(spec).eval()
    labels = spec.get("labels")
    return LoadedModel(
        module, spec.get("name") or name, _shape3(spec["input_shape"]), spec_preprocess(spec),
        list(labels) if labels else None, spec, source,
    )  # fmt: skip


def _from_checkpoint(
    path: Path, name: str | None = None, source: str = "checkpoint"
) -> LoadedModel:
    from cnnviz.core.models.checkpoint import read_checkpoint

    ckpt = read_checkpoint(path)
    if ckpt is None:
        raise ModelLoadError(f"{path} is not a cnnviz checkpoint")
    spec = dict(ckpt["spec"])
    if ckpt.get("labels"):
        spec["labels"] = list(ckpt["labels"])
    loaded = _from_spec(spec, name or path.stem, source)
    _load_state(loaded.module, ckpt["state_dict"], path, "its architecture")
    loaded.module.eval()
    if ckpt.get("preprocess"):
        loaded.preprocess = Preprocess.from_dict(ckpt["preprocess"])
    loaded.metadata = {"path": str(path), "metrics": ckpt.get("metrics") or {}}
    return loaded


def _generic(module: nn.Module, path: Path, source: str, input_shape: Any) -> LoadedModel:
    shape = _shape3(input_shape) if input_shape is not None else (3, 224, 224)
    c, h, w = shape
    if c == 3 and h == w and h >= 64:
        preprocess = Preprocess.imagenet(size=h, resize_size=int(round(h * 256 / 224)))
    else:
        preprocess = spec_preprocess(
            {"input_shape": shape}
        )  # what a spec without "preprocess" gets
    with contextlib.suppress(NotImplementedError):  # exported programs fix their mode at export
        module.eval()
    return LoadedModel(
        module, path.stem, shape, preprocess, None, None, source, {"path": str(path)}
    )


def load_model(
    spec: str | os.PathLike[str] | nn.Module | Mapping[str, Any],
    weights: Any = "default",
    trust: bool = False,
    *,
    input_shape: tuple[int, int, int] | None = None,
    progress: Any = None,
) -> LoadedModel:
    """Load a model by name or file, ready to run.

    ``spec``: ``"default"`` (the bundled digits model), a torchvision classification model name
    (``"resnet18"``), a timm model (``"timm:convnext_nano"``), an architecture spec JSON, a cnnviz checkpoint
    (``.pt``, or ``.safetensors`` with its ``.json``), a TorchScript archive, a ``torch.export`` ``.pt2``
    program, an ``nn.Module`` (a timm one keeps timm's input size and preprocessing), or an edit patch (a
    ``.json`` file or a dict with ``base`` and ``edits``, see :mod:`cnnviz.core.models.edits.patch`). ``weights``:
    ``"default"`` (torchvision's or timm's pretrained weights from their cache, downloaded when online),
    ``"none"``/``None`` (random initialisation) or a state_dict file, ``.pth`` or ``.safetensors`` (for a
    torchvision or timm name or a spec). Files that need full unpickling are refused unless ``trust`` is True.
    ``input_shape`` (C, H, W) overrides what the file implies. ``progress(done, total)`` follows downloads.
    """
    from cnnviz.core.validate import check_load_model_arguments

    check_load_model_arguments(spec, weights, trust, input_shape, progress)
    if isinstance(spec, Mapping):
        from cnnviz.core.models.edits.load import load_patch
        from cnnviz.core.models.edits.patch import is_patch

        if not is_patch(spec):
            raise ModelLoadError(
                "a model given as a dict must be an edit patch with 'base' and 'edits'; "
                "save a spec as a .json file and give its path"
            )
        return load_patch(spec, weights, trust, input_shape=input_shape, progress=progress)
    if isinstance(spec, nn.Module):
        module = spec.eval()
        from cnnviz.core.models.timm import is_timm_module, loaded_timm_module

        if is_timm_module(module):  # its own input size, preprocessing and labels
            arch = (getattr(module, "pretrained_cfg", None) or {}).get("architecture")
            name = f"timm:{arch}" if arch else type(spec).__name__
            loaded = loaded_timm_module(module, name, "module", {})
            return _with_shape(loaded, input_shape)
        return _generic(module, Path(type(spec).__name__), "module", input_shape)
    text = str(spec)
    from cnnviz.core.models.timm import is_timm_name, load_timm

    if is_timm_name(text):
        return _with_shape(load_timm(text, weights, progress, trust), input_shape)
    if text == DEFAULT_MODEL:
        loaded = _default_model()
        _apply_weights_file(loaded, weights, trust)
        return _with_shape(loaded, input_shape)
    path = Path(text).expanduser()
    looks_like_file = path.suffix != "" or os.sep in text or os.path.lexists(path)
    if not looks_like_file:
        names = torchvision_model_names()
        if text in names:
            return _with_shape(_torchvision(text, weights, progress), input_shape)
        close = difflib.get_close_matches(text, names, n=4, cutoff=0.6)
        hint = f"; did you mean {', '.join(close)}?" if close else (
            "; give a file (spec .json, checkpoint .pt, TorchScript, .pt2), a torchvision model name "
            "such as resnet18, or a timm model as timm:NAME"
        )  # fmt: skip
        raise ModelLoadError(f"unknown model '{text}'{hint}")
    path = _existing_file(path, "model file")
    if path.suffix.lower() == ".onnx":
        from cnnviz.core.models.onnx import load_onnx_file

        return load_onnx_file(path, weights, input_shape)
    if path.suffix.lower() == SAFETENSORS_SUFFIX or (
        path.suffix.lower() == ".json" and _sidecar_weights(path) is not None
    ):
        weights_path = path if path.suffix.lower() == SAFETENSORS_SUFFIX else _sidecar_weights(path)
        assert weights_path is not None
        return _with_shape(_from_safetensors(weights_path), input_shape)
    if path.suffix.lower() == ".json":
        data = load_spec(path)
        from cnnviz.core.models.edits.patch import is_patch, parse_patch

        if is_patch(data):  # a base model and edits: the base takes the weights
            from cnnviz.core.models.edits.load import load_patch

            patch = parse_patch(data, path.parent)
            return load_patch(patch, weights, trust, input_shape=input_shape, progress=progress)
        loaded = _from_spec(data, path.stem, "spec")
        _apply_weights_file(loaded, weights, trust)
        return _with_shape(loaded, input_shape)
    members = _zip_member_names(path)
    if path.suffix.lower() == ".pt2" or any(n.endswith("/archive_format") for n in members):
        module = _load_export_program(path, trust)
        return _generic(module, path, "export", input_shape or _exported_input_shape(module))
    if any(n.endswith("constants.pkl") or "/code/" in n for n in members):
        module = _load_torchscript(path)
        return _generic(module, path, "torchscript", input_shape)
    obj = _load_torch_file(path, trust)
    from cnnviz.core.models.checkpoint import is_checkpoint

    if is_checkpoint(obj):
        return _with_shape(_from_checkpoint(path), input_shape)
    if isinstance(obj, nn.Module):
        return _generic(obj, path, "pickled module", input_shape)
    if isinstance(obj, dict):
        raise ModelLoadError(
            f"{path} holds only weights (a state_dict); name its architecture too, e.g. "
            f"--model resnet18 --weights {path.name} or --model arch.json --weights {path.name}"
        )
    raise ModelLoadError(f"{path} holds a {type(obj).__name__}, not a model")


def _sidecar_weights(path: Path) -> Path | None:
    """The ``.safetensors`` beside ``path`` when ``path`` is a checkpoint's JSON sidecar, else None."""
    from cnnviz.core.errors import CnnvizError
    from cnnviz.core.jsonio import read_json
    from cnnviz.core.models.checkpoint import is_checkpoint

    weights = path.with_suffix(SAFETENSORS_SUFFIX)
    if not weights.is_file():
        return None
    try:
        return weights if is_checkpoint(read_json(path)) else None
    except CnnvizError:
        return None  # not JSON: the spec reader says what is wrong with it


def _from_safetensors(path: Path) -> LoadedModel:
    """A ``.safetensors`` checkpoint pair as a full model; bare weights say how to name their architecture."""
    from cnnviz.core.models.checkpoint import read_checkpoint, sidecar_path

    if read_checkpoint(path) is None:  # checks the header: a damaged file is named as such
        raise ModelLoadError(
            f"{path} holds only weights (no {sidecar_path(path).name} beside it names the "
            f"architecture); name it too, e.g. --model resnet18 --weights {path.name}, "
            f"--model timm:NAME --weights {path.name} or --model arch.json --weights {path.name}"
        )
    return _from_checkpoint(path, path.stem, "checkpoint")


def _default_model() -> LoadedModel:
    """The bundled digits model; its architecture with random weights (and a note) if the weights are missing."""
    path = resource_path("models", "digits.pt")
    if path.is_file():
        return _from_checkpoint(path, "default (digits)", "bundled")
    arch = resource_path("models", "digits_arch.json")
    if not arch.is_file():
        raise ModelLoadError(f"the bundled default model is missing ({path}); reinstall cnnviz")
    loaded = _from_spec(load_spec(arch), "default (digits)", "bundled")
    loaded.note = _FALLBACK_NOTE
    return loaded


def _apply_weights_file(loaded: LoadedModel, weights: Any, trust: bool) -> None:
    """Load a state_dict file named by ``weights`` into ``loaded``; "default"/"none" keep its own weights."""
    if _is_weights_none(weights) or _is_weights_default(weights):
        return
    path = _existing_file(weights, "weights file")
    state = _load_weights_file(path, trust)
    _load_state(loaded.module, state, path, loaded.name)
    loaded.module.eval()
    loaded.metadata["weights"] = str(path)


def _with_shape(loaded: LoadedModel, input_shape: Any) -> LoadedModel:
    if input_shape is None:
        return loaded
    shape = _shape3(input_shape)
    if shape == loaded.input_shape:
        return loaded
    if shape[0] != loaded.input_shape[0]:
        raise ModelLoadError(
            f"{loaded.name} takes {loaded.input_shape[0]}-channel input, not {shape[0]} channels"
        )
    pre = loaded.preprocess
    loaded.preprocess = Preprocess(pre.channels, (shape[1], shape[2]), pre.mode,
                                   None if pre.mode != "resize_crop" else int(round(min(shape[1:]) * 256 / 224)),
                                   pre.mean, pre.std, pre.interpolation, pre.auto_invert)  # fmt: skip
    loaded.input_shape = shape
    return loaded
