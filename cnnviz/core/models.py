"""Model sources: the bundled default, the torchvision zoo, spec JSON, checkpoints, TorchScript, .pt2."""

from __future__ import annotations

import contextlib
import difflib
import os
import pickle
import warnings
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import torch
from torch import nn

from cnnviz.core.errors import ModelLoadError, UntrustedFileError
from cnnviz.core.fileio import atomic_writer, open_regular_file, regular_file_problem
from cnnviz.core.images import Preprocess
from cnnviz.core.resources import resource_path
from cnnviz.core.safety import TRUST_HINT as _TRUST_HINT


@dataclass
class LoadedModel:
    """A model ready to run, with what the app needs around it.

    ``module`` is in eval mode. ``preprocess`` turns pictures into inputs of ``input_shape`` (C, H, W).
    ``labels`` names the output classes (None when unknown). ``spec`` is the architecture spec for models that are a
    sequence of layers (editable), else None. ``source`` says where it came from ("bundled", "torchvision", "spec",
    "checkpoint", "torchscript", "export", "state_dict").
    """

    module: nn.Module
    name: str
    input_shape: tuple[int, int, int]
    preprocess: Preprocess
    labels: list[str] | None = None
    spec: dict[str, Any] | None = None
    source: str = "module"
    metadata: dict[str, Any] = field(default_factory=dict)

    def example_input(self, device: str | torch.device = "cpu") -> torch.Tensor:
        """A zero tensor of the model's input shape with a batch of one."""
        return torch.zeros((1, *self.input_shape), device=device)


# ---------------------------------------------------------------------------------------------------------------
# Loading

DEFAULT_MODEL = "default"


def torchvision_model_names() -> list[str]:
    """Classification models of torchvision's registry (resnet18, vgg16, inception_v3, ...)."""
    import torchvision

    return sorted(torchvision.models.list_models(module=torchvision.models))


def _is_weights_none(weights: Any) -> bool:
    return weights is None or (isinstance(weights, str) and weights.lower() in ("none", "random"))


def _is_weights_default(weights: Any) -> bool:
    return isinstance(weights, str) and weights.lower() in ("default", "pretrained")


def _quiet_build(name: str, **kwargs: Any) -> nn.Module:
    import torchvision

    extra: dict[str, Any] = {}
    if name in ("googlenet", "inception_v3"):
        extra["init_weights"] = True  # silences torchvision's notice about the default changing
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return torchvision.models.get_model(name, **extra, **kwargs)


def _hub_file(weights: Any) -> Path:
    from urllib.parse import urlparse

    filename = os.path.basename(urlparse(weights.url).path)
    return Path(torch.hub.get_dir()) / "checkpoints" / filename


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
            f"be downloaded ({_network_reason(exc)}); connect to the internet, copy the file there, "
            f"load the model with random weights instead, or give a state_dict file as its weights"
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
    return _one_line(exc)


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return (text[:200] + "…") if len(text) > 200 else (text or type(exc).__name__)


def _extract_state_dict(obj: Any, path: Path) -> dict[str, torch.Tensor]:
    if isinstance(obj, dict):
        for key in ("state_dict", "model_state_dict", "model", "weights"):
            inner = obj.get(key)
            if (
                isinstance(inner, dict)
                and inner
                and all(isinstance(v, torch.Tensor) for v in inner.values())
            ):
                return inner
        if obj and all(isinstance(v, torch.Tensor) for v in obj.values()):
            return obj
        if "state_dict" in obj and isinstance(obj["state_dict"], dict):
            return obj["state_dict"]
    raise ModelLoadError(
        f"{path} does not hold a state_dict (a mapping of parameter names to tensors)"
    )


