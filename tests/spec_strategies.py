"""Spec test cases shared by the spec tests: a torch oracle and hypothesis strategies of layers and specs."""

from __future__ import annotations

import warnings
from pathlib import Path

import torch
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from torch import nn

REPO = Path(__file__).resolve().parents[1]
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
