"""The layer-type table: every spec type is complete and known to the analysis, and the derived lists."""

from __future__ import annotations

import torch
from torch import nn

from cnnviz.core.models import layertypes as lt
from cnnviz.core.models import spec
from cnnviz.core.models.spec.rules import RULES


def test_every_spec_type_is_a_torch_class_of_its_name() -> None:
    for name, entry in lt.SPEC_TYPES.items():
        assert entry.name == name
        assert entry.module is getattr(nn, name)


def test_every_spec_type_is_classified_for_receptive_fields() -> None:
    unknown = [n for n, t in lt.SPEC_TYPES.items() if lt.receptive_kind(t.module) is None]
    assert unknown == []


def test_shape_rules_name_only_spec_types() -> None:
    assert set(RULES) <= set(lt.SPEC_TYPES)


def test_inferred_arguments_are_constructor_parameters() -> None:
    import inspect

    for name, arg in lt.INFERRED.items():
        assert arg in inspect.signature(getattr(nn, name).__init__).parameters


def test_derived_lists() -> None:
    assert lt.SUPPORTED_TYPES[:3] == ("Conv2d", "ConvTranspose2d", "MaxPool2d")
    assert lt.POOLING_TYPES == ("MaxPool2d", "AvgPool2d")
    assert lt.ADAPTIVE_TYPES == ("AdaptiveAvgPool2d", "AdaptiveMaxPool2d")
    assert lt.DROPOUT_TYPES == ("Dropout", "Dropout2d")
    assert lt.INSERTABLE[:3] == ("Conv2d", "Conv2d 1×1", "MaxPool2d")
    assert lt.INSERTABLE[-4:] == ("Dropout", "Dropout2d", "Flatten", "Linear")
    assert set(lt.ACTIVATION_TYPES) < set(lt.INSERTABLE)
    assert "Softmax" in lt.SHAPE_KEEPING and "Flatten" not in lt.SHAPE_KEEPING
    assert lt.PAIR_TYPES == {"MaxPool2d", "AvgPool2d", "AdaptiveAvgPool2d", "AdaptiveMaxPool2d"}


def test_spec_lists_come_from_the_table() -> None:
    assert spec.SUPPORTED_TYPES == lt.SUPPORTED_TYPES
    assert spec.ACTIVATION_TYPES == lt.ACTIVATION_TYPES
    assert spec.DROPOUT_TYPES == lt.DROPOUT_TYPES


def test_geometry_and_formula_of_a_grouped_convolution() -> None:
    conv = nn.Conv2d(6, 8, (3, 5), stride=2, padding="valid", groups=2)
    geo = lt.geometry(conv)
    total = sum(p.numel() for p in conv.parameters())
    assert geo["kernel_size"] == (3, 5) and geo["stride"] == (2, 2) and geo["padding"] == (0, 0)
    assert geo["groups"] == 2 and geo["in_channels"] == 6 and geo["out_channels"] == 8
    assert geo["param_formula"].endswith(f"= 3 × 5 × 6/2 × 8 + 8 = {total:,}")


def test_same_padding_and_pool_geometry() -> None:
    assert lt.conv_padding(nn.Conv2d(1, 1, 4, padding="same", dilation=(1, 2))) == (1, 3)
    assert lt.geometry(nn.MaxPool2d(3))["stride"] == (3, 3)
    assert lt.window_geometry(nn.AvgPool2d(2, 1, 1)) == ((2, 2), (1, 1), (1, 1), (1, 1), False)
    assert lt.window_geometry(nn.ReLU()) is None


def test_linear_formula_and_macs() -> None:
    fc = nn.Linear(12, 5)
    assert lt.param_formula(fc) == "D_in × D_out + D_out = 12 × 5 + 5 = 65"
    out = fc(torch.zeros(1, 12))
    assert lt.module_macs(fc, torch.zeros(1, 12), out) == 60
    conv = nn.Conv2d(2, 4, 3)
    assert lt.module_macs(conv, None, conv(torch.zeros(1, 2, 6, 6))) == conv.weight.numel() * 16
    assert lt.function_macs("torch.matmul", [torch.zeros(2, 3), None], torch.zeros(2, 4)) == 24


def test_settings_text() -> None:
    assert lt.settings_text("Conv2d", {"kernel_size": 3, "padding": 1}) == "3×3 s1 p1"
    assert lt.settings_text("MaxPool2d", {"kernel_size": (2, 3)}) == "2×3 s2×3"
    assert lt.settings_text("AdaptiveAvgPool2d", {"output_size": 1}) == "→ 1×1"
    assert lt.settings_text("Dropout", {}) == "p 0.5"
    assert lt.settings_text("Flatten", {}) == ""
