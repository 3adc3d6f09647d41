"""cnnviz checkpoints: a plain dict of spec, weights, labels, preprocessing and metrics.

A checkpoint holds only types that ``torch.load(weights_only=True)`` accepts (dicts, lists, strings,
numbers, tensors), so it can be opened without trusting the file. It is one ``.pt`` file, or a pair
``NAME.safetensors`` (the weights) + ``NAME.json`` (the rest, plus the weights' SHA-256), which no
pickle touches at all.
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
from cnnviz.core.models.files import SAFETENSORS_SUFFIX

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
    if Path(path).suffix.lower() == SAFETENSORS_SUFFIX:
        return _save_safetensors_pair(ckpt, Path(path))
    return atomic_torch_save(ckpt, path)


def sidecar_path(path: str | os.PathLike[str]) -> Path:
    """The JSON file beside a ``.safetensors`` checkpoint: ``NAME.safetensors`` -> ``NAME.json``."""
    return Path(path).with_suffix(".json")


def _json_plain(value: Any) -> Any:
    """``value`` with non-finite floats (a diverged loss) as None: JSON has no NaN."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _json_plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_json_plain(v) for v in value]
    return value


def _save_safetensors_pair(ckpt: dict[str, Any], target: Path) -> Path:
    """Write the weights as ``target`` (.safetensors) and everything else as its JSON sidecar, atomically each."""
    import hashlib

    from safetensors.torch import save

    from cnnviz.core.errors import CnnvizError
    from cnnviz.core.fileio import atomic_write_bytes, write_json

    sidecar = sidecar_path(target)
    for path in (target, sidecar):
        folder = path.parent if str(path.parent) else Path(".")
        if not folder.is_dir():
            raise ModelLoadError(
                f"Cannot save {path}: the folder {folder} does not exist; create it first."
            )
        problem = write_target_problem(path)
        if problem is not None:
            raise ModelLoadError(f"Cannot save {path}: it {problem}; give the name of a file.")
    if sidecar.exists() and not _is_sidecar(sidecar):
        raise ModelLoadError(
            f"Cannot save {target}: {sidecar.name} beside it, where the checkpoint's description goes, "
            "is another file (an architecture spec?) that would be overwritten; choose another name."
        )
    tensors = {k: v.contiguous() for k, v in ckpt["state_dict"].items()}
    data = save(tensors, metadata={"format": FORMAT, "sidecar": sidecar.name})
    meta = {k: v for k, v in ckpt.items() if k != "state_dict"}
    meta["weights"] = target.name
    meta["weights_sha256"] = hashlib.sha256(data).hexdigest()
    try:
        # Weights first: a sidecar never names weights that are not there yet.
        atomic_write_bytes(target, data)
        write_json(sidecar, _json_plain(meta))
    except CnnvizError as exc:
        raise ModelLoadError(f"Cannot save the checkpoint: {exc}") from exc
    return target


def _is_sidecar(path: Path) -> bool:
    """True when ``path`` is a checkpoint's JSON description (which a new save may replace)."""
    from cnnviz.core.errors import CnnvizError
    from cnnviz.core.jsonio import read_json

    try:
        return is_checkpoint(read_json(path))
    except CnnvizError:
        return False


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
    if p.suffix.lower() == SAFETENSORS_SUFFIX:
        obj = _read_safetensors_pair(p)
        if obj is None:
            return None
        return _checked(obj, p)
    try:
        obj = torch.load(p, map_location="cpu", weights_only=True)
    except Exception:
        # Not loadable without trusting it, or not a torch file: not one of ours.
        return None
    if not is_checkpoint(obj):
        return None
    return _checked(obj, p)


def _read_safetensors_pair(p: Path) -> dict[str, Any] | None:
    """The checkpoint dict of ``NAME.safetensors`` + ``NAME.json``; None when there is no sidecar."""
    import hashlib

    from cnnviz.core.jsonio import read_json
    from cnnviz.core.models.files import _load_safetensors, _open_model_file, safetensors_header

    sidecar = sidecar_path(p)
    _, metadata = safetensors_header(p)
    if not sidecar.is_file():
        if metadata.get("format") == FORMAT:
            raise ModelLoadError(
                f"The checkpoint {p} lacks its sidecar {sidecar.name} (architecture, labels, "
                "preprocessing); put the two files side by side."
            )
        return None
    meta = read_json(sidecar, error=ModelLoadError)
    if not is_checkpoint(meta):
        if metadata.get("format") == FORMAT:
            raise ModelLoadError(
                f"The checkpoint {p} has a sidecar {sidecar.name} that is not a cnnviz checkpoint "
                "description; save the checkpoint again."
            )
        return None
    digest = hashlib.sha256()
    with _open_model_file(p) as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    if meta.get("weights_sha256") not in (None, digest.hexdigest()):
        raise ModelLoadError(
            f"The checkpoint {p} does not belong to its sidecar {sidecar.name} (the weights changed "
            "after it was written); save the checkpoint again or put the matching files together."
        )
    return {**meta, "state_dict": _load_safetensors(p)}


def _checked(obj: dict[str, Any], p: Path) -> dict[str, Any]:
    """A loaded checkpoint dict, checked: version, keys, types, finite weights; NaN metrics become None."""
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