def _load_state(module: nn.Module, state: dict[str, torch.Tensor], path: Path, arch: str) -> None:
    # checkpoints saved from DataParallel / torch.compile prefix every key
    for prefix in ("module.", "_orig_mod."):
        if state and all(k.startswith(prefix) for k in state):
            state = {k[len(prefix) :]: v for k, v in state.items()}
    own = module.state_dict()
    mismatched = [
        f"{k} {list(v.shape)} vs {list(own[k].shape)}"
        for k, v in state.items()
        if k in own and isinstance(v, torch.Tensor) and own[k].shape != v.shape
    ]
    fitting = {
        k: v
        for k, v in state.items()
        if not (k in own and own[k].shape != getattr(v, "shape", None))
    }
    result = module.load_state_dict(fitting, strict=False)
    problems = []
    if result.missing_keys:
        problems.append(f"missing keys: {_listing(result.missing_keys)}")
    if result.unexpected_keys:
        problems.append(f"unexpected keys: {_listing(result.unexpected_keys)}")
    if mismatched:
        problems.append(f"shape mismatches: {_listing(mismatched)}")
    if problems:
        raise ModelLoadError(f"the weights in {path} do not fit {arch}: " + "; ".join(problems))


def _listing(items: list[str], limit: int = 5) -> str:
    shown = ", ".join(items[:limit])
    return shown + (f" and {len(items) - limit} more" if len(items) > limit else "")


def _looks_like_pickle(path: Path) -> bool:
    """A torch zip archive or a raw pickle (protocol 2+): the only files whose refusal is about trust."""
    with open(path, "rb") as fh:
        head = fh.read(4)
    return head.startswith(b"PK\x03\x04") or head[:1] == b"\x80"


def _torch_load(path: Path, weights_only: bool) -> Any:
    with warnings.catch_warnings():
        # torch's notices (pickle protocol, "looks like a TorchScript archive") would break the one-line error
        warnings.simplefilter("ignore")
        return torch.load(path, map_location="cpu", weights_only=weights_only)


def _load_torch_file(path: Path, trust: bool) -> Any:
    """What ``torch.load`` finds in ``path``: with ``weights_only=True``, and fully unpickled only if trusted.

    torch's own text about a damaged file (miniz and stream-reader internals) is kept as the cause, for
    ``--verbose``; the message says what the file is in words.
    """
    try:
        return _torch_load(path, weights_only=True)
    except pickle.UnpicklingError as exc:
        if not _looks_like_pickle(path):
            raise ModelLoadError(
                f"{path} is not a PyTorch file (no pickle or torch archive inside)"
            ) from exc
        if not trust:
            raise UntrustedFileError(
                f"{path} needs full unpickling, which is refused because {_TRUST_HINT}"
            ) from exc
    except Exception as exc:  # noqa: BLE001 - on non-pickles the unpickler also raises IndexError, KeyError ...
        raise ModelLoadError(_unreadable(path)) from exc
    try:
        return _torch_load(path, weights_only=False)
    except Exception as exc:  # noqa: BLE001
        raise ModelLoadError(
            f"{path} could not be unpickled: it is damaged or needs code this Python does not have"
        ) from exc


def _unreadable(path: Path) -> str:
    if not _looks_like_pickle(path):
        return f"{path} is not a PyTorch file (no pickle or torch archive inside)"
    return f"{path} is a damaged or truncated PyTorch file; save or download it again"


@contextlib.contextmanager
def _quiet_logger(name: str) -> Any:
    """Silence a library logger that would print tracebacks for a file we report in one line ourselves."""
    import logging

    logger = logging.getLogger(name)
    level = logger.level
    logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        logger.setLevel(level)


# What zipfile raises on a damaged archive, besides OSError: a bad or truncated directory, an unknown
# version, a member that does not inflate.
_ZIP_ERRORS = (zipfile.BadZipFile, zipfile.LargeZipFile, NotImplementedError, EOFError, ValueError,
               zlib.error)  # fmt: skip


def _zip_member_names(path: Path) -> list[str]:
    """The member names of a zip archive; empty for anything that is not a readable zip."""
    try:
        with zipfile.ZipFile(path) as zf:
            return zf.namelist()
    except (*_ZIP_ERRORS, OSError):
        return []


