"""torchvision's classification models: their names, pretrained weights from the hub cache, and downloads."""

from __future__ import annotations

import os
import re
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from cnnviz.core.errors import ModelLoadError, one_line
from cnnviz.core.fileio import atomic_writer
from cnnviz.core.images import Preprocess
from cnnviz.core.models.files import (
    _existing_file,
    _is_weights_default,
    _is_weights_none,
    _load_state,
    _load_weights_file,
)
from cnnviz.core.models.loaded import LoadedModel


def torchvision_model_names() -> list[str]:
    """Classification models of torchvision's registry (resnet18, vgg16, inception_v3, ...)."""
    import torchvision

    return sorted(torchvision.models.list_models(module=torchvision.models))


def _quiet_build(name: str, **kwargs: Any) -> nn.Module:
    import torchvision

    extra: dict[str, Any] = {}
    if name in ("googlenet", "inception_v3"):
        extra["init_weights"] = True  # silences torchvision's notice about the default changing
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return torchvision.models.get_model(name, **extra, **kwargs)


def _hub_checkpoints() -> Path:
    """The torch hub's folder of downloaded weights."""
    return Path(torch.hub.get_dir()) / "checkpoints"


def _hub_file(weights: Any) -> Path:
    """Where the torch hub keeps the file of a torchvision weights enum member."""
    from urllib.parse import urlparse

    return _hub_checkpoints() / os.path.basename(urlparse(weights.url).path)


def _download_state_dict(name: str, weights: Any, progress: Any = None) -> dict[str, torch.Tensor]:
    """torchvision weights from the torch hub cache, downloading them when online."""
    path = _hub_file(weights)
    if path.is_file():
        try:
            return torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:  # noqa: BLE001 - a damaged cache file
            raise ModelLoadError(
                f"the cached weights {path} for {name} are damaged; delete the file and "
                "load the model again to download it anew"
            ) from exc
    try:
        return _download_with_progress(weights.url, path, progress or (lambda done, total: None))
    except Exception as exc:  # noqa: BLE001 - offline, proxy, DNS ... all mean: not available
        raise ModelLoadError(
            f"pretrained weights for {name} ({path.name}) are not in the cache {path.parent} and could not "
            f"be downloaded ({_network_reason(exc)}); pass --weights none for random weights, connect to "
            f"the internet, or copy the file there"
        ) from exc


def _download_with_progress(url: str, path: Path, progress: Any) -> dict[str, torch.Tensor]:
    """Download ``url`` to ``path`` atomically, calling ``progress(done_bytes, total_bytes)``; may raise to cancel."""
    import urllib.request

    path.parent.mkdir(parents=True, exist_ok=True)
    with urllib.request.urlopen(url, timeout=30) as response:  # noqa: S310 - torchvision's https URL
        total = int(response.headers.get("Content-Length") or 0)
        with atomic_writer(path) as out:
            done = 0
            while chunk := response.read(1 << 16):
                out.write(chunk)
                done += len(chunk)
                progress(done, total)
    return torch.load(path, map_location="cpu", weights_only=True)


def _network_reason(exc: BaseException) -> str:
    """Why a download failed, in words rather than the socket library's text."""
    import socket
    import urllib.error

    reason: Any = exc.reason if isinstance(exc, urllib.error.URLError) else exc
    if isinstance(exc, urllib.error.HTTPError):
        return f"the server answered {exc.code} {exc.reason}"
    if isinstance(reason, socket.gaierror):
        return "no network: the server's name could not be looked up"
    if isinstance(reason, (TimeoutError, socket.timeout)):
        return "the connection timed out"
    if isinstance(reason, ConnectionRefusedError):
        return "the connection was refused"
    if isinstance(reason, OSError) and not isinstance(exc, urllib.error.URLError):
        return f"the download failed: {reason.strerror or type(reason).__name__}"
    if isinstance(reason, OSError):
        return f"no connection: {reason.strerror or type(reason).__name__}"
    if isinstance(reason, str) and reason.strip():
        # urllib keeps some causes only as text such as "[Errno 101] Network is unreachable"
        words = re.sub(r"^\[Errno -?\d+\]\s*", "", reason.strip())
        return f"no connection: {one_line(words, 200, whole=True)}"
    return one_line(exc, 200, whole=True)


