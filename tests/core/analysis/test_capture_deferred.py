"""Layer values the capture recomputes when read: bit-equal to what the model computes, in every case."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
import timm
import torch
import torch.nn.functional as F
import torchvision
from torch import nn

from cnnviz.core.analysis.capture import CaptureResult, LayerArrays, capture
from cnnviz.core.analysis.deferred import LayerValues, RecomputeChain
from cnnviz.core.analysis.graph import eval_mode, layer_graph

_SLOW = pytest.mark.slow


def hooked_values(model: nn.Module, x: torch.Tensor) -> dict[str, torch.Tensor]:
    """Every module's output as its forward hook sees it in a plain forward, copied at once (a later in-place
    layer overwrites it), keyed like capture keys (``name@n`` for repeated calls)."""
    values: dict[str, torch.Tensor] = {}
    calls: dict[str, int] = {}

    def hook(name: str) -> Any:
        def record(_m: nn.Module, _a: tuple[Any, ...], out: Any) -> None:
            n = calls.get(name, 0)
            calls[name] = n + 1
            if isinstance(out, torch.Tensor):
                values[name if n == 0 else f"{name}@{n}"] = out.detach().clone()

        return record

    handles = [m.register_forward_hook(hook(name)) for name, m in model.named_modules() if name]
    try:
        with torch.no_grad():
            values["<output>"] = model(x).detach().clone()
    finally:
        for h in handles:
            h.remove()
    return values


def kept_capture(model: nn.Module, x: torch.Tensor) -> CaptureResult:
    """A capture that keeps every value as the pass computed it (a stored type, even the model's own, defers
    nothing)."""
    return capture(model, x, dtype=x.dtype)


def assert_exact(model: nn.Module, x: torch.Tensor) -> CaptureResult:
    """Every captured module output equals the hooks' copy; every other captured value equals the kept
    capture's; the output equals the model's."""
    truth = hooked_values(model, x)
    kept = kept_capture(model, x)
    capture(model, x)  # the first pass keeps every value: it tells which layers hold tensors
    result = capture(model, x)
    assert list(result) == list(kept)
    # shapes are known before any value is computed, and they are the real values' shapes
    assert isinstance(result.activations, LayerValues)
    shapes = {key: result.activations.shape(key) for key in result}
    for key, value in kept.items():
        first = (
            value
            if isinstance(value, torch.Tensor)
            else next(v for v in value if torch.is_tensor(v))
        )
        assert shapes[key] == tuple(first.shape), key
    hooked = 0
    for key in result:
        value = result[key]
        if key in truth and isinstance(value, torch.Tensor):
            assert torch.equal(value, truth[key]), key
            hooked += 1
        if isinstance(value, torch.Tensor):
            assert torch.equal(value, kept[key]), key
        else:
            pairs = zip(value, kept[key], strict=True)
            assert all(torch.equal(a, b) if torch.is_tensor(a) else a == b for a, b in pairs), key
    assert hooked > 0
    assert torch.equal(result.output, truth["<output>"])
    return result


class Blocks(nn.Module):
    """Every kind of layer the capture recomputes, and in-place activations with their own settings."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.bn = nn.BatchNorm2d(8)
        self.act = nn.ReLU6(inplace=True)
        self.conv2 = nn.Conv2d(8, 8, 3, padding=1)
        self.bn2 = nn.BatchNorm2d(8)
        self.leaky = nn.LeakyReLU(0.3, inplace=True)
        self.squeeze = nn.Conv2d(8, 8, 1)
        self.gate = nn.Hardsigmoid(inplace=True)
        self.swish = nn.Hardswish()
        self.gelu = nn.GELU(approximate="tanh")
        self.silu = nn.SiLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = self.act(self.bn(self.conv(x)))
        b = self.leaky(self.bn2(self.conv2(a)))
        b = b * self.gate(self.squeeze(b.mean((2, 3), keepdim=True)))
        b += a
        c = torch.cat([self.swish(b), self.gelu(a), b], 1)  # b read again after its activation
        d = F.relu(c - 0.5, inplace=True)
        return self.silu(d).sum((2, 3)) + torch.sigmoid(c).mean()


