"""Capture and the per-layer table against torch's own forward pass."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
import torchinfo
import torchvision
from oracles import hooked_shapes
from torch import nn

from cnnviz.core.analysis.capture import ForwardError, capture
from cnnviz.core.analysis.summary import summarize
from cnnviz.core.errors import LayerError

# (name, input size): small inputs keep the suite fast; every network is still run for real in the test.
_SLOW = pytest.mark.slow
# resnet18 and mobilenet_v3_small stay in the fast loop; the others run in the full suite
NETWORKS = [
    ("resnet18", 64),
    pytest.param("densenet121", 64, marks=_SLOW),
    ("mobilenet_v3_small", 64),
    pytest.param("efficientnet_b0", 64, marks=_SLOW),
    pytest.param("inception_v3", 96, marks=_SLOW),
    pytest.param("googlenet", 64, marks=_SLOW),
    pytest.param("convnext_tiny", 64, marks=_SLOW),
    pytest.param("alexnet", 96, marks=_SLOW),
    pytest.param("vgg11", 64, marks=_SLOW),
]


def build(name: str) -> nn.Module:
    kwargs = {"init_weights": False} if name in ("googlenet", "inception_v3") else {}
    if name in ("googlenet", "inception_v3"):
        kwargs["aux_logits"] = False
    return torchvision.models.get_model(name, weights=None, **kwargs).eval()


def reference_forward(model: nn.Module, x: torch.Tensor) -> dict[str, list[tuple[int, ...]]]:
    """Every leaf module's output shapes (one per call), recorded with plain hooks on a real forward."""
    shapes: dict[str, list[tuple[int, ...]]] = {}
    handles = []
    for name, module in model.named_modules():
        if name and not list(module.children()):
            handles.append(
                module.register_forward_hook(
                    lambda _m, _i, out, name=name: shapes.setdefault(name, []).append(
                        tuple(out.shape)
                    )
                )
            )
    with torch.no_grad():
        model(x)
    for h in handles:
        h.remove()
    return shapes


def true_macs(model: nn.Module, x: torch.Tensor) -> int:
    """Multiply-accumulates of convolutions and linear layers, counted from a real forward."""
    total = [0]

    def hook(module, _inp, out):
        if isinstance(module, nn.Conv2d):
            total[0] += module.weight.numel() * out.shape[2] * out.shape[3]
        elif isinstance(module, nn.Linear):
            total[0] += module.weight.numel() * math.prod(out.shape[1:-1])

    handles = [
        m.register_forward_hook(hook)
        for m in model.modules()
        if isinstance(m, (nn.Conv2d, nn.Linear))
    ]
    with torch.no_grad():
        model(x)
    for h in handles:
        h.remove()
    return total[0]


@pytest.mark.parametrize("name,size", NETWORKS)
def test_summary_is_exact_on_torchvision_networks(name, size):
    model = build(name)
    x = torch.randn(1, 3, size, size)
    summary = summarize(model, (3, size, size))
    by_name = {r.name: r for r in summary.rows}

    # output shapes equal those of a real forward pass, call by call
    for module_name, calls in reference_forward(model, x).items():
        for n, shape in enumerate(calls):
            key = module_name if n == 0 else f"{module_name}@{n}"
            assert by_name[key].output_shape == shape, key

    # every functional row too: shapes equal what the real captured values have
    captured = capture(model, x)
    for row in summary.rows:
        value = captured[row.name]
        assert row.output_shape == tuple(value.shape), row.name

    # parameters: per module (whole subtree for containers) and totals
    modules = dict(model.named_modules())
    for row in summary.rows:
        if row.kind in ("module", "container"):
            module = modules[row.name.split("@")[0]]
            assert row.params == sum(p.numel() for p in module.parameters()), row.name
    assert summary.total_params == sum(p.numel() for p in model.parameters())
    assert summary.trainable_params == sum(p.numel() for p in model.parameters() if p.requires_grad)

    # MACs: counted from the real forward; and within 1% of torchinfo except where torchinfo counts a
    # Linear applied at every position (ConvNeXt) only once
    assert summary.total_macs == true_macs(model, x)
    if name != "convnext_tiny":
        info = torchinfo.summary(model, (1, 3, size, size), verbose=0)
        assert abs(summary.total_macs - info.total_mult_adds) <= 0.01 * info.total_mult_adds


def test_conv_row_geometry_and_formula():
    model = nn.Sequential(
        nn.Conv2d(6, 8, (3, 5), stride=(1, 2), padding=(1, 2), groups=2, dilation=(2, 1))
    ).eval()
    row = summarize(model, (6, 20, 20)).row("0")
    conv = model[0]
    assert row.kernel_size == (3, 5) and row.stride == (1, 2) and row.padding == (1, 2)
    assert row.dilation == (2, 1) and row.groups == 2
    assert row.in_channels == 6 and row.out_channels == 8
    total = sum(p.numel() for p in conv.parameters())
    assert row.param_formula.endswith(f"= {total:,}")
    assert "3 × 5 × 6/2 × 8 + 8" in row.param_formula


