"""Reading model files: torch pickles, state_dicts, zip archives, TorchScript and ``torch.export`` programs.

Every reader says in one sentence what is wrong with a file; files that need full unpickling or native
code are refused unless the user trusts them.
"""

from __future__ import annotations

import contextlib
import pickle
import warnings
import zipfile
import zlib
from pathlib import Path
from typing import IO, Any

import torch
from torch import nn

from cnnviz.core.errors import ModelLoadError, UntrustedFileError
from cnnviz.core.fileio import open_regular_file, regular_file_problem
from cnnviz.core.models.loaded import _shape3
from cnnviz.core.models.safety import TRUST_HINT as _TRUST_HINT


def _is_weights_none(weights: Any) -> bool:
    return weights is None or (isinstance(weights, str) and weights.lower() in ("none", "random"))


def _is_weights_default(weights: Any) -> bool:
    return isinstance(weights, str) and weights.lower() in ("default", "pretrained")


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
    with _open_model_file(path) as fh:
        head = fh.read(4)
    return head.startswith(b"PK\x03\x04") or head[:1] == b"\x80"


def _torch_load(path: Path, weights_only: bool) -> Any:
    with warnings.catch_warnings():
        # torch's notices (pickle protocol, "looks like a TorchScript archive") would break the one-line error
        warnings.simplefilter("ignore")
        # Through the one handle whose kind was checked: a path swapped for a FIFO cannot block the load.
        with _open_model_file(path) as handle:
            return torch.load(handle, map_location="cpu", weights_only=weights_only)


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
        with open_regular_file(path) as handle, zipfile.ZipFile(handle) as zf:
            return zf.namelist()
    except (*_ZIP_ERRORS, OSError):
        return []


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
    from cnnviz.core.models.safety import (
        NotAnExportArchive,
        audit_export_archive,
        forced_weights_only,
    )

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


def _load_torchscript(path: Path) -> nn.Module:
    """The module of a TorchScript archive."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch's TorchScript deprecation notice
            with _open_model_file(path) as handle:
                module: nn.Module = torch.jit.load(handle, map_location="cpu")
    except Exception as exc:  # noqa: BLE001
        raise ModelLoadError(
            f"{path} is not a readable TorchScript archive: it is damaged or was saved by an "
            f"incompatible version of torch ({torch.__version__} here); save it again"
        ) from exc
    return module