def _spec_preprocess(spec: dict[str, Any]) -> Preprocess:
    pre = spec.get("preprocess")
    if isinstance(pre, dict):
        return Preprocess.from_dict(pre)
    c, h, w = (int(v) for v in spec["input_shape"])
    return Preprocess(c, (h, w), "resize", None, (0.5,) * c, (0.5,) * c)


def _shape3(shape: Any) -> tuple[int, int, int]:
    c, h, w = (int(v) for v in shape)
    return (c, h, w)


def _from_spec(spec: dict[str, Any], name: str, source: str) -> LoadedModel:
    from cnnviz.core.spec import build_model

    module = build_model(spec).eval()
    labels = spec.get("labels")
    return LoadedModel(
        module, spec.get("name") or name, _shape3(spec["input_shape"]), _spec_preprocess(spec),
        list(labels) if labels else None, spec, source,
    )  # fmt: skip


def _from_checkpoint(
    path: Path, name: str | None = None, source: str = "checkpoint"
) -> LoadedModel:
    from cnnviz.core.checkpoint import read_checkpoint

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
        state = _extract_state_dict(_load_torch_file(path, trust=False), path)
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


def _existing_file(value: Any, what: str) -> Path:
    """The path of a user-named file, refused at once unless it is a non-empty regular file."""
    path = Path(str(value)).expanduser()
    problem = regular_file_problem(path)
    if problem == "does not exist":
        raise ModelLoadError(f"{what} {path} does not exist: check the path")
    if problem == "is a folder, not a file":
        raise ModelLoadError(f"{path} is a folder, not a {what}")
    if problem is not None:
        raise ModelLoadError(f"{what} {path} {problem}; give a model file")
    if path.stat().st_size == 0:
        raise ModelLoadError(f"{what} {path} is empty")
    return path


def _open_model_file(path: Path) -> IO[bytes]:
    try:
        return open_regular_file(path)
    except OSError as exc:
        raise ModelLoadError(f"model file {path} {exc.strerror or exc}") from None


def _exported_input_shape(module: nn.Module) -> tuple[int, int, int] | None:
    graph = getattr(module, "graph", None)
    if graph is None:
        return None
    for node in graph.nodes:
        if node.op == "placeholder":
            val = node.meta.get("val")
            shape = getattr(val, "shape", None)
            if shape is not None and len(shape) == 4:
                try:
                    return _shape3(shape[1:])
                except TypeError:
                    return None
    return None


def _load_export_program(path: Path, trust: bool) -> nn.Module:
    """The module of a ``torch.export`` archive, audited first so that an untrusted one runs no code.

    The archive is read through one open handle, so the bytes audited are the bytes loaded.
    """
    from cnnviz.core.safety import NotAnExportArchive, audit_export_archive, forced_weights_only

    with _open_model_file(path) as handle:
        try:
            reasons = audit_export_archive(handle)
        except (*_ZIP_ERRORS, OSError) as exc:
            if isinstance(exc, NotAnExportArchive):
                detail = str(exc)
            elif isinstance(exc, zipfile.BadZipFile):
                detail = "not a complete zip archive"
            else:
                detail = "a damaged zip archive or one in a form Python cannot read"
            raise ModelLoadError(
                f"{path} is not a readable torch.export program ({detail})"
            ) from exc
        unsafe = [r for r in reasons if not r.endswith("is damaged")]
        if unsafe and not trust:
            raise UntrustedFileError(
                f"{path} is a torch.export archive that needs full unpickling or native code "
                f"({_listing(unsafe, 2)}), which is refused because {_TRUST_HINT}"
            )
        if reasons and not trust:
            raise ModelLoadError(
                f"{path} is not a readable torch.export program ({_listing(reasons, 2)}); "
                "re-export or re-download it"
            )
        guard = contextlib.nullcontext() if trust else forced_weights_only()
        try:
            with guard, _quiet_logger("torch.export"), _quiet_logger("torch._export"):
                program = torch.export.load(handle)
            return program.module()
        except Exception as exc:  # noqa: BLE001 - torch raises anything from a damaged program
            raise ModelLoadError(
                f"{path} is not a readable torch.export program: it is damaged or was saved by an "
                f"incompatible version of torch ({torch.__version__} here); export it again"
            ) from exc


