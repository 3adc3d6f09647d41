"""Random arguments to the public API (``cnnviz.load_model`` ... ``cnnviz.predict``) in the capped worker.

Objects that cannot cross a pipe (models, tensors, pictures) are named by tokens such as
``("$model", "default")`` and made in the worker (see ``fuzz_child._make``).
"""

from __future__ import annotations

import os
import pickle
from collections.abc import Callable
from pathlib import Path
from typing import Any

import fuzz_corpus as corpus
import pytest
from fuzz_harness import Worker, api_problem, check_all
from hypothesis import given, settings
from hypothesis import strategies as st

FUZZ = settings(settings.get_profile("fuzz-worker"), max_examples=30, deadline=None)

MODEL = ("$model", "default")
JUNK = st.sampled_from(
    [None, 0, -1, 10**30, 1.5, float("nan"), "", "x" * 5000, b"\x00", [], {}, ("$object",), True]
)
UNITS = st.sampled_from(
    [
        (0, 0),
        (1, 2),
        (-1, 0),
        (0, -1),
        (10**9, 0),
        (0,),
        (0, 0, 0),
        "0,0",
        (0.5, 0),
        None,
        (True, False),
        (2**63, 2**63),
        [3, 3],
    ]
)
LAYERS = st.sampled_from(["0", "4", "8", "16", "nope", "", "0@1", None, 5, ("$object",)])
SHAPES = st.sampled_from(
    [
        None,
        (1, 28, 28),
        (1, 12, 12),
        (1, 0, 0),
        (1, 10**6, 10**6),
        (3, 28, 28),
        "1,28,28",
        (1, 28),
        (-1, 28, 28),
        (1.5, 28, 28),
        (1, 2**40, 1),
    ]
)
TENSORS = st.sampled_from(
    [
        ("$tensor", [1, 1, 28, 28]),
        ("$tensor", [1, 1, 0, 28]),
        ("$tensor", [1, 3, 28, 28]),
        ("$tensor", [28, 28]),
        ("$tensor", [1, 28, 28]),
        ("$tensor", [1, 1, 28, 28], float("nan")),
        ("$tensor", [2, 1, 28, 28]),
        ("$tensor", [1, 1, 5, 5]),
        ("$ndarray", [1, 1, 28, 28]),
        ("$tensor", [1, 1, 28, 28], float("inf")),
        None,
        "nope",
    ]
)


@pytest.fixture(scope="module")
def paths(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    tmp = tmp_path_factory.mktemp("api-files")
    (tmp / "markers").mkdir()
    good = tmp / "digit.png"
    good.write_bytes(corpus.encode(corpus.noise_image("L", (28, 28), corpus.SEED), "PNG"))
    broken = tmp / "broken.png"
    broken.write_bytes(good.read_bytes()[:50])
    payload = tmp / "payload.pt"
    payload.write_bytes(pickle.dumps(corpus.Payload(tmp / "markers" / "api.ran"), protocol=2))
    fifo = tmp / "fifo.png"
    os.mkfifo(fifo)
    return {
        "good": str(good),
        "broken": str(broken),
        "payload": str(payload),
        "fifo": str(fifo),
        "folder": str(tmp),
        "missing": str(tmp / "missing.png"),
        "markers": str(tmp / "markers"),
    }


@st.composite
def calls(draw: st.DrawFn, paths: dict[str, str]) -> tuple[str, list[Any], dict[str, Any]]:
    files = st.sampled_from(
        [paths[k] for k in ("good", "broken", "payload", "fifo", "folder", "missing")]
    )
    images = st.one_of(
        files,
        TENSORS,
        st.just(("$image", "default", paths["good"])),
        st.sampled_from(
            [
                b"",
                b"\x89PNG\r\n\x1a\n",
                ("$pil", "RGB", (0, 0)),
                ("$pil", "F", (3, 3)),
                ("$pil", "I;16", (9, 2)),
            ]
        ),
        JUNK,
    )
    models = st.one_of(st.just(MODEL), st.just(MODEL), st.just(("$module",)), JUNK, files)
    func = draw(
        st.sampled_from(
            [
                "load_model",
                "load_image",
                "capture",
                "summarize",
                "receptive_field",
                "effective_receptive_field",
                "predict",
            ]
        )
    )
    kwargs: dict[str, Any] = {}
    if func == "load_model":
        args = [draw(st.one_of(files, st.sampled_from(["default", "nosuch", ""]), JUNK))]
        if draw(st.booleans()):
            kwargs["weights"] = draw(st.one_of(files, st.sampled_from(["none", "default"]), JUNK))
        if draw(st.booleans()):
            kwargs["trust"] = draw(st.sampled_from([False, 0, "", None, []]))
        if draw(st.booleans()):
            kwargs["input_shape"] = draw(SHAPES)
    elif func == "load_image":
        args = [draw(images), draw(st.one_of(st.just(("$preprocess", "digits")), JUNK))]
        if draw(st.booleans()):
            kwargs["max_side"] = draw(st.one_of(st.integers(-2, 5), JUNK))
    elif func == "capture":
        args = [draw(models), draw(images)]
        if draw(st.booleans()):
            kwargs["layers"] = draw(st.one_of(st.lists(LAYERS, max_size=2), LAYERS))
    elif func == "summarize":
        args = [draw(models), draw(SHAPES)]
    elif func == "receptive_field":
        args = [draw(models), draw(LAYERS), draw(UNITS)]
        if draw(st.booleans()):
            kwargs["input_shape"] = draw(SHAPES)
    elif func == "effective_receptive_field":
        args = [draw(models), draw(images), draw(LAYERS), draw(UNITS)]
        if draw(st.booleans()):
            kwargs["channel"] = draw(st.one_of(st.integers(-2, 70), JUNK))
    else:
        args = [draw(models), draw(images)]
        if draw(st.booleans()):
            kwargs["top"] = draw(st.one_of(st.integers(-1, 12), JUNK))
    return func, args, kwargs


@FUZZ
@given(data=st.data())
def test_api_arguments(
    data: st.DataObject, worker: Callable[[str], Worker], paths: dict[str, str]
) -> None:
    func, args, kwargs = data.draw(calls(paths))
    w = worker("api")
    case = f"cnnviz.{func}(*{_short(args)}, **{_short(kwargs)})"
    outcome = w.run(
        case, {"kind": "api", "func": func, "args": args, "kwargs": kwargs}, deadline=60
    )
    problems = [api_problem(outcome)]
    marker = Path(paths["markers"]) / "api.ran"
    if marker.exists():
        marker.unlink()
        problems.append(f"{case}: PAYLOAD RAN without trust")
    check_all(problems, 1)


def _short(value: Any) -> str:
    try:
        text = repr(value)
    except ValueError:
        text = "<unprintable>"
    return text if len(text) < 200 else text[:200] + "..."