def _randomise_norms(model: nn.Module) -> nn.Module:
    torch.manual_seed(1)
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.running_mean is not None:
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
            if m.weight is not None:
                m.weight.data.uniform_(0.5, 1.5)
                m.bias.data.uniform_(-0.3, 0.3)
    return model.eval()


def test_every_recomputed_layer_equals_the_models_own_value() -> None:
    torch.manual_seed(0)
    model = _randomise_norms(Blocks())
    result = assert_exact(model, torch.randn(2, 3, 13, 11))
    # the elementwise layers were not kept by the pass, the convolutions and the reductions were
    deferred = {k for k in result if not result.activations.kept(k)}
    assert {"conv", "conv2", "squeeze", "mean"}.isdisjoint(deferred)
    assert {
        "bn",
        "act",
        "bn2",
        "leaky",
        "gate",
        "mul",
        "add",
        "gelu",
        "sub",
        "relu",
        "silu",
    } <= deferred
    # a fifth recipe in a row (bn2, leaky, mul, add, swish) is one too many: kept, and so is the cat after it
    assert "swish" not in deferred and "cat" not in deferred
    # every in-place flag is back as the model had it
    assert model.act.inplace and model.leaky.inplace and model.gate.inplace and model.silu.inplace


class ReadsWhatWasOverwritten(nn.Module):
    """An in-place activation whose input is read again afterwards: that later read sees the activated values."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)
        self.bn = nn.BatchNorm2d(4)
        self.act = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.bn(self.conv(x))
        z = self.act(y)
        w = y.add_(1.0)  # y is z here
        return y * 2 + z + w


def test_values_overwritten_in_place_are_read_as_the_model_reads_them() -> None:
    torch.manual_seed(0)
    model = _randomise_norms(ReadsWhatWasOverwritten())
    x = torch.randn(1, 3, 9, 9)
    result = assert_exact(model, x)
    with torch.no_grad():
        before = model.bn(model.conv(x))
    # the norm's layer shows its output before the activation overwrote it
    assert torch.equal(result["bn"], before)
    assert torch.equal(result["act"], before.relu())


NETWORKS = [
    ("resnet18", 64),
    ("mobilenet_v3_small", 64),
    pytest.param("mnasnet0_5", 64, marks=_SLOW),
    pytest.param("densenet121", 64, marks=_SLOW),
    pytest.param("efficientnet_b0", 64, marks=_SLOW),
    pytest.param("regnet_y_400mf", 64, marks=_SLOW),
    pytest.param("shufflenet_v2_x0_5", 64, marks=_SLOW),
    pytest.param("convnext_tiny", 64, marks=_SLOW),
    pytest.param("inception_v3", 96, marks=_SLOW),
    pytest.param("timm:efficientnet_b0", 64, marks=_SLOW),
    pytest.param("timm:resnet18d", 64, marks=_SLOW),
]


@pytest.mark.parametrize("name,size", NETWORKS)
def test_captures_of_real_networks_are_bit_equal_to_their_forward_pass(
    name: str, size: int
) -> None:
    torch.manual_seed(0)
    if name.startswith("timm:"):
        model = timm.create_model(name[5:], pretrained=False)
    else:
        kwargs: dict[str, Any] = (
            {"aux_logits": False, "init_weights": False} if name == "inception_v3" else {}
        )
        model = torchvision.models.get_model(name, weights=None, **kwargs)
    result = assert_exact(_randomise_norms(model), torch.randn(1, 3, size, size))
    # timm fuses its norms with their activation: nothing to defer there
    if not name.startswith("timm:"):
        assert any(not result.activations.kept(k) for k in result)


@contextmanager
def _threads(count: int) -> Iterator[None]:
    before = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def test_a_value_read_under_another_thread_count_is_the_one_the_pass_computed() -> None:
    # CPU kernels split their work by thread count, and a batch norm or a SiLU can round differently at the
    # seams; an odd map size puts seams where the vector loops leave a scalar tail.
    torch.manual_seed(0)
    model = _randomise_norms(nn.Sequential(nn.Conv2d(3, 37, 1), nn.BatchNorm2d(37), nn.SiLU()))
    x = torch.randn(1, 3, 113, 117)
    with _threads(1):
        truth = hooked_values(model, x)
        capture(model, x)
        result = capture(model, x)
    assert not result.activations.kept("2")
    with _threads(2):
        assert torch.equal(result["1"], truth["1"])
        assert torch.equal(result["2"], truth["2"])
        assert torch.get_num_threads() == 2  # the reader's own count is back


def test_a_norm_changed_after_the_capture_still_reads_what_the_capture_computed() -> None:
    torch.manual_seed(0)
    model = _randomise_norms(
        nn.Sequential(
            nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Conv2d(4, 4, 3), nn.BatchNorm2d(4)
        )
    )
    x = torch.randn(1, 3, 10, 10)
    truth = hooked_values(model, x)
    capture(model, x)
    result = capture(model, x)
    assert not result.activations.kept("1") and not result.activations.kept("4")
    with torch.no_grad():
        model[4].weight.mul_(2.0)  # as a training step would
        model[1].running_var.data.mul_(3.0)  # behind autograd's back: no version change
    assert torch.equal(result["1"], truth["1"])
    assert torch.equal(result["4"], truth["4"])
    # a new capture reads the changed norms
    with torch.no_grad():
        assert torch.equal(capture(model, x)["4"], model(x))


class SizeArithmetic(nn.Module):
    """Integer arithmetic on sizes looks elementwise to a graph: it must not become a layer value."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x.shape[2] * 2
        return F.interpolate(self.conv(x), size=(h, h + 1)) + 1