def _generic(module: nn.Module, path: Path, source: str, input_shape: Any) -> LoadedModel:
    shape = _shape3(input_shape) if input_shape is not None else (3, 224, 224)
    c, h, w = shape
    if c == 3 and h == w and h >= 64:
        preprocess = Preprocess.imagenet(size=h, resize_size=int(round(h * 256 / 224)))
    else:
        preprocess = Preprocess(c, (h, w), "resize", None, (0.5,) * c, (0.5,) * c)
    with contextlib.suppress(NotImplementedError):  # exported programs fix their mode at export
        module.eval()
    return LoadedModel(
        module, path.stem, shape, preprocess, None, None, source, {"path": str(path)}
    )


def load_model(
    spec: str | os.PathLike[str] | nn.Module,
    weights: Any = "default",
    trust: bool = False,
    *,
    input_shape: tuple[int, int, int] | None = None,
    progress: Any = None,
) -> LoadedModel:
    """Load a model by name or file, ready to run.

    ``spec``: ``"default"`` (the bundled digits model), a torchvision classification model name
    (``"resnet18"``), an architecture spec JSON, a cnnviz checkpoint, a TorchScript archive, a ``torch.export``
    ``.pt2`` program, or an ``nn.Module``. ``weights``: ``"default"`` (torchvision's pretrained weights from the
    hub cache, downloaded when online), ``"none"``/``None`` (random initialisation) or a state_dict file (for a
    torchvision name or a spec). Files that need full unpickling are refused unless ``trust`` is True.
    ``input_shape`` (C, H, W) overrides what the file implies. ``progress(done, total)`` follows downloads.
    """
    from cnnviz.core.validate import check_load_model_arguments

    check_load_model_arguments(spec, weights, trust, input_shape, progress)
    if isinstance(spec, nn.Module):
        module = spec.eval()
        return _generic(module, Path(type(spec).__name__), "module", input_shape)
    text = str(spec)
    if text == DEFAULT_MODEL:
        path = resource_path("models", "digits.pt")
        if not path.is_file():
            raise ModelLoadError(f"the bundled default model is missing ({path}); reinstall cnnviz")
        loaded = _from_checkpoint(path, "default (digits)", "bundled")
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
            "; give a file (spec .json, checkpoint .pt, TorchScript, .pt2) or a torchvision model name "
            "such as resnet18"
        )  # fmt: skip
        raise ModelLoadError(f"unknown model '{text}'{hint}")
    path = _existing_file(path, "model file")
    if path.suffix.lower() == ".json":
        from cnnviz.core.spec import load_spec

        loaded = _from_spec(load_spec(path), path.stem, "spec")
        _apply_weights_file(loaded, weights, trust)
        return _with_shape(loaded, input_shape)
    members = _zip_member_names(path)
    if path.suffix.lower() == ".pt2" or any(n.endswith("/archive_format") for n in members):
        module = _load_export_program(path, trust)
        return _generic(module, path, "export", input_shape or _exported_input_shape(module))
    if any(n.endswith("constants.pkl") or "/code/" in n for n in members):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # torch's TorchScript deprecation notice
                module = torch.jit.load(str(path), map_location="cpu")
        except Exception as exc:  # noqa: BLE001
            raise ModelLoadError(
                f"{path} is not a readable TorchScript archive: it is damaged or was saved by an "
                f"incompatible version of torch ({torch.__version__} here); save it again"
            ) from exc
        return _generic(module, path, "torchscript", input_shape)
    obj = _load_torch_file(path, trust)
    from cnnviz.core.checkpoint import is_checkpoint

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


def _apply_weights_file(loaded: LoadedModel, weights: Any, trust: bool) -> None:
    """Load a state_dict file named by ``weights`` into ``loaded``; "default"/"none" keep its own weights."""
    if _is_weights_none(weights) or _is_weights_default(weights):
        return
    path = _existing_file(weights, "weights file")
    state = _extract_state_dict(_load_torch_file(path, trust), path)
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
