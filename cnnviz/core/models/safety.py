"""What inside a model file could run code, found before anything in it is deserialised.

``torch.export.load`` reads a ``.pt2`` archive with ``torch.load(weights_only=True)`` first but, when that
fails, retries inner pickles (sample inputs, weights and constants marked ``use_pickle``) with
``weights_only=False``; it unpickles "opaque" constants with plain ``pickle.loads`` and loads AOTInductor
shared libraries. Any of these runs code an archive's author chose. :func:`audit_export_archive` proves,
member by member, that nothing of the kind will happen: every member torch might unpickle must load with
``weights_only=True``, and members that are always fully unpickled or are native code make the archive
untrusted. The caller refuses such an archive unless the user trusts it.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import zipfile
import zlib
from collections import Counter
from collections.abc import Iterator
from typing import IO, Any

__all__ = [
    "TRUST_ADVICE",
    "TRUST_HINT",
    "NotAnExportArchive",
    "audit_export_archive",
    "forced_weights_only",
]

TRUST_ADVICE = "; if you trust where it came from, pass --trust (or confirm in the app)"
"""The end of every refusal about trust; the app, which asks instead, leaves it out."""
TRUST_HINT = "it may run arbitrary code on this computer when opened" + TRUST_ADVICE


class NotAnExportArchive(ValueError):
    """A readable zip archive that holds no ``torch.export`` program."""


# Members torch reads as text or JSON only (relative to the archive's top folder).
_TEXT_MEMBERS = {"archive_format", "archive_version", "version", "byteorder", ".data/version",
                 ".data/serialization_id"}  # fmt: skip
_TEXT_FOLDERS = ("extra/", "extra_files/")
_NATIVE_SUFFIXES = (".so", ".dll", ".dylib", ".pyd")
# Constant payload kinds by file-name prefix (torch.export.pt2_archive.constants): tensors may be raw
# bytes or torch.save pickles; torchbind and opaque objects are always fully unpickled.
_TENSOR_CONSTANT_PREFIX = "tensor_"
_ALWAYS_UNPICKLED_PREFIXES = ("custom_obj_", "opaque_obj_")
# Members larger than this are not unpickled for the audit; torch would read them whole all the same,
# but a pickle that large is not a sample input or a weight torch writes with ``use_pickle``.
_MAX_PICKLE_MEMBER = 1 << 30


def _relative(name: str, top: str) -> str:
    return name[len(top) :] if top and name.startswith(top) else name


def _archive_top(names: list[str]) -> str:
    """The common top folder torch.export.save puts every member under ("model/"), or ""."""
    for name in names:
        if name.endswith("/archive_format") or name == "archive_format":
            return name[: -len("archive_format")]
    return ""


def _model_names(rels: list[str]) -> list[str]:
    """The programs of the archive: ``models/NAME.json`` members, as torch finds them."""
    return [
        rel[len("models/") : -len(".json")]
        for rel in rels
        if rel.startswith("models/") and rel.endswith(".json") and "/" not in rel[len("models/") :]
    ]


def _declared_payloads(
    zf: zipfile.ZipFile, top: str, models: list[str], present: set[str]
) -> tuple[set[str], list[str]]:
    """Members the programs' own payload tables declare as raw tensor bytes, and reasons found in them.

    Only the tables torch reads for each program count (``data/weights/NAME_weights_config.json`` and
    ``data/constants/NAME_constants_config.json``); a member is raw only when no entry names it as a pickle.
    """
    raw: set[str] = set()
    pickled: set[str] = set()
    reasons: list[str] = []
    tables = [(f"data/weights/{m}_weights_config.json", False) for m in models]
    tables += [(f"data/constants/{m}_constants_config.json", True) for m in models]
    for rel, constants in tables:
        if rel not in present:
            continue
        folder = rel.rsplit("/", 1)[0] + "/"
        try:
            config = json.loads(zf.read(top + rel)).get("config", {})
            entries = list(config.items())
        except (ValueError, AttributeError, zipfile.BadZipFile, OSError, RecursionError):
            reasons.append(f"its member {rel} is not a valid payload table")
            continue
        for fqn, meta in entries:
            path_name = meta.get("path_name") if isinstance(meta, dict) else None
            if (
                not isinstance(path_name, str)
                or not path_name
                or any(c in path_name for c in "/\\")
            ):
                reasons.append(f"its member {rel} describes '{fqn}' in a form cnnviz cannot check")
                continue
            member = folder + path_name
            if constants and path_name.startswith(_ALWAYS_UNPICKLED_PREFIXES):
                reasons.append(
                    f"its constant '{fqn}' is a Python object that only full unpickling restores"
                )
            elif meta.get("use_pickle") or (
                constants and not path_name.startswith(_TENSOR_CONSTANT_PREFIX)
            ):
                pickled.add(member)
            else:
                raw.add(member)
    return raw - pickled, reasons


def _weights_only_problem(data: bytes) -> str | None:
    """None when ``data`` loads with ``weights_only=True``; else "needs full unpickling" or "is damaged"."""
    import pickle
    import warnings

    import torch

    try:
        with warnings.catch_warnings():
            warnings.simplefilter(
                "ignore"
            )  # protocol notices of the unpickler: the answer is yes or no
            torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:  # the restricted unpickler met a global it does not allow
        return "needs full unpickling"
    except Exception:  # noqa: BLE001 - any other failure: not readable, so not provably plain data
        return "is damaged"
    return None


def audit_export_archive(handle: IO[bytes]) -> list[str]:
    """Reasons why loading the ``torch.export`` archive in ``handle`` could run code; empty when it cannot.

    Each reason is a phrase such as "its member data/sample_inputs/model.pt needs full unpickling"; a member
    that no reader can parse "is damaged" (unproven, so also a reason). Nothing is deserialised except through
    ``torch.load(weights_only=True)``. The handle is left at offset 0. Raises ``zipfile.BadZipFile`` when the
    file is not a zip archive and :class:`NotAnExportArchive` when it holds no program.
    """
    handle.seek(0)
    reasons: list[str] = []
    with zipfile.ZipFile(handle) as zf:
        infos = [i for i in zf.infolist() if not i.is_dir()]
        names = [i.filename for i in infos]
        top = _archive_top(names)
        if not top and not {"archive_format", "serialized_exported_program.json"} & set(names):
            raise NotAnExportArchive("it holds no torch.export program")
        # Python's zipfile reads the last of two same-named members, torch's reader the first: what was
        # audited would not be what is loaded. torch reads only the archive's one top folder.
        twice = sorted(name for name, n in Counter(names).items() if n > 1)
        if twice:
            return [f"it holds the member {twice[0]} twice, so readers disagree on its contents"]
        if top and any(not name.startswith(top) for name in names):
            return ["its members are not all in one archive folder, as torch.export writes them"]
        rels = [_relative(name, top) for name in names]
        models = _model_names(rels)
        present = set(rels)
        raw, config_reasons = _declared_payloads(zf, top, models, present)
        reasons.extend(config_reasons)
        # JSON torch parses as JSON (never unpickles): the programs and their payload tables
        known_json = {f"models/{m}.json" for m in models}
        known_json |= {f"data/weights/{m}_weights_config.json" for m in models}
        known_json |= {f"data/constants/{m}_constants_config.json" for m in models}
        if not top:
            known_json.add("serialized_exported_program.json")
        for info, rel in zip(infos, rels, strict=True):
            if rel.startswith("data/aotinductor/") or rel.lower().endswith(_NATIVE_SUFFIXES):
                reasons.append(
                    f"it holds compiled native code ({rel}) that would be loaded and run"
                )
                continue
            if (
                rel in raw
                or rel in known_json
                or rel in _TEXT_MEMBERS
                or rel.startswith(_TEXT_FOLDERS)
            ):
                continue
            if info.file_size > _MAX_PICKLE_MEMBER:
                reasons.append(f"its member {rel} is too large to check")
                continue
            try:
                problem = _weights_only_problem(zf.read(info))
            except (zipfile.BadZipFile, EOFError, OSError, ValueError, zlib.error):
                problem = "is damaged"
            if problem is not None:
                reasons.append(f"its member {rel} {problem}")
    handle.seek(0)
    return reasons


@contextlib.contextmanager
def forced_weights_only() -> Iterator[None]:
    """Make every ``torch.load`` inside the block use ``weights_only=True``, whatever its caller asks.

    A second line of defence around libraries that fall back to full unpickling on their own.
    """
    keys = ("TORCH_FORCE_WEIGHTS_ONLY_LOAD", "TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD")
    saved: dict[str, Any] = {key: os.environ.get(key) for key in keys}
    os.environ[keys[0]] = "1"
    os.environ.pop(keys[1], None)  # torch refuses to run with both set
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