def _torchvision(name: str, weights: Any, progress: Any) -> LoadedModel:
    import torchvision

    enum = torchvision.models.get_model_weights(name)
    default = enum.DEFAULT
    preprocess = Preprocess.from_torchvision_weights(default)
    labels = list(default.meta.get("categories") or []) or None
    meta: dict[str, Any] = {"weights": "none"}
    if _is_weights_none(weights):
        module = _quiet_build(name, weights=None)
    elif _is_weights_default(weights) or (isinstance(weights, str) and hasattr(enum, weights)):
        chosen = default if _is_weights_default(weights) else getattr(enum, weights)
        state = _download_state_dict(name, chosen, progress)
        module = _quiet_build(name, weights=None, num_classes=len(chosen.meta["categories"]))
        _load_state(module, state, _hub_file(chosen), name)
        preprocess = Preprocess.from_torchvision_weights(chosen)
        labels = list(chosen.meta["categories"])
        meta = {"weights": str(chosen)}
    else:
        path = _existing_file(weights, "weights file")
        state = _load_weights_file(path, trust=False)
        num_classes = _guess_num_classes(state)
        module = _quiet_build(
            name, weights=None, **({"num_classes": num_classes} if num_classes else {})
        )
        _load_state(module, state, path, name)
        if num_classes and labels and num_classes != len(labels):
            labels = None
        meta = {"weights": str(path)}
    module.eval()
    return LoadedModel(module, name, (preprocess.channels, *preprocess.size), preprocess, labels, None,
                       "torchvision", meta)  # fmt: skip


def _guess_num_classes(state: dict[str, torch.Tensor]) -> int | None:
    for key in ("fc.weight", "classifier.weight", "classifier.6.weight", "classifier.1.weight",
                "classifier.3.weight", "classifier.2.weight", "heads.head.weight", "head.weight"):  # fmt: skip
        if key in state and state[key].dim() >= 2:
            return int(state[key].shape[0])
    return None


# ---------------------------------------------------------------------------------------------------------------
# What the model zoo lists (torchvision's registry and weight metadata only: nothing is built or downloaded)


@dataclass(frozen=True)
class ZooWeights:
    """One pretrained weight set: ``name`` is the enum member (``IMAGENET1K_V1``), ``full`` the qualified name."""

    name: str
    full: str
    is_default: bool
    acc1: float | None
    params: int | None
    size_mb: float | None
    cached: bool
    path: str

    def describe(self) -> str:
        """``IMAGENET1K_V1 (default) · top-1 69.8 % · 45 MB · cached``."""
        parts = [self.name + (" (default)" if self.is_default else "")]
        if self.acc1 is not None:
            parts.append(f"top-1 {self.acc1:.1f} %")
        if self.size_mb is not None:
            parts.append(f"{self.size_mb:.0f} MB")
        parts.append("cached" if self.cached else "download")
        return " · ".join(parts)


model_names = torchvision_model_names


def weights_for(name: str) -> list[ZooWeights]:
    """The pretrained weights torchvision offers for model ``name``, the default first."""
    import torchvision

    try:
        enum = torchvision.models.get_model_weights(name)
    except (ValueError, KeyError):
        return []
    default = getattr(enum, "DEFAULT", None)
    out = []
    for member in enum:
        meta = member.meta
        metrics = meta.get("_metrics", {})
        acc1 = None
        for values in metrics.values():
            if isinstance(values, dict) and "acc@1" in values:
                acc1 = float(values["acc@1"])
                break
        path = _hub_file(member)
        size = meta.get("_file_size")
        out.append(
            ZooWeights(
                name=member.name,
                full=str(member),
                is_default=member is default,
                acc1=acc1,
                params=meta.get("num_params"),
                size_mb=float(size) if size is not None else None,
                cached=path.is_file(),
                path=str(path),
            )
        )
    out.sort(key=lambda w: not w.is_default)
    return out
