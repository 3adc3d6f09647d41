"""timm's models by name (``timm:NAME``): built in code, pretrained weights through timm's own Hugging Face
Hub mechanism and cache, and each model's input size, preprocessing and labels from its ``pretrained_cfg``.

timm is optional (``pip install cnnviz[timm]``): nothing here imports it until a timm model is asked for.
"""

from __future__ import annotations

import difflib
import math
import sys
import warnings
from pathlib import Path
from typing import Any

import torch
from torch import nn

from cnnviz.core.errors import ModelLoadError
from cnnviz.core.images import Preprocess
from cnnviz.core.models.files import (
    _existing_file,
    _is_weights_default,
    _is_weights_none,
    _load_state,
    _load_weights_file,
)
from cnnviz.core.models.loaded import LoadedModel

TIMM_PREFIX = "timm:"
"""Model names with this prefix are timm models: ``timm:resnet50d``, ``timm:convnext_nano.in12k_ft_in1k``."""

INSTALL_HINT = "pip install cnnviz[timm]"
_DEFAULT_CROP_PCT = 0.875  # timm.data.DEFAULT_CROP_PCT: what a config without crop_pct means
_INTERPOLATIONS = ("nearest", "bilinear", "bicubic", "lanczos", "box", "hamming")


def _timm() -> Any:
    """The timm package, or a sentence saying how to install it."""
    try:
        import timm
    except ImportError:
        raise ModelLoadError(
            f"timm models need the timm package, which is not installed; install it with {INSTALL_HINT}"
        ) from None
    return timm


def is_timm_name(text: str) -> bool:
    """True for ``timm:NAME`` model names."""
    return text.startswith(TIMM_PREFIX)


def timm_model_names(pretrained: bool = False) -> list[str]:
    """timm's architectures (``resnet50d``); with ``pretrained`` only those timm has pretrained weights for.

    Raises ModelLoadError (with the install hint) when timm is not installed.
    """
    timm = _timm()
    if not pretrained:
        return sorted(timm.list_models())
    return sorted({name.split(".")[0] for name in timm.list_models(pretrained=True)})


def timm_available() -> bool:
    """Whether timm can be imported (the zoo lists its models only then)."""
    import importlib.util

    return sys.modules.get("timm") is not None or (
        "timm" not in sys.modules and importlib.util.find_spec("timm") is not None
    )


def _check_name(name: str) -> None:
    """Refuse an unknown architecture or pretrained tag with the closest names timm knows."""
    timm = _timm()
    arch, _, tag = name.partition(".")
    if not arch or not timm.is_model(arch):
        names = timm.list_models()
        close = difflib.get_close_matches(arch, names, n=4, cutoff=0.6)
        near = close or difflib.get_close_matches(arch, names, n=4, cutoff=0.5)
        if close:
            hint = f"; did you mean {', '.join(TIMM_PREFIX + c for c in close)}?"
        elif near:
            hint = (
                f"; the nearest names are {', '.join(TIMM_PREFIX + c for c in near)} "
                "(timm.list_models() lists them all)"
            )
        else:
            hint = "; timm.list_models() lists them, e.g. timm:resnet50d or timm:efficientnet_b0"
        raise ModelLoadError(f"timm has no model '{arch}'{hint}")
    if tag:
        tags = sorted(timm.list_pretrained(f"{arch}.*"))
        if name not in tags:
            shown = ", ".join(TIMM_PREFIX + t for t in tags[:4]) or "none"
            raise ModelLoadError(
                f"timm has no pretrained tag '{tag}' for {arch}; its tags are {shown}"
                + (f" and {len(tags) - 4} more" if len(tags) > 4 else "")
            )


