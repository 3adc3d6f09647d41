"""Architecture specs checked against torch itself: real modules, real forward passes on the CPU."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from torch import nn

from cnnviz.core.errors import CnnvizError, SpecError
from cnnviz.core.models.spec import (
    SUPPORTED_TYPES,
    accepted_arguments,
    build_model,
    infer_output_shape,
    load_spec,
    save_spec,
    spec_from_sequential,
    validate_spec,
)

REPO = Path(__file__).resolve().parents[3]
SPATIAL = {
    "Conv2d",
    "ConvTranspose2d",
    "MaxPool2d",
    "AvgPool2d",
    "AdaptiveAvgPool2d",
    "AdaptiveMaxPool2d",
    "BatchNorm2d",
    "ZeroPad2d",
}


# --------------------------------------------------------------------------------------------
# The oracle: torch builds and runs each layer for real, with no help from cnnviz.


def torch_truth(spec: dict, policies: bool = True) -> tuple[list[tuple[int, ...]], int | None]:
    """Per-layer output shapes from a real forward pass, and the index of the first failure.

    A failure is torch refusing the layer, or one of the documented cases where cnnviz is stricter
    than torch (see the spec module's docstring): 2-D layers on non-image inputs, Linear on
    non-flat inputs, a changed batch dimension, an empty output, Softmax over the batch. With
    ``policies`` False only torch's own refusals count.
    """
    x = torch.randn(1, *spec["input_shape"])
    shapes: list[tuple[int, ...]] = []
    for i, layer in enumerate(spec["layers"]):
        kind = layer["type"]
        args = {k: tuple(v) if isinstance(v, list) else v for k, v in layer.items() if k != "type"}
        if policies and policy_refuses(kind, args, x):
            return shapes, i
        if kind in ("Conv2d", "ConvTranspose2d"):
            args.setdefault("in_channels", x.shape[1])
        elif kind == "Linear":
            args.setdefault("in_features", x.shape[-1])
        elif kind in ("BatchNorm2d", "BatchNorm1d"):
            args.setdefault("num_features", x.shape[1])
        try:
            with warnings.catch_warnings(), torch.no_grad():
                warnings.simplefilter("ignore")
                module = getattr(nn, kind)(**args).eval()
                y = module(x)
        except Exception:
            return shapes, i
        if isinstance(y, tuple):  # return_indices=True
            if policies:
                return shapes, i
            y = y[0]
        if policies and (y.dim() < 2 or y.shape[0] != 1 or y.numel() == 0):
            return shapes, i
        x = y
        shapes.append(tuple(x.shape[1:]))
    return shapes, None


def policy_refuses(kind: str, args: dict, x: torch.Tensor) -> bool:
    """The documented cases where cnnviz refuses what torch would run."""
    if kind in SPATIAL and x.dim() != 4:
        return True
    if kind == "Linear" and x.dim() != 2:
        return True
    if kind == "Softmax":
        dim = args.get("dim")
        return (dim is None and x.dim() == 3) or (dim is not None and dim % x.dim() == 0)
    if kind == "Flatten":
        return args.get("start_dim", 1) % x.dim() == 0
    return bool(args.get("return_indices"))


# --------------------------------------------------------------------------------------------
# Strategies


def size(lo: int, hi: int) -> st.SearchStrategy:
    return st.one_of(st.integers(lo, hi), st.lists(st.integers(lo, hi), min_size=2, max_size=2))


def layer_strategy() -> st.SearchStrategy:
    def layer(kind: str, required: dict, optional: dict | None = None) -> st.SearchStrategy:
        return st.fixed_dictionaries({"type": st.just(kind), **required}, optional=optional or {})

    flags = {"inplace": st.booleans()}
    return st.one_of(
        layer(
            "Conv2d",
            {"out_channels": st.integers(0, 5), "kernel_size": size(1, 5)},
            {
                "stride": size(0, 3),
                "padding": st.one_of(size(0, 3), st.sampled_from(["same", "valid"])),
                "dilation": size(1, 3),
                "groups": st.integers(1, 3),
                "bias": st.booleans(),
                "padding_mode": st.sampled_from(["zeros", "reflect", "replicate", "circular"]),
            },
        ),
        layer(
            "ConvTranspose2d",
            {"out_channels": st.integers(1, 4), "kernel_size": size(1, 4)},
            {
                "stride": size(1, 3),
                "padding": size(0, 3),
                "output_padding": size(0, 2),
                "dilation": size(1, 2),
                "groups": st.integers(1, 2),
            },
        ),
        layer(
            "MaxPool2d",
            {"kernel_size": size(1, 4)},
            {
                "stride": size(1, 3),
                "padding": size(0, 2),
                "dilation": size(1, 2),
                "ceil_mode": st.booleans(),
            },
        ),
        layer(
            "AvgPool2d",
            {"kernel_size": size(1, 4)},
            {
                "stride": size(1, 3),
                "padding": size(0, 2),
                "ceil_mode": st.booleans(),
                "count_include_pad": st.booleans(),
                "divisor_override": st.integers(0, 3),
            },
        ),
        layer(
            "AdaptiveAvgPool2d",
            {
                "output_size": st.one_of(
                    st.integers(0, 4),
                    st.lists(st.one_of(st.none(), st.integers(1, 4)), min_size=2, max_size=2),
                )
            },
        ),
        layer("AdaptiveMaxPool2d", {"output_size": size(1, 4)}),
        layer("BatchNorm2d", {}, {"affine": st.booleans(), "momentum": st.none()}),
        layer("BatchNorm1d", {}, {"track_running_stats": st.booleans()}),
        layer("ReLU", {}, flags),
        layer("ReLU6", {}),
        layer("LeakyReLU", {}, {"negative_slope": st.floats(0, 1)}),
        layer("ELU", {}, {"alpha": st.floats(0.1, 2)}),
        layer("GELU", {}, {"approximate": st.sampled_from(["none", "tanh"])}),
        layer("SiLU", {}),
        layer("Hardswish", {}),
        layer("Sigmoid", {}),
        layer("Tanh", {}),
        layer("Softmax", {}, {"dim": st.integers(-3, 3)}),
        layer("Dropout", {}, {"p": st.floats(0, 1)}),
        layer("Dropout2d", {}, {"p": st.floats(0, 1)}),
        layer("Flatten", {}, {"start_dim": st.integers(0, 3), "end_dim": st.integers(-2, 3)}),
        layer("Linear", {"out_features": st.integers(1, 5)}, {"bias": st.booleans()}),
        layer("Identity", {}),
        st.one_of(
            layer(
                "Upsample",
                {"scale_factor": st.sampled_from([0.1, 0.5, 1, 2, 1.5])},
                {"mode": st.sampled_from(["nearest", "bilinear", "linear"])},
            ),
            layer("Upsample", {"size": size(1, 6)}),
        ),
        layer(
            "ZeroPad2d",
            {
                "padding": st.one_of(
                    st.integers(-2, 2), st.lists(st.integers(-2, 2), min_size=4, max_size=4)
                )
            },
        ),
    )


any_spec = st.fixed_dictionaries(
    {
        "input_shape": st.tuples(st.integers(1, 4), st.integers(1, 9), st.integers(1, 9)).map(list),
        "layers": st.lists(layer_strategy(), min_size=1, max_size=6),
    }
)


def valid_layer(channels_hint: st.SearchStrategy) -> st.SearchStrategy:
    """Layers that keep an image an image and rarely fail (a pool on a 1x1 map still can)."""
    return st.one_of(
        st.builds(
            lambda c, k, s, d: {
                "type": "Conv2d",
                "out_channels": c,
                "kernel_size": k,
                "stride": s,
                "padding": d * (k // 2),
                "dilation": d,
            },
            channels_hint,
            st.sampled_from([1, 3, 5]),
            st.integers(1, 2),
            st.integers(1, 2),
        ),
        st.builds(
            lambda k, p: {"type": "MaxPool2d", "kernel_size": k, "padding": p, "ceil_mode": True},
            st.integers(1, 3),
            st.integers(0, 1),
        ).filter(lambda layer: layer["padding"] <= layer["kernel_size"] // 2),
        st.just({"type": "AvgPool2d", "kernel_size": 2, "ceil_mode": True}),
        st.just({"type": "BatchNorm2d"}),
        st.sampled_from([{"type": t} for t in ("ReLU", "SiLU", "Tanh", "Hardswish", "Identity")]),
        st.just({"type": "Dropout2d", "p": 0.1}),
        st.just({"type": "ZeroPad2d", "padding": [1, 0, 2, 1]}),
        st.just({"type": "Upsample", "scale_factor": 2}),
        st.builds(
            lambda c: {"type": "ConvTranspose2d", "out_channels": c, "kernel_size": 2, "stride": 2},
            channels_hint,
        ),
    )


valid_spec = st.builds(
    lambda shape, body, head, classes: {
        "input_shape": shape,
        "layers": body + head + [{"type": "Linear", "out_features": classes}],
    },
    st.tuples(st.integers(1, 3), st.integers(4, 12), st.integers(4, 12)).map(list),
    st.lists(valid_layer(st.integers(1, 6)), min_size=1, max_size=8),
    st.sampled_from(
        [
            [{"type": "Flatten"}],
            [{"type": "AdaptiveAvgPool2d", "output_size": 2}, {"type": "Flatten"}],
            [{"type": "Flatten"}, {"type": "BatchNorm1d"}, {"type": "ReLU"}],
        ]
    ),
    st.integers(1, 5),
)

HYPOTHESIS = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])


# --------------------------------------------------------------------------------------------
# validate_spec agrees with torch


@HYPOTHESIS
@given(any_spec)
def test_validation_agrees_with_real_forward(spec):
    truth, failed_at = torch_truth(spec)
    report = validate_spec(spec)
    assert len(report.layers) == len(spec["layers"])
    if failed_at is None:
        assert report.ok, report.message
        assert report.output_shape == truth[-1]
    else:
        assert not report.ok
        assert report.first_error.index == failed_at, report.message
        assert report.first_error.type == spec["layers"][failed_at]["type"]
        assert "\n" not in report.message
        assert report.message.startswith(f"layer {failed_at} ({report.first_error.type}): ")
        for later in report.layers[failed_at + 1 :]:
            assert not later.checked and not later.ok
            assert later.reason == "not checked: an earlier layer is invalid"
    for check, shape in zip(report.layers, truth, strict=False):
        assert check.ok and check.output_shape == shape


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(valid_spec)
def test_build_model_output_shape_is_the_predicted_one(spec):
    report = validate_spec(spec)
    assume(report.ok)  # a few random stacks shrink a small map to nothing
    model = build_model(spec).eval()
    assert [name for name, _ in model.named_children()] == [
        str(i) for i in range(len(spec["layers"]))
    ]
    x = torch.randn(2, *spec["input_shape"])
    with torch.no_grad():
        for check, module in zip(report.layers, model, strict=True):
            # Inferred arguments are what torch needs for the tensor that really arrives.
            if isinstance(module, nn.Conv2d | nn.ConvTranspose2d):
                assert module.in_channels == x.shape[1]
            if isinstance(module, nn.BatchNorm2d | nn.BatchNorm1d):
                assert module.num_features == x.shape[1]
            if isinstance(module, nn.Linear):
                assert module.in_features == x.shape[-1]
            assert check.input_shape == tuple(x.shape[1:])
            x = module(x)
            assert check.output_shape == tuple(x.shape[1:])
            assert check.params == sum(p.numel() for p in module.parameters())
    assert report.output_shape == tuple(x.shape[1:])
    assert infer_output_shape(spec) == tuple(x.shape[1:])


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-3, 40)
    | st.floats(allow_nan=False)
    | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4)
    ),
    max_leaves=20,
)


@settings(max_examples=150, deadline=None)
@given(
    st.one_of(
        json_values,
        st.fixed_dictionaries(
            {"input_shape": json_values, "layers": st.lists(json_values, max_size=4)}
        ),
        st.fixed_dictionaries(
            {
                "input_shape": st.just([2, 6, 6]),
                "layers": st.lists(
                    st.fixed_dictionaries(
                        {"type": st.sampled_from(SUPPORTED_TYPES)},
                        optional={
                            "kernel_size": json_values,
                            "out_channels": json_values,
                            "padding": json_values,
                            "p": json_values,
                            "dim": json_values,
                            "output_size": json_values,
                        },
                    ),
                    max_size=4,
                ),
            }
        ),
    )
)
def test_validate_never_raises_and_build_raises_only_spec_errors(spec):
    report = validate_spec(spec)
    assert report.ok == (report.first_error is None)
    json.dumps(report.to_dict())
    if report.ok:
        build_model(spec)
    else:
        assert "\n" not in report.message
        with pytest.raises(SpecError):
            build_model(spec)


# --------------------------------------------------------------------------------------------
# Errors in words


def refused_by_torch(spec: dict) -> bool:
    return torch_truth(spec, policies=False)[1] is not None


CASES = [
    # (input_shape, layers, index, type, words expected in the message, torch itself refuses)
    (
        [1, 3, 2],
        [{"type": "Conv2d", "out_channels": 4, "kernel_size": 9}],
        0,
        "Conv2d",
        ["kernel 9x9 is larger than its 3x2 input plus padding 0"],
        True,
    ),
    (
        [1, 5, 5],
        [{"type": "ReLU"}, {"type": "Conv2d", "out_channels": 2, "kernel_size": 3, "dilation": 3}],
        1,
        "Conv2d",
        ["dilated kernel 7x7", "5x5 input plus padding 0"],
        True,
    ),
    (
        [3, 8, 8],
        [{"type": "Conv2d", "out_channels": 4, "kernel_size": 3, "groups": 2}],
        0,
        "Conv2d",
        ["in_channels 3 is not divisible by groups 2"],
        True,
    ),
    (
        [4, 8, 8],
        [{"type": "Conv2d", "out_channels": 3, "kernel_size": 3, "groups": 2}],
        0,
        "Conv2d",
        ["out_channels 3 is not divisible by groups 2"],
        True,
    ),
    (
        [3, 8, 8],
        [{"type": "Conv2d", "out_channels": 0, "kernel_size": 3}],
        0,
        "Conv2d",
        ["out_channels must be at least 1 (got 0)"],
        True,
    ),
    (
        [3, 8, 8],
        [{"type": "Conv2d", "out_channels": 2, "kernel_size": 3, "stride": 0}],
        0,
        "Conv2d",
        ["stride must be at least 1 (got 0)"],
        True,
    ),
    (
        [3, 8, 8],
        [{"type": "MaxPool2d", "kernel_size": 2, "stride": [1, 0]}],
        0,
        "MaxPool2d",
        ["stride must be at least 1 (got [1, 0])"],
        True,
    ),
    (
        [3, 8, 8],
        [{"type": "MaxPool2d", "kernel_size": 3, "padding": 2}],
        0,
        "MaxPool2d",
        ["padding 2 is more than half the kernel size 3", "torch refuses"],
        True,
    ),
    (
        [3, 8, 8],
        [{"type": "AvgPool2d", "kernel_size": [4, 2], "padding": [1, 2]}],
        0,
        "AvgPool2d",
        ["padding 1x2 is more than half the kernel size 4x2", "torch refuses"],
        True,
    ),
    (
        [3, 2, 2],
        [{"type": "MaxPool2d", "kernel_size": 3}],
        0,
        "MaxPool2d",
        ["kernel 3x3 is larger than its 2x2 input plus padding 0"],
        True,
    ),
    (
        [2, 16, 16],
        [{"type": "Flatten"}, {"type": "Linear", "in_features": 288, "out_features": 10}],
        1,
        "Linear",
        [f"Linear expects 288 inputs but receives {2 * 16 * 16}"],
        True,
    ),
    (
        [1, 7, 7],
        [
            {"type": "Conv2d", "out_channels": 16, "kernel_size": 3, "padding": 1},
            {"type": "Linear", "out_features": 10},
        ],
        1,
        "Linear",
        ["Linear needs a flat input of shape [N]; add a Flatten before it (input is 16x7x7)"],
        False,
    ),
    (
        [3, 8, 8],
        [{"type": "Conv2D", "out_channels": 4, "kernel_size": 3}],
        0,
        "Conv2D",
        ['did you mean "Conv2d"?', "supported types: Conv2d,", "ZeroPad2d"],
        True,
    ),
    (
        [3, 8, 8],
        [{"type": "LSTM", "hidden_size": 4}],
        0,
        "LSTM",
        ['"LSTM" is not supported', "supported types:", "Conv2d"],
        False,
    ),
    (
        [3, 8, 8],
        [{"type": "Conv2d", "out_channels": 4, "kernel": 3}],
        0,
        "Conv2d",
        [
            'unknown argument "kernel"',
            'did you mean "kernel_size"?',
            "accepted arguments:",
            "stride",
        ],
        True,
    ),
    (
        [3, 8, 8],
        [{"type": "ReLU", "negative_slope": 0.1}],
        0,
        "ReLU",
        ['unknown argument "negative_slope"', "accepted arguments: inplace"],
        True,
    ),
    (
        [3, 8, 8],
        [{"type": "Conv2d", "out_channels": 4, "kernel_size": "3"}],
        0,
        "Conv2d",
        ['kernel_size must be an integer or a pair [h, w] of integers, not "3"'],
        True,
    ),
    (
        [3, 8, 8],
        [{"type": "Conv2d", "out_channels": 4, "kernel_size": 3, "bias": "yes"}],
        0,
        "Conv2d",
        ['bias must be true or false, not "yes"'],
        False,
    ),
    (
        [3, 8, 8],
        [{"type": "Conv2d", "out_channels": 4.5, "kernel_size": 3}],
        0,
        "Conv2d",
        ["out_channels must be an integer, not 4.5"],
        True,
    ),
    (
        [3, 8, 8],
        [{"type": "Conv2d", "out_channels": 4, "kernel_size": 3, "padding_mode": "mirror"}],
        0,
        "Conv2d",
        ['padding_mode must be one of "zeros", "reflect", "replicate", "circular", not "mirror"'],
        True,
    ),
    (
        [3, 8, 8],
        [{"type": "Conv2d", "in_channels": 1, "out_channels": 4, "kernel_size": 3}],
        0,
        "Conv2d",
        ["in_channels is 1 but the input has 3 channels; remove in_channels or set it to 3"],
        True,
    ),
    (
        [3, 8, 8],
        [{"type": "BatchNorm2d", "num_features": 4}],
        0,
        "BatchNorm2d",
        ["num_features is 4 but the input has 3 channels"],
        True,
    ),
    (
        [3, 8, 8],
        [{"type": "Conv2d", "out_channels": 4}],
        0,
        "Conv2d",
        ['missing required argument "kernel_size"'],
        True,
    ),
    (
        [3, 8, 8],
        [{"type": "Conv2d", "out_channels": 4, "kernel_size": 3, "stride": 2, "padding": "same"}],
        0,
        "Conv2d",
        ['padding "same" needs stride 1'],
        True,
    ),
    (
        [3, 3, 3],
        [
            {
                "type": "Conv2d",
                "out_channels": 1,
                "kernel_size": 3,
                "padding": 3,
                "padding_mode": "reflect",
            }
        ],
        0,
        "Conv2d",
        ["reflect padding 3 must be smaller than its 3x3 input"],
        True,
    ),
    (
        [1, 2, 2],
        [{"type": "ConvTranspose2d", "out_channels": 1, "kernel_size": 3, "output_padding": 1}],
        0,
        "ConvTranspose2d",
        ["output_padding 1 must be smaller than stride 1 or dilation 1"],
        True,
    ),
    (
        [1, 2, 2],
        [{"type": "ConvTranspose2d", "out_channels": 1, "kernel_size": 1, "padding": 1}],
        0,
        "ConvTranspose2d",
        ["padding 1 is too large: the output would be 0"],
        True,
    ),
    (
        [3, 8, 8],
        [{"type": "Flatten"}, {"type": "Conv2d", "out_channels": 4, "kernel_size": 1}],
        1,
        "Conv2d",
        ["Conv2d needs an input of shape [C, H, W] but receives 192", "before the Flatten"],
        True,
    ),
    (
        [3, 8, 8],
        [{"type": "Flatten"}, {"type": "Softmax", "dim": 0}],
        1,
        "Softmax",
        ["dim 0 is the batch dimension"],
        False,
    ),
    (
        [3, 8, 8],
        [{"type": "Flatten"}, {"type": "Softmax", "dim": 2}],
        1,
        "Softmax",
        ["dim 2 is out of range for an input with 2 dimensions"],
        True,
    ),
    (
        [3, 8, 8],
        [{"type": "Flatten", "start_dim": 0}],
        0,
        "Flatten",
        ["start_dim 0 is the batch dimension"],
        False,
    ),
    (
        [3, 8, 8],
        [{"type": "Dropout", "p": 1.5}],
        0,
        "Dropout",
        ["p must be between 0 and 1 (got 1.5)"],
        True,
    ),
    (
        [3, 8, 8],
        [{"type": "Upsample"}],
        0,
        "Upsample",
        ["give exactly one of size and scale_factor"],
        True,
    ),
    (
        [3, 8, 8],
        [{"type": "MaxPool2d", "kernel_size": 2, "return_indices": True}],
        0,
        "MaxPool2d",
        ["return_indices must be false"],
        False,
    ),
    (
        [3, 8, 8],
        [{"type": "AdaptiveAvgPool2d", "output_size": 0}],
        0,
        "AdaptiveAvgPool2d",
        ["output_size must be at least 1"],
        False,
    ),
    (
        [3, 3, 3],
        [{"type": "ZeroPad2d", "padding": -2}],
        0,
        "ZeroPad2d",
        ["crops its 3x3 input to nothing"],
        True,
    ),
]


@pytest.mark.parametrize(("shape", "layers", "index", "kind", "words", "torch_refuses"), CASES)
def test_errors_name_the_layer_in_one_line(shape, layers, index, kind, words, torch_refuses):
    spec = {"input_shape": shape, "layers": layers}
    if kind in SUPPORTED_TYPES:
        assert refused_by_torch(spec) == torch_refuses
    with pytest.raises(SpecError) as caught:
        build_model(spec)
    error = caught.value
    assert isinstance(error, CnnvizError)
    assert (error.index, error.layer_type) == (index, kind)
    message = str(error)
    assert "\n" not in message
    assert message.startswith(f"layer {index} ({kind}): ")
    for text in words:
        assert text in message
    report = validate_spec(spec)
    assert report.first_error.message == message
    assert [c.checked for c in report.layers] == [True] * (index + 1) + [False] * (
        len(layers) - index - 1
    )


def test_unknown_type_lists_closest_match_first():
    report = validate_spec({"input_shape": [1, 8, 8], "layers": [{"type": "Maxpool"}]})
    listed = report.message.split("supported types: ")[1].split(", ")
    assert listed[0] == "MaxPool2d"
    assert sorted(listed) == sorted(SUPPORTED_TYPES)


def test_other_torch_refusals_fall_back_to_torch_words_on_one_line():
    # Reflect padding of a "same" convolution is not worded by cnnviz: torch's words are used.
    spec = {
        "input_shape": [1, 2, 2],
        "layers": [
            {
                "type": "Conv2d",
                "out_channels": 1,
                "kernel_size": 5,
                "padding": "same",
                "padding_mode": "reflect",
            },
        ],
    }
    assert refused_by_torch(spec)
    report = validate_spec(spec)
    assert report.first_error.index == 0
    assert report.message.startswith("layer 0 (Conv2d): ")
    assert "Padding size should be less than" in report.message and "\n" not in report.message


def test_upsample_mode_needs_matching_dimensions():
    # bilinear needs a 4-D tensor; Flatten(start_dim=2) leaves [C, L] (3-D with the batch).
    spec = {
        "input_shape": [2, 4, 4],
        "layers": [
            {"type": "Flatten", "start_dim": 2},
            {"type": "Upsample", "scale_factor": 2, "mode": "bilinear"},
        ],
    }
    assert refused_by_torch(spec)
    assert validate_spec(spec).message == (
        'layer 1 (Upsample): mode "bilinear" needs an input of shape [C, H, W] but receives 2x16'
    )
    spec["layers"][1]["mode"] = "linear"
    assert validate_spec(spec).ok and not refused_by_torch(spec)


def test_layers_after_the_first_error_are_not_checked():
    spec = {
        "input_shape": [1, 8, 8],
        "layers": [
            {"type": "ReLU"},
            {"type": "Conv2d", "out_channels": 2, "kernel_size": 30},
            {"type": "ReLU"},
            "junk",
        ],
    }
    report = validate_spec(spec)
    first, bad, *rest = report.layers
    assert first.ok and first.output_shape == (1, 8, 8)
    assert not bad.ok and bad.checked and bad.input_shape == (1, 8, 8)
    assert all(
        not c.checked and c.reason == "not checked: an earlier layer is invalid" for c in rest
    )
    assert rest[0].type == "ReLU" and rest[1].type is None
    assert report.output_shape is None


@pytest.mark.parametrize(
    ("spec", "words"),
    [
        ([1, 2, 3], "must be a JSON object"),
        ({"layers": []}, 'no "input_shape"'),
        ({"input_shape": [1, 28], "layers": []}, '"input_shape" must be [C, H, W]'),
        ({"input_shape": [1, 0, 28], "layers": []}, "three positive integers"),
        ({"input_shape": [1, 28, 28]}, 'no "layers"'),
        ({"input_shape": [1, 28, 28], "layers": {"type": "ReLU"}}, '"layers" must be a list'),
        (
            {"input_shape": [1, 8, 8], "layers": [], "label": ["a"]},
            'unknown spec key "label" (did you mean "labels"?)',
        ),
        (
            {"input_shape": [1, 8, 8], "layers": [], "labels": "abc"},
            '"labels" must be a list of strings',
        ),
        ({"input_shape": [1, 8, 8], "layers": [], "name": 3}, '"name" must be a string'),
        (
            {"input_shape": [1, 2, 2], "labels": ["a", "b"], "layers": [{"type": "Flatten"}]},
            "the spec has 2 labels but the last layer gives 4 outputs",
        ),
        (
            {"input_shape": [1, 2, 2], "labels": ["a", "b"], "layers": [{"type": "ReLU"}]},
            "not a flat one",
        ),
    ],
)
def test_whole_spec_problems_have_no_index(spec, words):
    report = validate_spec(spec)
    assert not report.ok and report.first_error.index is None
    assert words in report.message and "\n" not in report.message
    with pytest.raises(SpecError) as caught:
        build_model(spec)
    assert caught.value.index is None and words in str(caught.value)


@pytest.mark.parametrize(
    ("layer", "words"),
    [
        (7, 'a layer must be an object like {"type": "ReLU"}, not 7'),
        ({"out_channels": 3}, 'the layer has no "type"'),
        ({"type": 5}, '"type" must be a layer type name'),
    ],
)
def test_malformed_layers_are_named_by_index(layer, words):
    report = validate_spec({"input_shape": [1, 8, 8], "layers": [{"type": "ReLU"}, layer]})
    assert report.first_error.index == 1
    assert report.first_error.type is None
    assert report.message.startswith(f"layer 1: {words}")


def test_accepted_arguments_come_from_the_constructor_signature():
    assert accepted_arguments("Conv2d")[:3] == ["in_channels", "out_channels", "kernel_size"]
    assert "device" not in accepted_arguments("Linear")
    assert accepted_arguments("Sigmoid") == []
    with pytest.raises(SpecError):
        accepted_arguments("Module")


def test_valid_report_fields_and_state_dict_names():
    spec = {
        "input_shape": [3, 10, 12],
        "layers": [
            {
                "type": "Conv2d",
                "out_channels": 6,
                "kernel_size": [3, 5],
                "stride": 2,
                "bias": False,
            },
            {"type": "BatchNorm2d"},
            {"type": "ReLU"},
            {"type": "Flatten"},
            {"type": "Linear", "out_features": 7},
        ],
    }
    report = validate_spec(spec)
    model = build_model(spec)
    x = torch.randn(1, 3, 10, 12)
    flat = model[:4](x).shape[1]
    assert report.layers[0].module_kwargs == {
        "out_channels": 6,
        "kernel_size": (3, 5),
        "stride": 2,
        "bias": False,
        "in_channels": 3,
    }
    assert report.layers[4].module_kwargs["in_features"] == flat
    assert report.params == sum(p.numel() for p in model.parameters())
    assert set(model.state_dict()) >= {
        "0.weight",
        "1.weight",
        "1.running_mean",
        "4.weight",
        "4.bias",
    }
    assert "0.bias" not in model.state_dict()
    data = report.to_dict()
    assert json.loads(json.dumps(data))["layers"][0]["module_kwargs"]["kernel_size"] == [3, 5]
    assert data["output_shape"] == [7]


def test_validation_does_not_change_the_spec():
    spec = {
        "input_shape": [1, 8, 8],
        "layers": [{"type": "Conv2d", "out_channels": 2, "kernel_size": [3, 3]}],
    }
    before = json.dumps(spec)
    validate_spec(spec)
    build_model(spec)
    assert json.dumps(spec) == before


# --------------------------------------------------------------------------------------------
# spec_from_sequential


def assert_round_trip(model: nn.Sequential, input_shape, batch: int = 2) -> dict:
    spec = spec_from_sequential(model, input_shape)
    json.dumps(spec)
    rebuilt = build_model(spec)
    original = {k: v.shape for k, v in model.state_dict().items()}
    assert {k: v.shape for k, v in rebuilt.state_dict().items()} == original
    rebuilt.load_state_dict(model.state_dict())
    model.eval()
    rebuilt.eval()
    x = torch.randn(batch, *input_shape)
    with torch.no_grad():
        assert torch.equal(model(x), rebuilt(x))
    for a, b in zip(model, rebuilt, strict=True):
        assert repr(a) == repr(b)
    return spec


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(valid_spec)
def test_spec_from_sequential_round_trips_random_specs(spec):
    assume(validate_spec(spec).ok)
    assert_round_trip(build_model(spec), spec["input_shape"])


def test_spec_from_sequential_keeps_non_default_arguments():
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(3, 8, (3, 5), stride=(1, 2), padding=(1, 2), bias=False, padding_mode="reflect"),
        nn.BatchNorm2d(8, eps=1e-3, momentum=None, affine=False),
        nn.LeakyReLU(0.2),
        nn.MaxPool2d(3, stride=1, padding=1, ceil_mode=True),
        nn.AvgPool2d(2, count_include_pad=False, divisor_override=3),
        nn.ConvTranspose2d(8, 4, 2, stride=2, groups=2),
        nn.ZeroPad2d((1, 0, 2, 0)),
        nn.Upsample(scale_factor=0.5, mode="bilinear", align_corners=False),
        nn.GELU(approximate="tanh"),
        nn.AdaptiveMaxPool2d((3, None)),
        nn.Dropout2d(0.3),
        nn.Flatten(),
        nn.BatchNorm1d(4 * 3 * 2),
        nn.ELU(alpha=0.5),
        nn.Linear(24, 5, bias=False),
        nn.Softmax(dim=1),
    )
    # Random running statistics, so eval outputs depend on them being copied.
    for module in model.modules():
        if isinstance(module, nn.BatchNorm1d | nn.BatchNorm2d) and module.running_mean is not None:
            module.running_mean.uniform_(-1, 1)
    spec = assert_round_trip(model, (3, 10, 10))
    conv = spec["layers"][0]
    assert conv == {
        "type": "Conv2d",
        "out_channels": 8,
        "kernel_size": [3, 5],
        "stride": [1, 2],
        "padding": [1, 2],
        "bias": False,
        "padding_mode": "reflect",
    }
    assert spec["layers"][3] == {
        "type": "MaxPool2d",
        "kernel_size": 3,
        "stride": 1,
        "padding": 1,
        "ceil_mode": True,
    }
    assert spec["layers"][2] == {"type": "LeakyReLU", "negative_slope": 0.2}


def torchvision_features(name: str) -> nn.Sequential:
    """A torchvision model's real ``features`` with random weights.

    Built on the meta device first, so the huge classifier is never initialised on the CPU.
    """
    torchvision = pytest.importorskip("torchvision")
    with torch.device("meta"):
        model = getattr(torchvision.models, name)(weights=None)
    features = model.features.to_empty(device="cpu")
    torch.manual_seed(0)
    with torch.no_grad():
        for tensor in [*features.parameters(), *features.buffers()]:
            tensor.copy_(
                torch.rand_like(tensor.float()).to(tensor.dtype)
                if tensor.is_floating_point()
                else tensor.zero_()
            )
    return features


@pytest.mark.parametrize(("name", "side"), [("vgg11", 32), ("vgg11_bn", 32), ("alexnet", 64)])
def test_torchvision_features_round_trip(name, side):
    features = torchvision_features(name)
    spec = assert_round_trip(features, (3, side, side), batch=1)
    assert len(spec["layers"]) == len(features)
    with torch.no_grad():
        expected = tuple(features.eval()(torch.zeros(1, 3, side, side)).shape[1:])
    assert infer_output_shape(spec) == expected
    report = validate_spec(spec)
    assert report.params == sum(p.numel() for p in features.parameters())
    if name == "alexnet":
        assert spec["layers"][0]["kernel_size"] == 11 and spec["layers"][0]["stride"] == 4


def test_spec_from_sequential_names_the_first_unsupported_module():
    class MyConv(nn.Conv2d):
        pass

    for odd, name in [
        (nn.LSTM(4, 4), "LSTM"),
        (MyConv(4, 4, 1), "MyConv"),
        (nn.Sequential(), "Sequential"),
    ]:
        model = nn.Sequential(nn.Conv2d(3, 4, 1), nn.ReLU(), odd)
        with pytest.raises(SpecError) as caught:
            spec_from_sequential(model, (3, 8, 8))
        assert (caught.value.index, caught.value.layer_type) == (2, name)
        assert str(caught.value).startswith(f"layer 2 ({name}): ")


def test_spec_from_sequential_checks_the_input_shape():
    model = nn.Sequential(nn.Conv2d(3, 4, 3))
    with pytest.raises(SpecError) as caught:
        spec_from_sequential(model, (1, 8, 8))
    assert caught.value.index == 0 and "in_channels 3" in str(caught.value)
    with pytest.raises(SpecError) as caught:
        spec_from_sequential(model, (3, 2, 2))
    assert "kernel 3x3 is larger than its 2x2 input" in str(caught.value)
    with pytest.raises(SpecError):
        spec_from_sequential(nn.Conv2d(3, 4, 3), (3, 8, 8))


def test_spec_from_sequential_names_and_labels():
    spec = spec_from_sequential(
        nn.Sequential(nn.Flatten(), nn.Linear(4, 2)), [1, 2, 2], labels=["a", "b"], name="tiny"
    )
    assert spec == {
        "name": "tiny",
        "input_shape": [1, 2, 2],
        "labels": ["a", "b"],
        "layers": [{"type": "Flatten"}, {"type": "Linear", "out_features": 2}],
    }


# --------------------------------------------------------------------------------------------
# Files


def test_save_and_load_round_trip(tmp_path):
    spec = {
        "layers": [{"type": "Conv2d", "out_channels": 2, "kernel_size": (3, 3)}, {"type": "ReLU"}],
        "input_shape": (1, 8, 8),
        "name": "Ünïcode net",
        "labels": [],
    }
    path = tmp_path / "net.json"
    save_spec(spec, path)
    text = path.read_text(encoding="utf-8")
    assert text.endswith("}\n")
    assert '    {"type": "ReLU"}' in text.splitlines()
    assert text.index('"name"') < text.index('"input_shape"') < text.index('"layers"')
    loaded = load_spec(path)
    assert loaded == json.loads(json.dumps(spec))
    assert "Ünïcode" in loaded["name"]
    assert [p.name for p in tmp_path.iterdir()] == ["net.json"]  # no temp file left behind
    # Overwrite in place.
    save_spec({**loaded, "name": "second"}, path)
    assert load_spec(path)["name"] == "second"
    assert len(list(tmp_path.iterdir())) == 1


def test_save_refuses_what_json_cannot_hold(tmp_path):
    path = tmp_path / "bad.json"
    with pytest.raises(SpecError):
        save_spec(
            {"input_shape": [1, 2, 2], "layers": [{"type": "Dropout", "p": float("nan")}]}, path
        )
    with pytest.raises(SpecError):
        save_spec({"input_shape": [1, 2, 2], "layers": [object()]}, path)
    with pytest.raises(SpecError) as caught:
        save_spec({"input_shape": [1, 2, 2], "layers": []}, tmp_path / "missing" / "net.json")
    assert "does not exist" in str(caught.value)
    assert list(tmp_path.iterdir()) == []


def test_load_reports_bad_json_with_line_and_column(tmp_path):
    path = tmp_path / "broken.json"
    path.write_text('{\n  "input_shape": [1, 28, 28],\n  "layers": [}\n', encoding="utf-8")
    with pytest.raises(SpecError) as caught:
        load_spec(path)
    message = str(caught.value)
    assert "broken.json is not valid JSON" in message
    assert "line 3, column" in message and "\n" not in message


@pytest.mark.parametrize(
    ("content", "words"),
    [
        ("[1, 2]", "must hold a JSON object"),
        ("", "is not valid JSON"),
        (b"\xff\xfe\x00", "not a text file"),
    ],
)
def test_load_rejects_files_that_are_not_specs(tmp_path, content, words):
    path = tmp_path / "x.json"
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    with pytest.raises(SpecError) as caught:
        load_spec(path)
    assert words in str(caught.value)


def test_load_missing_file_and_folder(tmp_path):
    with pytest.raises(SpecError) as caught:
        load_spec(tmp_path / "nope.json")
    assert "nope.json" in str(caught.value) and "does not exist" in str(caught.value)
    with pytest.raises(SpecError) as caught:
        load_spec(tmp_path)
    assert "is a folder" in str(caught.value)


def test_bundled_tiny_cnn_example():
    spec = load_spec(REPO / "resources" / "models" / "tiny_cnn.json")
    assert spec["input_shape"] == [1, 28, 28]
    assert spec["labels"] == [str(i) for i in range(10)]
    report = validate_spec(spec)
    assert report.ok, report.message
    model = build_model(spec).eval()
    with torch.no_grad():
        out = model(torch.randn(3, 1, 28, 28))
    assert out.shape == (3, len(spec["labels"]))
    assert report.params == sum(p.numel() for p in model.parameters())


def test_spec_module_is_qt_free():
    for path in (REPO / "cnnviz" / "core" / "models" / "spec").glob("*.py"):
        source = path.read_text(encoding="utf-8")
        for name in ("PySide6", "pyqtgraph", "cnnviz.gui"):
            assert f"import {name}" not in source and f"from {name}" not in source


def test_warm_up_runs_a_valid_spec_of_every_meta_run_layer():
    from cnnviz.core.models.spec import build as spec_module

    report = validate_spec(spec_module._WARM_UP_SPEC)
    assert report.ok, report.message
    meta_run = {"Conv2d", "ConvTranspose2d", "MaxPool2d", "AvgPool2d", "AdaptiveAvgPool2d"}
    meta_run |= {"AdaptiveMaxPool2d", "Flatten", "Upsample", "ZeroPad2d"}
    assert meta_run <= {check.type for check in report.layers}
    assert torch_truth(spec_module._WARM_UP_SPEC)[0][-1] == report.output_shape
    spec_module.warm_up()