def test_only_tensor_values_are_layers_when_size_arithmetic_is_recomputable() -> None:
    model = SizeArithmetic().eval()
    x = torch.randn(1, 3, 6, 6)
    result = assert_exact(model, x)
    assert all(isinstance(result[k], torch.Tensor) for k in result)
    assert result.output.shape == (1, 4, 12, 13)


class ResidualStream(nn.Module):
    """Blocks whose outputs chain elementwise layers only: the residual stream of a ResNet without convolutions."""

    def __init__(self, blocks: int) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 4, 3, padding=1)
        self.norms = nn.ModuleList(nn.BatchNorm2d(4) for _ in range(blocks))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        for norm in self.norms:
            x = F.relu(x + norm(x))
        return x


def test_reading_any_layer_recomputes_a_bounded_chain() -> None:
    torch.manual_seed(0)
    model = _randomise_norms(ResidualStream(12))
    x = torch.randn(1, 3, 6, 6)
    result = assert_exact(model, x)
    fresh = capture(model, x)
    assert not fresh.activations.kept(list(fresh)[-1])
    # every deferred value sits at most RecomputeChain.LIMIT recipes above values the pass kept
    values = fresh.activations
    assert isinstance(values, LayerValues)
    depth: dict[str, int] = {}
    for key in fresh:
        recipe = values._recipes.get(key)
        depth[key] = 0 if recipe is None else 1 + max(depth.get(k, 0) for k in recipe.refs)
    assert max(depth.values()) == RecomputeChain.LIMIT
    assert sum(values.kept(k) for k in fresh) > 2  # the stream is kept every few blocks
    assert torch.equal(fresh[list(fresh)[-1]], result.output)


def test_layer_arrays_convert_on_read_and_know_shapes_first() -> None:
    torch.manual_seed(0)
    model = _randomise_norms(Blocks())
    x = torch.randn(1, 3, 7, 9)
    capture(model, x)
    result = capture(model, x)
    arrays = LayerArrays(result)
    assert list(arrays) == list(result)
    assert arrays.shape("cat") == (1, 24, 7, 9)
    truth = hooked_values(model, x)
    assert (arrays["bn2"] == truth["bn2"].numpy()).all()
    assert arrays["bn2"] is arrays["bn2"]  # converted once
    assert not arrays["conv"].flags.writeable  # other layers are computed from it
    assert arrays.get("no such layer") is None