def preprocess_from_data_config(config: dict[str, Any]) -> tuple[Preprocess, str | None]:
    """cnnviz's Preprocess for a timm data config (``resolve_data_config``), and a note when it is not exact.

    timm's evaluation transform (``crop_mode`` "center") resizes the shorter side to ``floor(size / crop_pct)``
    and centre-crops ``size``: that is cnnviz's ``resize_crop`` exactly, pixel for pixel. ``squash`` with
    ``crop_pct`` 1 is ``resize``. The other modes (a squash followed by a crop, a border of the mean colour,
    a non-square centre crop) have no exact counterpart; the nearest one is used and the note says so.
    """
    channels, height, width = (int(v) for v in config["input_size"])
    mean = tuple(float(v) for v in config.get("mean") or (0.485, 0.456, 0.406))
    std = tuple(float(v) for v in config.get("std") or (0.229, 0.224, 0.225))
    interpolation = str(config.get("interpolation") or "bilinear")
    if interpolation not in _INTERPOLATIONS:  # "random" is a training-time choice
        interpolation = "bilinear"
    crop_pct = float(config.get("crop_pct") or _DEFAULT_CROP_PCT)
    crop_mode = str(config.get("crop_mode") or "center")
    scaled = (math.floor(height / crop_pct), math.floor(width / crop_pct))
    note = None
    if crop_mode == "squash":
        if scaled != (height, width):
            note = (
                f"timm stretches pictures to {scaled[0]}×{scaled[1]} and crops the centre "
                f"{height}×{width}; cnnviz stretches them to {height}×{width}, so the borders differ"
            )
        pre = Preprocess(channels, (height, width), "resize", None, mean, std, interpolation)
    elif crop_mode == "border":
        note = (
            "timm pads pictures to a square with the mean colour; cnnviz pads with the colour of the "
            "picture's border"
        )
        pre = Preprocess(channels, (height, width), "letterbox", None, mean, std, interpolation)
    else:
        if height != width:
            note = (
                f"timm resizes pictures to fit {scaled[0]}×{scaled[1]} before the {height}×{width} crop; "
                "cnnviz resizes by the shorter side, so the crop can differ slightly"
            )
        pre = Preprocess(
            channels, (height, width), "resize_crop", min(scaled), mean, std, interpolation
        )
    return pre, note


def timm_labels(num_classes: int | None) -> list[str] | None:
    """The class names of the ImageNet subset with ``num_classes`` classes (timm's ImageNet info), else None.

    Each name is the first of timm's synonyms ("tench" of "tench, Tinca tinca"), as torchvision names them.
    """
    if not num_classes:
        return None
    from timm.data import ImageNetInfo, infer_imagenet_subset

    subset = infer_imagenet_subset({"num_classes": int(num_classes)})
    if subset is None:
        return None
    try:
        descriptions = ImageNetInfo(subset).label_descriptions(detailed=False)
    except (OSError, ValueError, KeyError):  # a timm without this subset's tables
        return None
    return [d.split(",")[0].strip() for d in descriptions]


def _data_config(module: nn.Module) -> dict[str, Any]:
    from timm.data import resolve_model_data_config

    return dict(resolve_model_data_config(module))


def is_timm_module(module: nn.Module) -> bool:
    """True for a module built by timm (it carries timm's ``pretrained_cfg``)."""
    return type(module).__module__.startswith("timm.") and isinstance(
        getattr(module, "pretrained_cfg", None), dict
    )


def loaded_timm_module(
    module: nn.Module, name: str, source: str, meta: dict[str, Any]
) -> LoadedModel:
    """A timm module with its input size, preprocessing and labels from its own configuration."""
    config = _data_config(module)
    preprocess, note = preprocess_from_data_config(config)
    num_classes = getattr(module, "num_classes", None)
    cfg: dict[str, Any] = getattr(module, "pretrained_cfg", None) or {}
    own = cfg.get("label_descriptions") or cfg.get("label_names")  # a config may name its classes
    if isinstance(own, dict):
        own = list(own.values())
    if own and len(own) == num_classes:
        labels: list[str] | None = [str(v).split(",")[0].strip() for v in own]
    else:
        labels = timm_labels(num_classes)
    cfg_classes = cfg.get("num_classes")
    if cfg_classes and num_classes != cfg_classes:
        labels = None  # a new head: not the classes the configuration names
    module.eval()
    loaded = LoadedModel(module, name, (preprocess.channels, *preprocess.size), preprocess, labels,
                         None, source, meta)  # fmt: skip
    loaded.note = f"preprocessing approximated: {note}" if note else None
    return loaded


def _check_budget(name: str, **kwargs: Any) -> None:
    """Refuse a model whose parameters, counted on the meta device (nothing allocated), exceed the budget."""
    timm = _timm()
    from cnnviz.core.budget import check_fits, model_param_bytes

    try:
        with torch.device("meta"), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            skeleton = timm.create_model(name, pretrained=False, **kwargs)
    except Exception:  # noqa: BLE001 - a model whose __init__ needs real numbers cannot be counted ahead
        return
    check_fits(model_param_bytes(skeleton), f"the parameters of timm:{name}",
               advice="choose a smaller model")  # fmt: skip


