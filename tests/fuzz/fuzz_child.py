"""The worker process of the fuzz suite: runs one case at a time under an address-space limit.

Started by :class:`fuzz_harness.Worker` as ``python fuzz_child.py READ_FD WRITE_FD LIMIT_BYTES``. Jobs and
results are length-prefixed pickles on two pipes (stdout and stderr stay free for the code under test, which
the worker redirects per case). After importing torch and cnnviz the worker caps its address space at what it
already maps plus LIMIT_BYTES, so a case that tries to allocate more fails inside this process instead of
swapping the machine; its peak resident size is reported with every result.
"""

from __future__ import annotations

import contextlib
import io
import os
import pickle
import resource
import struct
import sys
import time
import traceback
from typing import Any

_CACHE: dict[str, Any] = {}


def _read_frame(fd: int) -> Any:
    head = _read_exact(fd, 8)
    if head is None:
        return None
    (size,) = struct.unpack("<Q", head)
    body = _read_exact(fd, size)
    return None if body is None else pickle.loads(body)


def _read_exact(fd: int, size: int) -> bytes | None:
    chunks = []
    while size:
        chunk = os.read(fd, min(size, 1 << 20))
        if not chunk:
            return None
        chunks.append(chunk)
        size -= len(chunk)
    return b"".join(chunks)


def _write_frame(fd: int, obj: Any) -> None:
    body = pickle.dumps(obj)
    data = struct.pack("<Q", len(body)) + body
    while data:
        data = data[os.write(fd, data) :]


def _status_kb(key: str) -> int:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(key):
                return int(line.split()[1])
    return 0


def _peak_rss_kb() -> int:
    # VmHWM belongs to this process image; ru_maxrss would carry over the parent's peak across exec.
    return _status_kb("VmHWM:") or resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def _resolve(value: Any) -> Any:
    """Symbolic arguments (``("$model", name)`` ...) become real objects here, in the worker."""
    if isinstance(value, list):
        return [_resolve(v) for v in value]
    if isinstance(value, dict):
        return {k: _resolve(v) for k, v in value.items()}
    if (
        isinstance(value, tuple)
        and value
        and isinstance(value[0], str)
        and value[0].startswith("$")
    ):
        return _make(value)
    if isinstance(value, tuple):
        return tuple(_resolve(v) for v in value)
    return value


def _make(token: tuple[Any, ...]) -> Any:
    import numpy as np
    import torch

    kind = token[0]
    if kind == "$model":
        key = f"model:{token[1]}"
        if key not in _CACHE:
            from cnnviz.core.models import load_model

            _CACHE[key] = load_model(token[1], weights="none")
        return _CACHE[key]
    if kind == "$image":
        from cnnviz.core.images import load_image

        model = _make(("$model", token[1]))
        return load_image(token[2], model.preprocess)
    if kind == "$tensor":
        return torch.full(tuple(token[1]), float(token[2]) if len(token) > 2 else 0.5)
    if kind == "$ndarray":
        return np.zeros(tuple(token[1]), dtype=token[2] if len(token) > 2 else "float32")
    if kind == "$object":
        return object()
    if kind == "$preprocess":
        from cnnviz.core.images import Preprocess

        return Preprocess.digits() if token[1] == "digits" else Preprocess.imagenet(64, 73)
    if kind == "$module":
        from torch import nn

        return nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU(), nn.Flatten(), nn.LazyLinear(3))
    if kind == "$pil":
        from PIL import Image

        return Image.new(token[1], tuple(token[2]))
    raise ValueError(f"unknown token {token!r}")


def _call(job: dict[str, Any]) -> Any:
    kind = job["kind"]
    if kind == "cli":
        from cnnviz.cli import main

        return main(list(job["argv"]))
    if kind == "api":
        import cnnviz

        func = getattr(cnnviz, job["func"]) if "." not in job["func"] else _dotted(job["func"])
        return func(*_resolve(job.get("args", [])), **_resolve(job.get("kwargs", {})))
    raise ValueError(f"unknown job kind {kind!r}")


def _dotted(name: str) -> Any:
    import importlib

    module, _, attr = name.rpartition(".")
    return getattr(importlib.import_module(module), attr)


def _describe(value: Any) -> str:
    text = repr(value)
    return text[:200]


def _ends(text: str, keep: int = 6000) -> str:
    # Keep both ends of long output: the first line of an error and its last lines both matter.
    if len(text) <= 2 * keep:
        return text
    return text[:keep] + " [...] " + text[-keep:]


def _run(job: dict[str, Any]) -> dict[str, Any]:
    from cnnviz.core.errors import CnnvizError

    out, err = io.StringIO(), io.StringIO()
    result: dict[str, Any] = {"status": "ok", "rc": None, "type": None, "message": None, "tb": None}
    start = time.perf_counter()
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            value = _call(job)
        result["rc"] = value if isinstance(value, int) else None
        result["value"] = _describe(value)
    except SystemExit as exc:  # argparse usage errors
        result["status"] = "exit"
        result["rc"] = exc.code if isinstance(exc.code, int) else 1
    except CnnvizError as exc:
        result.update(status="cnnviz_error", type=type(exc).__name__, message=str(exc))
    except BaseException as exc:  # noqa: BLE001 - every other exception is a finding
        result.update(
            status="other",
            type=f"{type(exc).__module__}.{type(exc).__name__}",
            message=str(exc)[:500],
            tb="".join(traceback.format_exception(exc)[-6:])[-3000:],
        )
    result["seconds"] = time.perf_counter() - start
    result["stdout"] = _ends(out.getvalue())
    result["stderr"] = _ends(err.getvalue())
    result["maxrss_kb"] = _peak_rss_kb()
    return result


def main() -> None:
    read_fd, write_fd, limit = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    import numpy  # noqa: F401
    import torch  # noqa: F401
    from PIL import Image  # noqa: F401

    import cnnviz.cli  # noqa: F401
    import cnnviz.core.analysis.capture  # noqa: F401
    import cnnviz.core.analysis.predict  # noqa: F401
    import cnnviz.core.analysis.receptive  # noqa: F401
    import cnnviz.core.analysis.summary  # noqa: F401
    import cnnviz.core.images  # noqa: F401
    import cnnviz.core.models  # noqa: F401

    torch.set_num_threads(1)
    baseline_rss = _peak_rss_kb()
    if limit > 0:
        cap = _status_kb("VmSize:") * 1024 + limit
        resource.setrlimit(resource.RLIMIT_AS, (cap, resource.RLIM_INFINITY))
    _write_frame(write_fd, {"ready": True, "baseline_rss_kb": baseline_rss})
    while True:
        job = _read_frame(read_fd)
        if job is None:
            return
        _write_frame(write_fd, _run(job))


if __name__ == "__main__":
    main()