class Redirected(nn.Module):
    """An in-place call's result is read through the value it overwrote, after an activation of it."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv(x)
        b = y.add_(-0.1)
        z = torch.relu(b)
        return z + y


class WritesIntoKept(nn.Module):
    """Writes into a value the pass keeps, after an elementwise layer read it."""

    def __init__(self, how: str) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)
        self.how = how

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv(x)
        d = y * 2
        if self.how == "relu_":
            torch.relu_(y)
        else:
            y.copy_(y.flip(3))  # no out-of-place form: the capture keeps every value
        return d + y


class IntegerGate(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.conv(x).gt(0) * 2) + torch.cat(self.conv(x).chunk(2, 1), 1) + 0


class HandsOnSizes(nn.Module):
    """A block that returns its map with its height and width (PVT, SegFormer)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)
        self.bn = nn.BatchNorm2d(4)

    def forward(self, x: torch.Tensor) -> tuple[int, torch.Tensor, int]:
        y = self.bn(self.conv(x))
        return y.shape[2], y.relu(), y.shape[3]


class UsesSizes(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.block = HandsOnSizes()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, y, w = self.block(x)
        return y.flatten(2) * (h + w)


@pytest.mark.parametrize(
    "make",
    [
        Redirected,
        lambda: WritesIntoKept("relu_"),
        IntegerGate,
        UsesSizes,
    ],
    ids=["redirected", "relu_", "integer", "sizes"],
)
def test_models_that_write_into_values_or_mix_types_are_captured_exactly(make: Any) -> None:
    torch.manual_seed(0)
    model = _randomise_norms(make())
    x = torch.randn(1, 3, 8, 8)
    result = assert_exact(model, x)
    arrays = LayerArrays(result)
    for key in result:
        assert arrays.shape(key) == arrays[key].shape, key


def test_hooks_and_instance_forwards_are_run_not_recomputed_around() -> None:
    torch.manual_seed(0)
    model = _randomise_norms(
        nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Conv2d(4, 2, 1))
    )
    x = torch.randn(1, 3, 8, 8)
    assert_exact(model, x)
    handle = model[1].register_forward_hook(lambda _m, _a, out: out * 2)
    assert_exact(model, x)
    handle.remove()
    model[2].forward = lambda t: torch.relu(t) - 1.0  # type: ignore[method-assign]
    assert_exact(model, x)


def test_settings_changed_between_captures_are_followed() -> None:
    torch.manual_seed(0)
    model = _randomise_norms(ReadsWhatWasOverwritten())
    model.act = nn.LeakyReLU(0.1)
    x = torch.randn(1, 3, 9, 9)
    assert_exact(model, x)
    model.act.negative_slope = 0.5
    assert_exact(model, x)
    model.act.inplace = True  # the norm's output is now overwritten, and read again as such
    assert_exact(model, x)


def test_a_graph_compiled_while_in_place_flags_are_off_still_reads_overwritten_values() -> None:
    torch.manual_seed(0)
    model = _randomise_norms(ReadsWhatWasOverwritten())
    x = torch.randn(1, 3, 9, 9)
    graph = layer_graph(model)
    with eval_mode(model, out_of_place=True):
        truncated = graph.truncated_module(graph.nodes[-1].key)
    with torch.no_grad():
        assert torch.equal(truncated(x), model(x))


def test_the_callers_input_and_inference_mode_models() -> None:
    torch.manual_seed(0)
    with torch.inference_mode():
        model = _randomise_norms(nn.Sequential(nn.BatchNorm2d(3), nn.ReLU(), nn.Conv2d(3, 2, 1)))
    x = torch.randn(1, 3, 6, 6)
    truth = hooked_values(model, x)
    capture(model, x)
    result = capture(model, x)
    x.add_(1.0)  # the caller reuses its tensor
    assert torch.equal(result["0"], truth["0"]) and torch.equal(result["1"], truth["1"])


