"""cnnviz checkpoints: a plain dict of spec, weights, labels, preprocessing and metrics.

A checkpoint holds only types that ``torch.load(weights_only=True)`` accepts (dicts, lists, strings,
numbers, tensors), so it can be opened without trusting the file.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from cnnviz.core.errors import ModelLoadError
from cnnviz.core.fileio import atomic_writer, folder_write_problem, write_target_problem

if TYPE_CHECKING:
    from cnnviz.core.images import Preprocess

FORMAT = "cnnviz-checkpoint"
VERSION = 1
_KEYS = ("spec", "state_dict", "labels", "preprocess", "metrics")


def _plain(value: Any, where: str) -> Any:
    """Copy ``value`` into types the weights-only unpickler accepts, or say which entry is not storable."""
    # Exact built-in types: subclasses (torch's TorchVersion is a str) need globals the loader refuses.
    if value is None:
        return None
    if isinstance(value, bool):
        return bool(value)
    if isinstance(value, str):
        return str(value)
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value)
    if isinstance(value, torch.Tensor):
        return value.detach().cpu().clone()
    if hasattr(value, "item") and getattr(value, "shape", None) == ():  # NumPy scalars
        return _plain(value.item(), where)
    if isinstance(value, Mapping):
        return {str(k): _plain(v, f"{where}.{k}") for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v, f"{where}[{i}]") for i, v in enumerate(value)]
    raise TypeError(f"{where} holds a {type(value).__name__}, which a checkpoint cannot store.")


def _preprocess_dict(preprocess: Preprocess | Mapping[str, Any] | None) -> dict[str, Any] | None:
    if preprocess is None:
        return None
    if isinstance(preprocess, Mapping):
        return dict(preprocess)
    return preprocess.to_dict()


def make_checkpoint(
    *,
    spec: Mapping[str, Any],
    state_dict: Mapping[str, torch.Tensor],
    labels: list[str] | None,
    preprocess: Preprocess | Mapping[str, Any] | None,
    metrics: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Build the checkpoint dict (without writing it)."""
    return {
        "format": FORMAT,
        "version": VERSION,
        "spec": _plain(dict(spec), "spec"),
        "state_dict": {k: v.detach().cpu().clone() for k, v in state_dict.items()},
        "labels": _plain(list(labels) if labels is not None else None, "labels"),
        "preprocess": _plain(_preprocess_dict(preprocess), "preprocess"),
        "metrics": _plain(dict(metrics or {}), "metrics"),
    }


def atomic_torch_save(obj: Any, path: str | os.PathLike[str]) -> Path:
    """``torch.save`` to a temp file in the same folder, fsync, then rename over ``path``.

    A reader never sees a half-written file: either the old one or the complete new one. A failed write
    (a full disk, a folder that takes no files) raises :class:`ModelLoadError` and leaves nothing behind.
    """
    target = Path(path)
    folder = target.parent if str(target.parent) else Path(".")
    if not folder.is_dir():
        raise ModelLoadError(
            f"Cannot save {target}: the folder {folder} does not exist; create it first."
        )
    problem = write_target_problem(target)
    if problem is not None:
        raise ModelLoadError(f"Cannot save {target}: it {problem}; give the name of a file.")
    try:
        with atomic_writer(target) as fh:
            torch.save(obj, fh)
    except (OSError, RuntimeError) as exc:
        # torch's zip writer turns a failed write (a full disk) into a RuntimeError around the OSError.
        cause = next(
            (e for e in (exc, exc.__cause__, exc.__context__) if isinstance(e, OSError)), None
        )
        if cause is None:
            raise
        reason = folder_write_problem(folder) or cause.strerror or str(cause)
        raise ModelLoadError(
            f"Cannot save {target}: {reason}; the previous file there is unchanged. "
            "Free some space or choose a folder you can write to."
        ) from exc
    return target


def save_checkpoint(
    path: str | os.PathLike[str],
    *,
    spec: Mapping[str, Any],
    state_dict: Mapping[str, torch.Tensor],
    labels: list[str] | None,
    preprocess: Preprocess | Mapping[str, Any] | None,
    metrics: Mapping[str, Any] | None = None,
) -> Path:
    """Write a checkpoint atomically; returns its path.

    ``metrics`` may hold nested dicts/lists of numbers and strings (e.g. accuracies, the command used).
    """
    try:
        ckpt = make_checkpoint(
            spec=spec, state_dict=state_dict, labels=labels, preprocess=preprocess, metrics=metrics
        )
    except TypeError as exc:
        raise ModelLoadError(f"Cannot save the checkpoint: {exc}") from exc
    return atomic_torch_save(ckpt, path)


def is_checkpoint(obj: Any) -> bool:
    """True when ``obj`` (a loaded object) is a cnnviz checkpoint dict."""
    return isinstance(obj, dict) and obj.get("format") == FORMAT


def read_checkpoint(path: str | os.PathLike[str]) -> dict[str, Any] | None:
    """Load a cnnviz checkpoint with ``weights_only=True``.

    Returns None when the file is not a cnnviz checkpoint (another torch file, a pickle that needs full
    unpickling, or not a torch file at all), so callers can try other formats. Raises ModelLoadError when
    the file does not exist, or when it is a cnnviz checkpoint that is damaged or from a newer version.
    """
    p = Path(path)
    if not p.is_file():
        raise ModelLoadError(f"The checkpoint {p} does not exist: check the path.")
    try:
        obj = torch.load(p, map_location="cpu", weights_only=True)
    except Exception:
        # Not loadable without trusting it, or not a torch file: not one of ours.
        return None
    if not is_checkpoint(obj):
        return None
    version = obj.get("version")
    if not isinstance(version, int) or version > VERSION:
        raise ModelLoadError(
            f"The checkpoint {p} has format version {version!r}, newer than this cnnviz reads "
            f"({VERSION}): upgrade cnnviz."
        )
    missing = [k for k in _KEYS if k not in obj]
    if missing:
        raise ModelLoadError(
            f"The checkpoint {p} is damaged: it lacks {', '.join(missing)}; train it again."
        )
    if not isinstance(obj["spec"], dict) or not isinstance(obj["state_dict"], dict):
        raise ModelLoadError(
            f"The checkpoint {p} is damaged: its spec or weights are not dicts; train it again."
        )
    for key, value in obj["state_dict"].items():
        if not isinstance(value, torch.Tensor):
            raise ModelLoadError(
                f"The checkpoint {p} is damaged: weight {key!r} is not a tensor; train it again."
            )
        if value.is_floating_point() and not bool(torch.isfinite(value).all()):
            raise ModelLoadError(
                f"The checkpoint {p} holds weights that are not finite numbers ({key}): "
                "training diverged; train again with a lower learning rate."
            )
    metrics = obj.get("metrics") or {}
    if isinstance(metrics, dict):
        for k, v in metrics.items():
            if isinstance(v, float) and math.isnan(v):
                metrics[k] = None
    return obj
