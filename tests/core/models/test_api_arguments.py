"""The public API on arguments of every wrong kind: it succeeds or raises a CnnvizError, nothing else.

A property test throws random values (None, text, floats with NaN and infinities, negative and huge
integers, tuples of the wrong length, bytes, arbitrary objects) at each argument of each public function
on a real tiny model; named cases pin the messages and the ValueError/TypeError side of each error.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torch import nn

import cnnviz
from cnnviz.core.errors import CnnvizError

SHAPE = (1, 8, 8)


def _net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(1, 3, 3), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(27, 4)
    )


MODEL = cnnviz.load_model(_net(), input_shape=SHAPE)
X = torch.randn(1, *SHAPE)
LAYERS = ["0", "1", "2", "3", "4"]

JUNK = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**30), max_value=10**30),
    st.integers(min_value=-3, max_value=12),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
    st.binary(max_size=8),
    st.lists(st.integers(min_value=-3, max_value=40), max_size=5).map(tuple),
    st.lists(
        st.one_of(st.integers(-3, 30), st.floats(), st.text(max_size=3), st.none()), max_size=4
    ),
    st.sampled_from(
        [object(), np.int64(2), np.float32(1.5), torch.zeros(2), torch.tensor(1), nn.ReLU(), ...]
    ),
    st.sampled_from(LAYERS),
)

# name -> (function, valid positional arguments, valid keyword arguments)
CALLS: dict[str, tuple[Any, tuple[Any, ...], dict[str, Any]]] = {
    "capture": (cnnviz.capture, (MODEL, X), {"layers": None, "dtype": None, "to_cpu": False}),
    "summarize": (
        cnnviz.summarize,
        (MODEL, SHAPE),
        {"receptive_fields": True, "name": None},
    ),
    "receptive_field": (
        cnnviz.receptive_field,
        (MODEL, "0", (1, 2)),
        {"input_shape": None, "geometry": None},
    ),
    "effective_receptive_field": (
        cnnviz.effective_receptive_field,
        (MODEL, X, "0", (1, 2)),
        {"channel": None},
    ),
    "predict": (cnnviz.predict, (MODEL, X), {"top": 3}),
}
SLOTS = [
    (name, slot)
    for name, (_f, args, kwargs) in CALLS.items()
    for slot in [*range(len(args)), *kwargs]
]


def _call(name: str, slot: int | str, value: Any) -> Any:
    function, args, kwargs = CALLS[name]
    args_list, kwargs = list(args), dict(kwargs)
    if isinstance(slot, int):
        args_list[slot] = value
    else:
        kwargs[slot] = value
    return function(*args_list, **kwargs)


@pytest.mark.parametrize(("name", "slot"), SLOTS, ids=[f"{n}-{s}" for n, s in SLOTS])
@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(value=JUNK)
def test_any_argument_gives_a_result_or_a_sentence(name, slot, value):
    try:
        _call(name, slot, value)
    except CnnvizError as exc:
        text = str(exc)
        assert text and "\n" not in text
        assert "Traceback" not in text


def test_the_valid_calls_really_run():
    for name in CALLS:
        function, args, kwargs = CALLS[name]
        function(*args, **kwargs)


# ---------------------------------------------------------------------------------------------- named cases


@pytest.mark.parametrize(
    ("unit", "kind", "words"),
    [
        ((1,), ValueError, "not 1 number"),
        ((1, 2, 3), ValueError, "not 3 numbers"),
        (("a", "b"), TypeError, "whole number, not 'a'"),
        ((1.5, 2), TypeError, "not 1.5"),
        ((2.0, 2), TypeError, "not 2.0"),
        ((math.nan, 0), TypeError, "not nan"),
        (3, TypeError, "two whole numbers"),
        ("12", TypeError, "two whole numbers"),
        (None, TypeError, "two whole numbers"),
    ],
)
def test_units_are_never_truncated_or_rounded(unit, kind, words):
    for call in (
        lambda: cnnviz.receptive_field(MODEL, "0", unit),
        lambda: cnnviz.effective_receptive_field(MODEL, X, "0", unit),
    ):
        with pytest.raises(CnnvizError, match=words) as caught:
            call()
        assert isinstance(caught.value, kind)


def test_integer_kinds_are_accepted_as_units():
    plain = cnnviz.receptive_field(MODEL, "0", (1, 2))
    for unit in [(np.int64(1), np.int32(2)), [1, 2], torch.tensor([1, 2]), np.array([1, 2])]:
        assert cnnviz.receptive_field(MODEL, "0", unit).box == plain.box


@pytest.mark.parametrize(
    ("call", "kind", "words"),
    [
        (lambda: cnnviz.receptive_field(MODEL, None, (0, 0)), TypeError, "name as a string"),
        (lambda: cnnviz.capture(MODEL, X, layers=[None]), TypeError, "name as a string"),
        (lambda: cnnviz.capture(MODEL, X, layers="0"), TypeError, "not one string"),
        (lambda: cnnviz.capture(MODEL, X, dtype="float16"), TypeError, "torch.float16"),
        (lambda: cnnviz.capture(MODEL, None), TypeError, "cnnviz.load_image"),
        (lambda: cnnviz.capture("resnet18", X), TypeError, "load it first"),
        (
            lambda: cnnviz.receptive_field(MODEL, "0", (0, 0), geometry="junk"),
            TypeError,
            "image.geometry",
        ),
        (
            lambda: cnnviz.receptive_field(MODEL, "0", (0, 0), input_shape=(1, 28)),
            ValueError,
            "not 2: give channels, height and width",
        ),
        (
            lambda: cnnviz.receptive_field(MODEL, "0", (0, 0), input_shape=(1, 10**12, 10**12)),
            ValueError,
            "above 65,536",
        ),
        (lambda: cnnviz.summarize(MODEL, (1, 12.5, 12)), TypeError, "not 12.5"),
        (lambda: cnnviz.summarize(MODEL, "abc"), TypeError, "not 'abc'"),
        (lambda: cnnviz.summarize(MODEL, (1, 0, 8)), ValueError, "positive"),
        (lambda: cnnviz.summarize(MODEL, receptive_fields="no"), TypeError, "True or False"),
        (
            lambda: cnnviz.effective_receptive_field(MODEL, X, "0", (0, 0), channel="x"),
            TypeError,
            "channel must be a whole number",
        ),
        (
            lambda: cnnviz.effective_receptive_field(MODEL, X.long(), "0", (0, 0)),
            ValueError,
            "floating-point",
        ),
        (
            lambda: cnnviz.effective_receptive_field(MODEL, torch.randn(2, *SHAPE), "0", (0, 0)),
            ValueError,
            "not a batch of 2",
        ),
        (lambda: cnnviz.predict(MODEL, X, top="abc"), TypeError, "whole number"),
        (lambda: cnnviz.predict(object(), X), TypeError, "cnnviz.load_model"),
    ],
)
def test_named_wrong_arguments(call, kind, words):
    with pytest.raises(CnnvizError, match=words) as caught:
        call()
    assert isinstance(caught.value, kind)
    assert "\n" not in str(caught.value)


def test_a_wrong_size_picture_for_the_effective_field_names_layer_and_shape():
    from cnnviz.core.analysis.capture import ForwardError

    with pytest.raises(ForwardError) as caught:
        cnnviz.effective_receptive_field(MODEL, torch.randn(1, 1, 2, 2), "0", (0, 0))
    assert "layer '0' (Conv2d)" in str(caught.value) and "[1, 1, 2, 2]" in str(caught.value)
    with pytest.raises(ForwardError, match=r"\[1, 3, 8, 8\]"):
        cnnviz.effective_receptive_field(MODEL, torch.randn(1, 3, 8, 8), "0", (0, 0))
    # the failed pass left the model as it was: the next field is the same as a fresh one
    again = cnnviz.effective_receptive_field(MODEL, X, "0", (1, 2))
    assert again.support_box == (1, 2, 3, 4)


@pytest.mark.parametrize(
    ("kwargs", "kind", "words"),
    [
        ({"input_shape": (1, 28)}, ValueError, "3 whole numbers"),
        ({"input_shape": "abc"}, TypeError, "not 'abc'"),
        ({"trust": "yes"}, TypeError, "True or False"),
        ({"progress": 5}, TypeError, "progress"),
    ],
)
def test_load_model_arguments(kwargs, kind, words):
    with pytest.raises(CnnvizError, match=words) as caught:
        cnnviz.load_model(_net(), **kwargs)
    assert isinstance(caught.value, kind)


@pytest.mark.parametrize("spec", [None, 5, object(), 2.5])
def test_load_model_of_no_model(spec):
    with pytest.raises(CnnvizError):
        cnnviz.load_model(spec)