def test_padding_same_resolved_as_torch_does():
    model = nn.Sequential(nn.Conv2d(1, 1, 4, padding="same")).eval()
    summary = summarize(model, (1, 9, 9))
    assert summary.row("0").output_shape == tuple(model(torch.zeros(1, 1, 9, 9)).shape)


class Branchy(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.act = nn.ReLU(inplace=True)
        self.other = nn.Conv2d(3, 4, 1)
        self.fc = nn.Linear(8 * 4 * 4, 5)

    def forward(self, x):
        a = self.act(self.conv(x))
        b = self.act(self.other(x))  # the same module called twice
        y = torch.cat([a, b], dim=1) + 1
        y = F.max_pool2d(y, 2)
        return self.fc(torch.flatten(y, 1)), y


def test_capture_in_place_reused_functional_and_tuple_outputs():
    torch.manual_seed(0)
    model = Branchy().eval()
    x = torch.randn(1, 3, 8, 8)
    result = capture(model, x)
    assert result.method == "fx"
    conv = model.conv(x)
    other = model.other(x)
    # the conv output is not overwritten by the in-place ReLU that follows it
    torch.testing.assert_close(result["conv"], conv)
    torch.testing.assert_close(result["act"], conv.relu())
    torch.testing.assert_close(result["act@1"], other.relu())
    cat = torch.cat([conv.relu(), other.relu()], 1)
    torch.testing.assert_close(result["cat"], cat)
    torch.testing.assert_close(result["add"], cat + 1)
    torch.testing.assert_close(result["max_pool2d"], F.max_pool2d(cat + 1, 2))
    assert result["flatten"].shape == (1, 128)
    logits, pooled = result.output
    torch.testing.assert_close(result["fc"], logits)
    # in-place flags and the train/eval mode are restored
    assert model.act.inplace is True
    model.train()
    capture(model, x)
    assert model.training and model.conv.training


def test_capture_selected_layers_and_float16():
    model = Branchy().eval()
    x = torch.randn(1, 3, 8, 8)
    result = capture(model, x, layers=["conv", "cat"], dtype=torch.float16)
    assert set(result) == {"conv", "cat"}
    assert result["conv"].dtype == torch.float16
    torch.testing.assert_close(result["conv"].float(), model.conv(x), atol=1e-2, rtol=1e-2)
    with pytest.raises(LayerError, match="closest"):
        capture(model, x, layers=["conv9"])


def test_containers_are_captured_with_their_output():
    model = torchvision.models.resnet18(weights=None).eval()
    x = torch.randn(1, 3, 64, 64)
    result = capture(model, x)
    with torch.no_grad():
        expected = model.layer1(model.maxpool(model.relu(model.bn1(model.conv1(x)))))
    torch.testing.assert_close(result["layer1"], expected)
    torch.testing.assert_close(result["layer1.0.add"], result["layer1.0.bn2"] + result["maxpool"])


class DataDependent(nn.Module):
    """Python control flow on tensor values: torch.fx cannot trace it."""

    def __init__(self):
        super().__init__()
        self.a = nn.Conv2d(1, 2, 3)
        self.b = nn.ReLU(inplace=True)

    def forward(self, x):
        y = self.a(x)
        if y.sum() > 0:
            return self.b(y)
        return self.b(-y)


def test_untraceable_model_falls_back_to_hooks_and_says_so():
    model = DataDependent().eval()
    x = torch.ones(1, 1, 6, 6)
    result = capture(model, x)
    assert result.method == "hooks"
    assert "could not be traced" in result.note
    expected = model.a(x)
    torch.testing.assert_close(result["a"], expected)  # not overwritten by the in-place ReLU
    summary = summarize(model, (1, 6, 6), receptive_fields=False)
    assert summary.traced is False and summary.row("a").output_shape == (1, 2, 4, 4)


def test_forward_error_names_layer_and_shape_and_cleans_up():
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.Flatten(), nn.Linear(10, 2)).eval()
    model.train()
    with pytest.raises(ForwardError) as info:
        capture(model, torch.zeros(1, 3, 8, 8))
    message = str(info.value)
    assert "'2'" in message and "Linear" in message and "[1, 144]" in message
    assert model.training  # mode restored even though the forward raised
    assert all(not m._forward_hooks and not m._forward_pre_hooks for m in model.modules())
    with pytest.raises(ForwardError, match="Linear"):
        summarize(model, (3, 8, 8))


def test_hooks_fallback_forward_error_names_layer():
    model = DataDependent().eval()
    with pytest.raises(ForwardError, match="'a'.*Conv2d"):
        capture(model, torch.zeros(1, 3, 6, 6))
    assert all(not m._forward_hooks and not m._forward_pre_hooks for m in model.modules())


