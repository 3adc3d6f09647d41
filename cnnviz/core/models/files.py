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


# ---------------------------------------------------------------------------------------------------------------
# safetensors: an 8-byte little-endian header length, a JSON header of dtype/shape/offsets, then raw bytes.
# Nothing in the format runs code, so these files never need trust; the header is checked here first so
# that a damaged or hostile file is named in one sentence and an oversized one never reaches memory.

SAFETENSORS_SUFFIX = ".safetensors"
_MAX_HEADER_BYTES = 100 << 20  # the safetensors library's own limit
_DTYPE_BYTES = {
    "BOOL": 1, "U8": 1, "I8": 1, "F8_E4M3": 1, "F8_E5M2": 1, "F8_E8M0": 1,
    "I16": 2, "U16": 2, "F16": 2, "BF16": 2,
    "I32": 4, "U32": 4, "F32": 4, "I64": 8, "U64": 8, "F64": 8, "C64": 8,
}  # fmt: skip


def safetensors_header(path: Path) -> tuple[dict[str, Any], dict[str, str]]:
    """The tensor entries and ``__metadata__`` of a safetensors file, checked against the file's size.

    Raises ModelLoadError naming what is wrong (not a safetensors file, a header that does not parse, an
    entry whose bytes do not match its shape, a file shorter than its header says). Reads only the header.
    """
    import json
    import os

    with _open_model_file(path) as handle:
        size = os.fstat(handle.fileno()).st_size
        head = handle.read(8)
        declared = int.from_bytes(head, "little") if len(head) == 8 else -1
        if declared < 2 or declared > min(_MAX_HEADER_BYTES, size - 8):
            raise ModelLoadError(
                f"{path} is not a safetensors file (its first 8 bytes do not give the length of a "
                "header inside the file); save or download it again"
            )
        raw = handle.read(declared)
    try:
        header = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        header = None
    if not isinstance(header, dict):
        raise ModelLoadError(
            f"{path} is a damaged safetensors file (its header is not a JSON object); "
            "save or download it again"
        )
    metadata = header.pop("__metadata__", None) or {}
    if not isinstance(metadata, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in metadata.items()
    ):
        raise ModelLoadError(
            f"{path} is a damaged safetensors file (its __metadata__ is not a mapping of text to "
            "text); save or download it again"
        )
    end = 0
    for name, entry in header.items():
        problem = _entry_problem(entry)
        if problem is not None:
            raise ModelLoadError(
                f"{path} is a damaged safetensors file: tensor {name!r} {problem}; "
                "save or download it again"
            )
        end = max(end, int(entry["data_offsets"][1]))
    if 8 + declared + end > size:
        raise ModelLoadError(
            f"{path} is a truncated safetensors file: its header names {end:,} bytes of tensors but "
            f"only {size - 8 - declared:,} follow it; save or download it again"
        )
    return header, dict(metadata)


def _entry_problem(entry: Any) -> str | None:
    """Why one header entry is not a tensor description, as the end of a sentence, or None."""
    if not isinstance(entry, dict):
        return "is not described by a JSON object"
    dtype, shape, offsets = entry.get("dtype"), entry.get("shape"), entry.get("data_offsets")
    if dtype not in _DTYPE_BYTES:
        return f"has an unknown dtype {dtype!r}"
    if not isinstance(shape, list) or not all(
        isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in shape
    ):
        return "has a shape that is not a list of sizes"
    if (
        not isinstance(offsets, list)
        or len(offsets) != 2
        or not all(isinstance(o, int) and not isinstance(o, bool) for o in offsets)
        or not 0 <= offsets[0] <= offsets[1]
    ):
        return "has byte offsets that are not a start and an end"
    numel = 1
    for s in shape:
        numel *= s
    if offsets[1] - offsets[0] != numel * _DTYPE_BYTES[str(dtype)]:
        return f"declares {offsets[1] - offsets[0]:,} bytes for a {dtype} tensor of shape {shape}"
    return None


def _load_safetensors(path: Path) -> dict[str, torch.Tensor]:
    """The tensors of a safetensors file: header checked, sizes within the memory budget, then loaded."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    from cnnviz.core.budget import check_fits

    header, _ = safetensors_header(path)
    nbytes = sum(e["data_offsets"][1] - e["data_offsets"][0] for e in header.values())
    check_fits(nbytes, f"the {len(header)} tensors in {path.name}", advice="use a smaller model")
    try:
        return load_file(str(path), device="cpu")
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise ModelLoadError(
            f"{path} is a damaged safetensors file that its library cannot read; "
            "save or download it again"
        ) from exc


def _load_weights_file(path: Path, trust: bool) -> dict[str, torch.Tensor]:
    """The state_dict in a weights file: a ``.safetensors`` file or a torch file (``.pth``, ``.pt``, ``.bin``)."""
    if _is_safetensors(path):
        return _load_safetensors(path)
    return _extract_state_dict(_load_torch_file(path, trust), path)


def _is_safetensors(path: Path) -> bool:
    """A ``.safetensors`` name, or (whatever the name) a file that starts like one: a length and ``{``."""
    if path.suffix.lower() == SAFETENSORS_SUFFIX:
        return True
    try:
        with open_regular_file(path) as fh:
            head = fh.read(10)
    except OSError:
        return False
    return len(head) == 10 and head[8:9] == b"{" and int.from_bytes(head[:8], "little") < (1 << 32)
