"""Reading an ONNX file safely: one sentence for a damaged file, external data kept inside the file's folder,
and initialisers checked against the memory budget before a byte of them is read.

An ONNX file is a protobuf, not a pickle: opening one runs no code, so it needs no trust. It is still input
from anywhere, so every size it declares is checked before it is believed.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from cnnviz.core import budget, text
from cnnviz.core.errors import ModelLoadError
from cnnviz.core.fileio import open_regular_file

INSTALL_HINT = "install the ONNX extra with: pip install 'cnnviz[onnx]'"


class OnnxModelError(ModelLoadError):
    """An ONNX file that cannot be opened or converted (damaged, unsupported operators, unsafe data)."""


def import_onnx() -> Any:
    """The ``onnx`` package, or a sentence saying how to install it."""
    try:
        import onnx
    except ImportError:
        raise OnnxModelError(f"opening ONNX files needs the onnx package; {INSTALL_HINT}") from None
    return onnx


def _element_bytes(onnx: Any, data_type: int) -> int:
    try:
        return int(onnx.helper.tensor_dtype_to_np_dtype(data_type).itemsize)
    except Exception:  # noqa: BLE001 - undefined or string types
        return 0


def declared_bytes(onnx: Any, tensor: Any) -> int:
    """What a tensor would take as float32 (its declared shape), whatever its storage says."""
    n = 1
    for d in tensor.dims:
        if d < 0:
            raise OnnxModelError(
                f"the initializer '{tensor.name}' declares a negative size {list(tensor.dims)}"
            )
        n *= int(d)
    return n * max(_element_bytes(onnx, tensor.data_type), budget.FLOAT_BYTES)


def read_model(path: Path) -> Any:
    """The ``ModelProto`` in ``path`` with its external data read in; refuses damaged or unsafe files."""
    onnx = import_onnx()
    from google.protobuf.message import DecodeError

    size = path.stat().st_size
    budget.check_fits(size, f"the ONNX file {path.name}", advice="use a smaller model")
    try:
        with open_regular_file(path) as handle:
            data = handle.read()
    except OSError as exc:
        raise OnnxModelError(f"{path} could not be read: {exc.strerror or exc}") from exc
    try:
        model = onnx.load_model_from_string(data)
    except (DecodeError, ValueError, RuntimeError) as exc:
        raise OnnxModelError(
            f"{path} is damaged or not an ONNX model (it does not decode as one); export or download it again"
        ) from exc
    if model.ir_version <= 0 or not model.graph.node or not model.graph.output:
        raise OnnxModelError(
            f"{path} is not an ONNX model (it holds no graph of operators); export or download it again"
        )
    tensors = list(_all_tensors(model.graph))
    total = sum(declared_bytes(onnx, t) for t in tensors)
    budget.check_fits(
        total,
        f"the weights of {path.name} ({len(tensors)} initializers)",
        advice="use a smaller model",
    )
    for tensor in tensors:
        if tensor.data_location == onnx.TensorProto.EXTERNAL:
            _read_external(onnx, tensor, path)
    return model


def _all_tensors(graph: Any) -> Any:
    """Initialisers and Constant-node tensors of ``graph`` and its subgraphs."""
    yield from graph.initializer
    for node in graph.node:
        for attr in node.attribute:
            if attr.HasField("t"):
                yield attr.t
            if attr.HasField("g"):
                yield from _all_tensors(attr.g)
            for g in attr.graphs:
                yield from _all_tensors(g)


def _read_external(onnx: Any, tensor: Any, path: Path) -> None:
    """Read a tensor's bytes from its external file, which must lie inside the model file's folder."""
    info = {e.key: e.value for e in tensor.external_data}
    location = info.get("location", "")
    folder = path.resolve().parent
    where = f"the initializer '{tensor.name}' of {path.name}"
    if not location:
        raise OnnxModelError(f"{where} names no file for its external data; export the model again")
    target = (folder / location).resolve()
    if os.path.isabs(location) or not target.is_relative_to(folder):
        raise OnnxModelError(
            f"{where} keeps its data in '{location}', outside the model's folder {folder}; "
            "cnnviz reads external data only from files next to the model"
        )
    try:
        offset = int(info.get("offset", 0))
        length = int(info["length"]) if "length" in info else None
    except ValueError:
        raise OnnxModelError(
            f"{where} has an external-data offset or length that is not a number"
        ) from None
    expected = 1
    for d in tensor.dims:
        expected *= int(d)
    expected *= _element_bytes(onnx, tensor.data_type)
    if length is None:
        length = expected
    if offset < 0 or length != expected:
        raise OnnxModelError(
            f"{where} declares {text.nbytes(length)} of external data for a tensor of "
            f"{text.nbytes(expected)}; the file is damaged"
        )
    try:
        with open_regular_file(target) as handle:
            available = os.fstat(handle.fileno()).st_size
            if offset + length > available:
                raise OnnxModelError(
                    f"{where} needs bytes {offset}..{offset + length} of '{location}', which has only "
                    f"{available}; the external data file is truncated"
                )
            handle.seek(offset)
            tensor.raw_data = handle.read(length)
    except OSError as exc:
        raise OnnxModelError(
            f"{where} keeps its data in '{location}', which could not be read: {exc.strerror or exc}"
        ) from exc
    del tensor.external_data[:]
    tensor.data_location = onnx.TensorProto.DEFAULT