def test_summary_refuses_what_torch_refuses_in_normalisation_layers():
    """The table's fast path for batch/layer norm keeps torch's own input checks."""
    wrong_channels = nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(4)).eval()
    with pytest.raises(RuntimeError):
        wrong_channels(torch.zeros(1, 3, 8, 8))
    with pytest.raises(ForwardError, match="BatchNorm2d"):
        summarize(wrong_channels, (3, 8, 8))
    wrong_dims = nn.Sequential(nn.Flatten(), nn.BatchNorm2d(3)).eval()
    with pytest.raises(ValueError):
        wrong_dims(torch.zeros(1, 3, 2, 2))
    with pytest.raises(ForwardError, match="BatchNorm2d"):
        summarize(wrong_dims, (3, 2, 2))
    wrong_norm = nn.Sequential(nn.Flatten(), nn.LayerNorm(5)).eval()
    with pytest.raises(RuntimeError):
        wrong_norm(torch.zeros(1, 2, 2))
    with pytest.raises(ForwardError, match="LayerNorm"):
        summarize(wrong_norm, (1, 2, 2))
    # and the modules are left as they were
    assert "forward" not in wrong_channels[1].__dict__


class FunctionalConv(nn.Module):
    """A convolution called functionally with its own parameter (a get_attr in the graph)."""

    def __init__(self):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(4, 1, 5, 3))

    def forward(self, x):
        return F.max_pool2d(F.conv2d(x, self.weight, stride=(1, 2), padding=1), 2)


def test_functional_convolution_with_own_parameter_has_macs_and_field():
    model = FunctionalConv().eval()
    summary = summarize(model, (1, 16, 16))
    row = summary.row("conv2d")
    out = F.conv2d(torch.zeros(1, 1, 16, 16), model.weight, stride=(1, 2), padding=1)
    assert row.output_shape == tuple(out.shape)
    assert row.macs == model.weight.numel() * out.shape[2] * out.shape[3]
    assert row.rf.size == (5, 3) and row.rf.stride == (1, 2) and row.rf.padding == (1, 1)


def test_exported_program_has_the_same_table_as_its_source():
    torch.manual_seed(0)
    source = nn.Sequential(nn.Conv2d(1, 2, 3, stride=2), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                           nn.Linear(2 * 3 * 3, 3)).eval()  # fmt: skip
    x = torch.zeros(1, 1, 14, 14)
    exported = torch.export.export(source, (x,)).module()
    a = summarize(source, (1, 14, 14))
    b = summarize(exported, (1, 14, 14))
    assert b.total_params == a.total_params and b.total_macs == a.total_macs
    by_type = {r.type: r for r in b.rows}
    assert by_type["aten.conv2d"].rf == a.row("0").rf
    assert by_type["aten.max_pool2d"].rf == a.row("2").rf
    assert by_type["aten.linear"].output_shape == a.row("4").output_shape
    torch.testing.assert_close(capture(exported, x)["linear"], capture(source, x)["4"])


def test_torchscript_shows_its_output_and_says_why():
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU()).eval()
    scripted = torch.jit.script(model)
    x = torch.randn(1, 1, 6, 6)
    result = capture(scripted, x)
    assert list(result) == ["output"] and "TorchScript" in result.note
    torch.testing.assert_close(result["output"], model(x))
    summary = summarize(scripted, (1, 6, 6))
    assert [r.name for r in summary.rows] == ["output"]
    assert summary.rows[0].output_shape == (1, 2, 4, 4)
    assert summary.total_params == sum(p.numel() for p in model.parameters())
    with pytest.raises(LayerError, match="TorchScript"):
        from cnnviz.core.analysis.receptive import ReceptiveFieldIndex

        ReceptiveFieldIndex(scripted, (1, 6, 6))


def test_lazy_layers_not_yet_made_are_named_and_made_ones_pass() -> None:
    from cnnviz.core.errors import InvalidArgumentError

    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.Flatten(), nn.LazyLinear(3))
    for call in (
        lambda: summarize(model, (1, 8, 8)),
        lambda: capture(model, torch.randn(1, 1, 8, 8)),
    ):
        with pytest.raises(InvalidArgumentError, match=r"lazy layers .*\(2\.weight, 2\.bias\)"):
            call()
    with torch.no_grad():
        model(torch.zeros(1, 1, 8, 8))  # the lazy layer becomes a plain Linear
    assert summarize(model, (1, 8, 8)).rows[-1].output_shape == (1, 3)
    assert capture(model, torch.randn(1, 1, 8, 8)).output.shape == (1, 3)


@pytest.mark.parametrize("dtype", [torch.float64, torch.bfloat16])
def test_table_of_a_model_in_another_precision_matches_its_forward_pass(dtype: torch.dtype) -> None:
    # a model saved in double or half precision: the meta pass runs in the model's own type, as a real one would
    torch.manual_seed(0)
    model = torchvision.models.mobilenet_v3_small(num_classes=10).eval().to(dtype)
    summary = summarize(model, (3, 64, 64))
    x = torch.randn(1, 3, 64, 64, dtype=dtype)
    seen = hooked_shapes(model, x)
    with torch.no_grad():
        assert model(x).dtype == dtype
    checked = 0
    for row in summary.rows:
        if row.name in seen:
            assert row.output_shape == seen[row.name], row.name
            checked += 1
    assert checked == len(seen)
