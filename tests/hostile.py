"""Hostile model files for the tests: pickles and torch.export archives whose loading runs a payload.

The payload only writes a marker file, so a test can tell whether loading ran it.
"""

from __future__ import annotations

import builtins
import io
import json
import pickle
import warnings
import zipfile
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn


class Payload:
    """Unpickling this runs Python code that creates ``marker``."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return (builtins.exec, (f"open({self.marker!r}, 'w').write('pwned')",))


def tiny_program(path: Path) -> None:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU(), nn.Flatten(), nn.Linear(2 * 6 * 6, 3)).eval()
    torch.export.save(torch.export.export(net, (torch.zeros(1, 1, 8, 8),)), str(path))


def rewrite_archive(
    src: Path, dst: Path, edit: Callable[[str, bytes], bytes | None], extra: dict[str, bytes]
):
    """Copy the zip ``src`` to ``dst``, passing each member through ``edit`` and adding ``extra`` members."""
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        top = next(n for n in zin.namelist() if n.endswith("/archive_format"))[
            : -len("archive_format")
        ]
        for info in zin.infolist():
            data = edit(info.filename[len(top) :], zin.read(info.filename))
            zout.writestr(info, data if data is not None else zin.read(info.filename))
        for rel, data in extra.items():
            zout.writestr(top + rel, data)


def torch_saved(obj: object) -> bytes:
    buf = io.BytesIO()
    torch.save(obj, buf)
    return buf.getvalue()


def _sample_inputs(marker: Path, src: Path, dst: Path) -> None:
    evil = torch_saved((Payload(marker),))
    rewrite_archive(
        src, dst, lambda rel, b: evil if rel == "data/sample_inputs/model.pt" else None, {}
    )


def _pickled_weight(marker: Path, src: Path, dst: Path) -> None:
    """A weight marked ``use_pickle`` in the payload table, which torch retries with full unpickling."""
    with zipfile.ZipFile(src) as zf:
        top = next(n for n in zf.namelist() if n.endswith("/archive_format"))[
            : -len("archive_format")
        ]
        config = json.loads(zf.read(top + "data/weights/model_weights_config.json"))
    first = next(iter(config["config"].values()))
    first["use_pickle"] = True
    target = "data/weights/" + first["path_name"]
    evil = torch_saved(Payload(marker))

    def edit(rel: str, data: bytes) -> bytes | None:
        if rel == "data/weights/model_weights_config.json":
            return json.dumps(config).encode()
        return evil if rel == target else None

    rewrite_archive(src, dst, edit, {})


def _opaque_constant(marker: Path, src: Path, dst: Path) -> None:
    """An "opaque object" constant, which torch restores with plain ``pickle.loads``."""
    table = {
        "config": {
            "evil": {
                "path_name": "opaque_obj_0",
                "is_param": False,
                "use_pickle": True,
                "tensor_meta": None,
            }
        }
    }

    def edit(rel: str, data: bytes) -> bytes | None:
        return (
            json.dumps(table).encode()
            if rel == "data/constants/model_constants_config.json"
            else None
        )

    rewrite_archive(src, dst, edit, {"data/constants/opaque_obj_0": pickle.dumps(Payload(marker))})


def _legacy_weights(marker: Path, src: Path, dst: Path) -> None:
    """The legacy single weights file, which torch reads with a full-unpickling fallback."""
    rewrite_archive(
        src, dst, lambda rel, b: None, {"data/weights/model.pt": torch_saved(Payload(marker))}
    )


def duplicate_table(marker: Path, src: Path, dst: Path) -> None:
    """Two copies of the constants table, the first declaring an opaque object: which one a reader takes
    is up to the reader, so an audit must not trust either."""
    evil = {
        "config": {
            "evil": {
                "path_name": "opaque_obj_0",
                "is_param": False,
                "use_pickle": True,
                "tensor_meta": None,
            }
        }
    }
    table = "data/constants/model_constants_config.json"
    with zipfile.ZipFile(src) as zf:
        top = next(n for n in zf.namelist() if n.endswith("/archive_format"))[
            : -len("archive_format")
        ]
        harmless = zf.read(top + table)

    def edit(rel: str, data: bytes) -> bytes | None:
        return json.dumps(evil).encode() if rel == table else None

    extra = {table: harmless, "data/constants/opaque_obj_0": pickle.dumps(Payload(marker))}
    with warnings.catch_warnings():
        warnings.simplefilter(
            "ignore"
        )  # zipfile warns about the duplicate name it is asked to write
        rewrite_archive(src, dst, edit, extra)


def _pickle_named_json(marker: Path, src: Path, dst: Path) -> None:
    """A weight stored as a pickle under a ``.json`` name: torch unpickles it whatever it is called."""
    with zipfile.ZipFile(src) as zf:
        top = next(n for n in zf.namelist() if n.endswith("/archive_format"))[
            : -len("archive_format")
        ]
        config = json.loads(zf.read(top + "data/weights/model_weights_config.json"))
    first = next(iter(config["config"].values()))
    first["use_pickle"] = True
    first["path_name"] = "weight_0.json"

    def edit(rel: str, data: bytes) -> bytes | None:
        if rel == "data/weights/model_weights_config.json":
            return json.dumps(config).encode()
        return None

    extra = {"data/weights/weight_0.json": torch_saved(Payload(marker))}
    rewrite_archive(src, dst, edit, extra)


VARIANTS = {
    "pickle_named_json": _pickle_named_json,
    "sample_inputs": _sample_inputs,
    "pickled_weight": _pickled_weight,
    "opaque_constant": _opaque_constant,
    "legacy_weights": _legacy_weights,
}


def hostile_archive(variant: str, program: Path, path: Path, marker: Path) -> Path:
    """Write ``program`` with the payload ``variant`` to ``path``, proven to fire through torch itself.

    The proof runs ``torch.export.load`` once and checks that ``marker`` appeared; the marker is then removed.
    """
    VARIANTS[variant](marker, program, path)
    try:
        torch.export.load(str(path))
    except Exception:  # noqa: BLE001 - the payload replaces real data; what matters is that it ran
        pass
    if not marker.exists():
        raise AssertionError(
            f"the {variant} archive should run its payload through torch.export.load"
        )
    marker.unlink()
    return path
