"""Hypothesis over the spec schema with hostile values: ``validate_spec`` never raises; ``build_model`` and
``load_model`` build the model or raise ``SpecError``/``CnnvizError``, within a deadline and the memory cap."""

from __future__ import annotations

import json
import pickle
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from fuzz_harness import PEAKS, Worker, api_problem, check_all, cli_problem
from hypothesis import given, settings
from hypothesis import strategies as st

from cnnviz.core.models.spec import SUPPORTED_TYPES, SpecReport, accepted_arguments, validate_spec


def deep(n: int) -> Any:
    value: Any = 1
    for _ in range(n):
        value = [value]
    return value


HOSTILE_SCALARS = st.sampled_from(
    [
        0,
        -1,
        -(2**31),
        2**31,
        2**63,
        2**64 + 1,
        10**40,
        10**5000,
        1e308,
        float("inf"),
        float("-inf"),
        float("nan"),
        -0.0,
        0.5,
        True,
        False,
        None,
        "",
        "same",
        "valid",
        "3",
        "nearest",
        "x" * 1000,
        "\x00",
        "\u202e",
        [],
        {},
    ]
)
VALUES = st.one_of(
    st.integers(-2, 9),
    st.integers(1, 4),
    HOSTILE_SCALARS,
    st.floats(allow_nan=True, allow_infinity=True),
    st.lists(st.integers(-1, 6), max_size=4),
    st.lists(HOSTILE_SCALARS, min_size=1, max_size=3),
    st.just(deep(40)),
    st.just(deep(5000)),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
)


@st.composite
def layers(draw: st.DrawFn) -> Any:
    if draw(st.integers(0, 19)) == 0:
        return draw(st.one_of(HOSTILE_SCALARS, st.just(deep(3000)), st.lists(st.integers())))
    layer_type = draw(
        st.sampled_from([*SUPPORTED_TYPES, "Conv3d", "Module", "__import__", "os.system"])
    )
    layer: dict[str, Any] = {"type": layer_type}
    names = accepted_arguments(layer_type) if layer_type in SUPPORTED_TYPES else ["x"]
    for name in draw(
        st.lists(st.sampled_from([*names, "device", "dtype", "bogus"]), max_size=4, unique=True)
    ):
        layer[name] = draw(VALUES)
    if draw(st.integers(0, 9)) == 0:
        del layer["type"]
    return layer


SHAPES = st.one_of(
    st.lists(st.integers(1, 4), min_size=1, max_size=1).map(lambda c: [c[0], 16, 16]),
    st.tuples(st.integers(1, 4), st.integers(1, 40), st.integers(1, 40)).map(list),
    st.sampled_from(
        [
            [1, 28, 28],
            [3, 1, 1],
            [1, 1, 65535],
            [0, 8, 8],
            [1, -3, 8],
            [1, 8],
            [1, 8, 8, 8],
            [1, 10**6, 10**6],
            [1, 10**5000, 2],
            "1,28,28",
            None,
        ]
    ),
)


@st.composite
def specs(draw: st.DrawFn) -> Any:
    if draw(st.integers(0, 24)) == 0:
        return draw(st.one_of(HOSTILE_SCALARS, st.just(deep(3000)), st.lists(st.integers())))
    spec: dict[str, Any] = {
        "input_shape": draw(SHAPES),
        "layers": draw(st.lists(layers(), max_size=6)),
    }
    extras = draw(
        st.lists(
            st.sampled_from(["labels", "name", "preprocess", "description", "label", "__class__"]),
            max_size=2,
            unique=True,
        )
    )
    for key in extras:
        spec[key] = draw(st.one_of(VALUES, st.lists(st.text(max_size=3), max_size=12)))
    return spec


FUZZ = settings(settings.get_profile("fuzz"), max_examples=150, deadline=10_000)
FUZZ_WORKER = settings(settings.get_profile("fuzz-worker"), max_examples=40, deadline=None)
_SPEC_FILE: dict[str, Path] = {}


@pytest.fixture(scope="module")
def spec_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("specs") / "fuzz-spec.json"


@FUZZ
@given(spec=specs())
def test_validate_spec_never_raises(spec: Any) -> None:
    start = time.perf_counter()
    report = validate_spec(spec)
    PEAKS.count("spec-validate", time.perf_counter() - start)
    assert isinstance(report, SpecReport)
    if not report.ok:
        message = report.message
        assert isinstance(message, str) and message.strip() and "\n" not in message


@FUZZ_WORKER
@given(spec=specs())
def test_build_and_load_spec(spec: Any, worker: Callable[[str], Worker], spec_file: Path) -> None:
    """build_model in the capped worker; as a file through load_model and ``cnnviz summary``."""
    try:
        pickle.dumps(spec)
    except RecursionError:
        return  # too deep to send to the worker; test_validate_spec_never_raises covers it in-process
    w = worker("specs")
    problems = [
        api_problem(
            w.run(
                f"build_model({_short(spec)})",
                {"kind": "api", "func": "cnnviz.core.models.spec.build_model", "args": [spec]},
            )
        )
    ]
    try:
        text = json.dumps(spec)
    except (ValueError, RecursionError):  # 5000-digit ints, deep nesting: json cannot write them
        text = None
    if text is not None:
        spec_file.write_text(text)
        problems.append(
            api_problem(
                w.run(
                    f"load_model(file {_short(spec)})",
                    {"kind": "api", "func": "load_model", "args": [str(spec_file)]},
                )
            )
        )
        problems.append(
            cli_problem(
                w.run(
                    f"cnnviz summary --model (file {_short(spec)})",
                    {"kind": "cli", "argv": ["summary", "--model", str(spec_file)]},
                )
            )
        )
    check_all(problems, len(problems))


def _short(spec: Any) -> str:
    try:
        text = repr(spec)
    except (ValueError, RecursionError):
        text = "<unprintable spec>"
    return text if len(text) < 300 else text[:300] + "..."