def test_a_model_writing_into_a_value_without_an_out_of_place_form_defers_nothing() -> None:
    torch.manual_seed(0)
    model = WritesIntoKept("copy_").eval()
    x = torch.randn(1, 3, 8, 8)
    capture(model, x)
    result = capture(model, x)
    assert all(result.activations.kept(k) for k in result)
    with torch.no_grad():
        assert torch.equal(
            result["mul"], model.conv(x) * 2
        )  # read before the write, kept as it was
        assert torch.equal(result.output, model(x))


class NormThenScale(nn.Module):
    """A norm, a layer scale read through a view of its parameter, and the caller's input read through an
    alias (``contiguous`` of a contiguous tensor is the tensor itself)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.bn = nn.BatchNorm2d(4)
        self.gamma = nn.Parameter(torch.full((4,), 0.5))
        self.elu = nn.ELU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.bn(self.conv(x))
        scaled = y * self.gamma.reshape(1, -1, 1, 1)
        z = torch.relu(x.contiguous()).sum(1, keepdim=True)
        e = self.elu(y)
        return torch.cat(tensors=[scaled + z, e + y], dim=1) * 2


def _norm_changes() -> list[Any]:
    def parametrize(m: NormThenScale) -> None:
        from torch.nn.utils import parametrize as p

        class Double(nn.Module):
            def forward(self, w: torch.Tensor) -> torch.Tensor:
                return w * 2

        p.register_parametrization(m.bn, "weight", Double())

    def resize(m: NormThenScale) -> None:
        m.conv = nn.Conv2d(3, 6, 3, padding=1)
        m.bn.running_mean.data = torch.zeros(6)
        m.bn.running_var.data = torch.ones(6)
        m.bn.weight.data = torch.ones(6)
        m.bn.bias.data = torch.zeros(6)
        m.gamma.data = torch.ones(6)

    def no_statistics(m: NormThenScale) -> None:
        m.bn.running_mean = None
        m.bn.running_var = None

    def elu_in_place(m: NormThenScale) -> None:
        m.elu.inplace = True  # the norm's output is overwritten, and read again as such

    return [parametrize, resize, no_statistics, elu_in_place]


@pytest.mark.parametrize("change", _norm_changes(), ids=lambda f: f.__name__)
def test_a_model_changed_between_captures_is_captured_as_it_is_now(change: Any) -> None:
    torch.manual_seed(0)
    model = _randomise_norms(NormThenScale())
    x = torch.randn(1, 3, 6, 6)
    assert_exact(model, x)
    with torch.no_grad():
        change(model)
    model.eval()
    assert_exact(model, x)


def test_values_read_after_the_parameters_and_the_input_change_are_the_captured_ones() -> None:
    torch.manual_seed(0)
    model = _randomise_norms(NormThenScale())
    x = torch.randn(1, 3, 6, 6)
    truth = hooked_values(model, x)
    kept = kept_capture(model, x)
    capture(model, x)
    result = capture(model, x)
    with torch.no_grad():
        model.gamma.mul_(3.0)
        x.fill_(-1.0)
    for key in result:
        value = result[key]
        assert torch.equal(value, kept[key]), key
        if key in truth:
            assert torch.equal(value, truth[key]), key


def test_a_hook_anywhere_makes_the_capture_keep_every_value() -> None:
    torch.manual_seed(0)
    model = _randomise_norms(NormThenScale())
    x = torch.randn(1, 3, 6, 6)
    assert_exact(model, x)
    # a hook on a layer no recipe stands for can still write into a value a recipe reads
    model.elu.register_forward_pre_hook(lambda _m, a: (a[0].mul_(2), None)[1])
    capture(model, x)
    result = capture(model, x)
    assert all(result.activations.kept(k) for k in result)
    with torch.no_grad():
        assert torch.equal(result.output, model(x))
