"""Spec validation checked against torch itself: shapes, parameters and every refusal in words."""

from __future__ import annotations

import json

import pytest
import torch
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from spec_strategies import (
    HYPOTHESIS,
    any_spec,
    torch_truth,
    valid_spec,
)
from torch import nn

from cnnviz.core.errors import CnnvizError, SpecError
from cnnviz.core.models.spec import (
    SUPPORTED_TYPES,
    accepted_arguments,
    build_model,
    infer_output_shape,
    validate_spec,
)

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
        ["kernel 9×9 is larger than its 3×2 input plus padding 0"],
        True,
    ),
    (
        [1, 5, 5],
        [{"type": "ReLU"}, {"type": "Conv2d", "out_channels": 2, "kernel_size": 3, "dilation": 3}],
        1,
        "Conv2d",
        ["dilated kernel 7×7", "5×5 input plus padding 0"],
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
        ["padding 1×2 is more than half the kernel size 4×2", "torch refuses"],
        True,
    ),
    (
        [3, 2, 2],
        [{"type": "MaxPool2d", "kernel_size": 3}],
        0,
        "MaxPool2d",
        ["kernel 3×3 is larger than its 2×2 input plus padding 0"],
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
        ["Linear needs a flat input of shape [N]; add a Flatten before it (input is 16×7×7)"],
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
        ["reflect padding 3 must be smaller than its 3×3 input"],
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
        ["crops its 3×3 input to nothing"],
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
        'layer 1 (Upsample): mode "bilinear" needs an input of shape [C, H, W] but receives 2×16'
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


def test_an_integer_too_long_to_print_is_refused_in_words():
    report = validate_spec({"input_shape": [1, 16, 16], "layers": [], "labels": [10**5000]})
    assert not report.ok and "too large to print" in report.message