def _build(name: str, **kwargs: Any) -> nn.Module:
    """``timm.create_model`` with random weights, once its parameters fit the memory budget."""
    timm = _timm()
    _check_budget(name, **kwargs)
    with warnings.catch_warnings():
        # timm's notices about deprecated names would break the one-line output
        warnings.simplefilter("ignore")
        module: nn.Module = timm.create_model(name, pretrained=False, **kwargs)
    return module


def _weights_source(cfg: dict[str, Any]) -> tuple[str, Path] | None:
    """Where timm fetches ``cfg``'s weights from: ("hub", HF cache folder) or ("url", torch hub folder)."""
    if cfg.get("hf_hub_id"):
        from huggingface_hub.constants import HF_HUB_CACHE

        return "hub", Path(HF_HUB_CACHE)
    if cfg.get("url") or cfg.get("file"):
        return "url", Path(torch.hub.get_dir()) / "checkpoints"
    return None


def _pretrained(name: str) -> nn.Module:
    """timm's pretrained model through its own Hub mechanism and cache; offline and not cached: one line."""
    timm = _timm()
    from timm.models import get_pretrained_cfg

    cfg = get_pretrained_cfg(name)
    cfg_dict = cfg.to_dict() if cfg is not None else {}
    source = _weights_source(cfg_dict)
    if source is None:
        raise ModelLoadError(
            f"timm has no pretrained weights for {name}; pass --weights none for random weights or "
            "a state_dict file (.pth or .safetensors)"
        )
    _check_budget(name)  # before anything is downloaded
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            module: nn.Module = timm.create_model(name, pretrained=True)
    except Exception as exc:  # noqa: BLE001 - offline, not cached, a damaged cache: all mean not available
        kind, cache = source
        where = (
            f"Hugging Face Hub repository {cfg_dict['hf_hub_id']}" if kind == "hub" else "its URL"
        )
        raise ModelLoadError(
            f"pretrained weights for timm:{name} are not in the cache {cache} and could not be fetched "
            f"from the {where} ({_fetch_reason(exc)}); pass --weights none for random weights, connect "
            "to the internet, or copy the weights into that cache"
        ) from exc
    return module


def _fetch_reason(exc: BaseException) -> str:
    """Why timm could not fetch weights, in words rather than the hub library's text."""
    names = {type(e).__name__ for e in (exc, exc.__cause__, exc.__context__) if e is not None}
    if "OfflineModeIsEnabled" in names or "LocalEntryNotFoundError" in names:
        return "offline, and not downloaded before"
    if "GatedRepoError" in names or "RepositoryNotFoundError" in names:
        return "the repository is gated or gone"
    if any(n.endswith("HTTPError") for n in names):
        return "the server refused the download"
    from cnnviz.core.models.torchvision import _network_reason

    return _network_reason(exc)


def _head_classes(module: nn.Module, state: dict[str, torch.Tensor]) -> int | None:
    """The number of classes of the classifier weights in ``state``, by the name timm's config gives it."""
    classifier = (getattr(module, "pretrained_cfg", None) or {}).get("classifier")
    names = classifier if isinstance(classifier, (list, tuple)) else [classifier]
    for head in names:
        weight = state.get(f"{head}.weight") if head else None
        if isinstance(weight, torch.Tensor) and weight.dim() >= 2:
            return int(weight.shape[0])
    return None


def load_timm(text: str, weights: Any, progress: Any = None, trust: bool = False) -> LoadedModel:
    """``timm:NAME`` with ``weights`` "default" (timm's pretrained), "none" (random) or a state_dict file.

    ``progress`` is accepted for symmetry with torchvision; timm's hub downloads report their own progress.
    """
    name = text[len(TIMM_PREFIX) :].strip()
    _check_name(name)
    if _is_weights_none(weights):
        module = _build(name)
        meta: dict[str, Any] = {"weights": "none"}
    elif _is_weights_default(weights):
        module = _pretrained(name)
        cfg = getattr(module, "pretrained_cfg", None) or {}
        meta = {"weights": f"timm pretrained ({cfg.get('hf_hub_id') or cfg.get('url') or name})"}
    else:
        path = _existing_file(weights, "weights file")
        state = _load_weights_file(path, trust)
        module = _build(name)
        classes = _head_classes(module, state)
        if classes is not None and classes != getattr(module, "num_classes", classes):
            module = _build(name, num_classes=classes)
        _load_state(module, state, path, f"timm:{name}")
        meta = {"weights": str(path)}
    return loaded_timm_module(module, f"timm:{name}", "timm", meta)
