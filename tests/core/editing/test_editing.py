"""Live layer editing held to torch: real forward passes, sum(p.numel()), gradient supports, the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import torchvision
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from oracles import forward_shapes, gradient_rf
from torch import nn

from cnnviz.cli import main
from cnnviz.core.analysis.graph import layer_graph
from cnnviz.core.analysis.summary import summarize
from cnnviz.core.editing import (
    INSERTABLE,
    EditSession,
    NotEditableError,
    architecture_from_spec,
    delta_text,
    editable_architecture,
    live_table,
    new_layer,
)
from cnnviz.core.editing.live import _ChainGraph
from cnnviz.core.errors import CnnvizError, SpecError
from cnnviz.core.images import Preprocess
from cnnviz.core.models import LoadedModel, load_model
from cnnviz.core.models.spec import build_model, load_spec, save_spec

SPEC = {
    "name": "edit me",
    "input_shape": [3, 32, 32],
    "labels": ["a", "b", "c"],
    "layers": [
        {"type": "Conv2d", "out_channels": 8, "kernel_size": 3, "padding": 1},
        {"type": "BatchNorm2d"},
        {"type": "ReLU"},
        {"type": "MaxPool2d", "kernel_size": 2},
        {"type": "Conv2d", "out_channels": 16, "kernel_size": 3},
        {"type": "ReLU"},
        {"type": "Flatten"},
        {"type": "Linear", "out_features": 3},
    ],
}


# --------------------------------------------------------------------------------------------------------------
# Truth computed here, from torch


def params_of(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def spec_model(tmp_path: Path, spec: dict = SPEC, seed: int = 0) -> LoadedModel:
    path = tmp_path / "model.json"
    save_spec(spec, path)
    torch.manual_seed(seed)
    return load_model(str(path))


# --------------------------------------------------------------------------------------------------------------
# The live table equals the summary of the built model


SPECS = [
    SPEC,
    {
        "input_shape": [2, 20, 18],
        "layers": [
            {
                "type": "Conv2d",
                "out_channels": 6,
                "kernel_size": [3, 5],
                "stride": 2,
                "dilation": 2,
            },
            {"type": "LeakyReLU", "negative_slope": 0.2},
            {"type": "Conv2d", "out_channels": 6, "kernel_size": 3, "groups": 3, "padding": "same"},
            {"type": "AvgPool2d", "kernel_size": 3, "stride": 1, "padding": 1},
            {"type": "ConvTranspose2d", "out_channels": 4, "kernel_size": 2, "stride": 2},
            {"type": "Upsample", "scale_factor": 2},
            {"type": "ZeroPad2d", "padding": [1, 0, 2, 0]},
            {"type": "AdaptiveMaxPool2d", "output_size": [3, 2]},
            {"type": "Flatten"},
            {"type": "BatchNorm1d"},
            {"type": "Dropout"},
            {"type": "Linear", "out_features": 5, "bias": False},
        ],
    },
]


def assert_same_as_summary(spec: dict) -> None:
    table = live_table(architecture_from_spec(spec))
    model = build_model(spec)
    real = summarize(model, tuple(spec["input_shape"]))
    assert table.ok
    assert len(table.rows) == len(real.rows) == len(spec["layers"])
    shapes = forward_shapes(model, spec["input_shape"])
    for row, truth, module, shape in zip(table.rows, real.rows, model, shapes, strict=True):
        assert row.output_shape == shape
        assert row.params == params_of(module)
        assert row.layer is not None
        assert row.layer.to_json() == truth.to_json()  # macs, geometry, rf included
        assert row.formula == truth.param_formula
    assert table.total_params == params_of(model)
    assert table.total_macs == real.total_macs
    assert table.output_shape == shapes[-1]


@pytest.mark.parametrize("spec", SPECS, ids=["small", "mixed"])
def test_live_table_equals_the_summary_of_the_built_model(spec: dict) -> None:
    assert_same_as_summary(spec)


def test_bundled_architectures_too() -> None:
    for name in ("digits_arch.json", "tiny_cnn.json"):
        spec = load_spec(Path(__file__).resolve().parents[3] / "resources" / "models" / name)
        assert_same_as_summary(spec)


_LAYER = st.one_of(
    st.builds(
        lambda c, k, s, p, d: {
            "type": "Conv2d",
            "out_channels": c,
            "kernel_size": k,
            "stride": s,
            "padding": p,
            "dilation": d,
        },
        st.integers(1, 4),
        st.integers(1, 5),
        st.integers(1, 3),
        st.integers(0, 2),
        st.integers(1, 2),
    ),
    st.builds(
        lambda t, k, s: {"type": t, "kernel_size": k, "stride": s},
        st.sampled_from(["MaxPool2d", "AvgPool2d"]),
        st.integers(1, 3),
        st.integers(1, 3),
    ),
    st.sampled_from([{"type": "ReLU"}, {"type": "BatchNorm2d"}, {"type": "GELU"}]),
)


@settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=True
)
@given(
    st.lists(_LAYER, min_size=1, max_size=7),
    st.integers(5, 24),
    st.integers(5, 24),
    st.booleans(),
)
def test_random_chains_match_torch(layers: list[dict], h: int, w: int, head: bool) -> None:
    spec = {"input_shape": [2, h, w], "layers": layers + ([{"type": "Flatten"}, {"type": "Linear", "out_features": 3}] if head else [])}  # fmt: skip
    table = live_table(architecture_from_spec(spec))
    model = nn.Sequential()
    x = torch.randn(1, *spec["input_shape"])
    failed_at = None
    for i, layer in enumerate(spec["layers"]):
        kw = {k: v for k, v in layer.items() if k != "type"}
        kind = layer["type"]
        if kind == "Conv2d":
            kw["in_channels"] = x.shape[1]
        if kind == "BatchNorm2d":
            kw["num_features"] = x.shape[1]
        if kind == "Linear":
            kw["in_features"] = x.shape[1]
        try:
            module = getattr(nn, kind)(**kw).eval()
            with torch.no_grad():
                x = module(x)
            if x.numel() == 0:
                raise RuntimeError("empty")
        except (RuntimeError, ValueError):
            failed_at = i
            break
        model.append(module)
    assert table.error_index == failed_at
    assert table.ok == (failed_at is None)
    valid = [r for r in table.rows if r.ok]
    assert len(valid) == len(model)
    real = summarize(model, tuple(spec["input_shape"])) if len(model) else None
    for row, module, i in zip(valid, model, range(len(model)), strict=True):
        assert row.params == params_of(module)
        assert real is not None and row.layer is not None
        assert row.layer.to_json() == real.rows[i].to_json()
    assert all(not r.checked for r in table.rows[(failed_at or len(table.rows)) + 1 :])


def test_chain_graph_is_what_fx_traces() -> None:
    model = build_model(SPEC)
    traced = layer_graph(model)
    chain = _ChainGraph(model)
    assert chain.traced
    assert [(n.key, n.kind, n.type, n.inputs, n.scope) for n in chain.nodes] == [
        (n.key, n.kind, n.type, n.inputs, n.scope) for n in traced.nodes
    ]


# --------------------------------------------------------------------------------------------------------------
# Edits


def test_kernel_edit_updates_shape_params_and_rf_as_torch_says() -> None:
    session = EditSession.from_spec(SPEC)
    session.set_param(0, "kernel_size", 5)
    session.set_param(4, "kernel_size", [5, 3])
    table = session.table()
    spec = session.current.spec()
    model = build_model(spec)
    shapes = forward_shapes(model, spec["input_shape"])
    for row, module, shape in zip(table.rows, model, shapes, strict=True):
        assert row.output_shape == shape
        assert row.params == params_of(module)
    for index in (0, 3, 4):
        assert table.rows[index].rf is not None
        assert table.rows[index].rf.size == gradient_rf(model, spec["input_shape"], index)
    # the edit is against the original: conv 0 grew from 3x3 to 5x5
    before = 3 * 3 * 3 * 8 + 8
    assert table.rows[0].base_params == before
    assert table.rows[0].params_delta == params_of(model[0]) - before
    assert table.rows[0].status == "changed" and table.rows[1].status == "same"


def test_adding_pooling_grows_the_receptive_field() -> None:
    session = EditSession.from_spec(SPEC)
    before = session.table().rows[4].rf
    session.insert(4, "MaxPool2d")
    table = session.table()
    model = build_model(session.current.spec())
    assert table.rows[5].rf.size == gradient_rf(model, SPEC["input_shape"], 5)
    assert table.rows[5].rf.size[0] > before.size[0]
    assert table.rows[4].status == "new"


def test_invalid_edits_are_explained_and_earlier_rows_stay_valid() -> None:
    spec = {
        "input_shape": [1, 3, 2],
        "layers": [
            {"type": "ReLU"},
            {"type": "Conv2d", "out_channels": 2, "kernel_size": 1},
            {"type": "Conv2d", "out_channels": 2, "kernel_size": 1},
            {"type": "Flatten"},
        ],
    }
    session = EditSession.from_spec(spec)
    session.set_param(2, "kernel_size", 9)
    table = session.table()
    assert not table.ok and table.error_index == 2
    assert table.rows[2].reason == "kernel 9×9 is larger than its 3×2 input plus padding 0"
    assert table.error == f"layer 2 (Conv2d): {table.rows[2].reason}"
    assert [r.ok for r in table.rows[:2]] == [True, True]
    assert table.rows[1].params == params_of(nn.Conv2d(1, 2, 1))
    assert not table.rows[3].checked
    assert table.total_params == params_of(nn.Conv2d(1, 2, 1))

    flat = {
        "input_shape": [8, 8, 8],
        "layers": [{"type": "Flatten"}, {"type": "Linear", "in_features": 288, "out_features": 4}],
    }
    table = live_table(architecture_from_spec(flat))
    assert table.rows[1].reason.startswith("Linear expects 288 inputs but receives 512")


def test_channels_and_in_features_propagate() -> None:
    spec = dict(SPEC)
    spec["layers"] = [dict(layer) for layer in SPEC["layers"]]
    spec["layers"][4]["in_channels"] = 8  # stated, but agreeing: it becomes inferred
    session = EditSession.from_spec(spec)
    assert "in_channels" not in session.current.layers[4].config
    session.set_param(0, "out_channels", 5)
    session.set_param(4, "out_channels", 7)
    table = session.table()
    assert table.ok
    model = build_model(session.current.spec())
    assert model[1].num_features == 5 and model[4].in_channels == 5
    assert model[7].in_features == forward_shapes(model, spec["input_shape"])[6][0]
    assert table.rows[7].params == params_of(model[7])
    assert table.rows[7].status == "changed"  # its inferred in_features changed with it


def test_bottleneck_deltas_and_dense_line() -> None:
    spec = {
        "input_shape": [64, 14, 14],
        "layers": [
            {"type": "Conv2d", "out_channels": 64, "kernel_size": 3, "padding": 1},
            {"type": "ReLU"},
        ],
    }
    session = EditSession.from_spec(spec)
    session.set_param(0, "kernel_size", 1)
    session.set_param(0, "padding", None)
    table = session.table()
    old = params_of(nn.Conv2d(64, 64, 3))
    new = params_of(nn.Conv2d(64, 64, 1))
    assert table.params_delta == new - old
    assert table.rows[0].params_delta == new - old
    pct = round(100 * (old - new) / old)
    assert delta_text(new, old) == f"−{old - new:,}, −{pct}%"
    assert f"−{pct}%" in table.totals_text()
    n = 64 * 14 * 14
    assert table.dense.conv_params == new
    assert table.dense.dense_params == n * n + n
    assert f"{n * n + n:,}" in table.dense.text()


def test_insertable_layers_keep_the_model_valid() -> None:
    for kind in INSERTABLE:
        session = EditSession.from_spec(SPEC)
        flat = kind in ("Linear", "Dropout") or kind in ("ReLU", "GELU", "Tanh")
        position = 7 if flat else 1
        if kind in ("Flatten", "AdaptiveAvgPool2d"):
            position = 6
        if kind in ("MaxPool2d", "AvgPool2d"):
            position = 3
        session.insert(position, kind)
        table = session.table()
        assert table.ok, (kind, table.error)
        assert table.rows[position].status == "new"
    with pytest.raises(CnnvizError, match="cannot insert"):
        new_layer("Transformer", (3, 4, 4))


def test_undo_by_snapshot_restores_the_table_exactly() -> None:
    session = EditSession.from_spec(SPEC)
    first = session.current
    cells = session.table().cells()
    session.set_param(0, "out_channels", 4)
    session.insert(2, "Dropout2d")
    session.move(2, 1)
    session.delete(0)
    assert session.table().cells() != cells
    assert "0" in session.table().removed
    session.goto(first)
    assert session.table().cells() == cells
    # snapshots are immutable
    with pytest.raises(TypeError):
        first.layers[0].config["kernel_size"] = 7  # type: ignore[index]


def test_edit_errors_are_sentences() -> None:
    session = EditSession.from_spec(SPEC)
    with pytest.raises(CnnvizError, match="there is no layer 12"):
        session.set_param(12, "kernel_size", 3)
    with pytest.raises(CnnvizError, match="cannot move up"):
        session.move(0, -1)
    with pytest.raises(CnnvizError, match="not supported"):
        session.set_type(2, "Transformer")


# --------------------------------------------------------------------------------------------------------------
# Apply


def test_apply_keeps_weights_by_identity_not_position(tmp_path: Path) -> None:
    loaded = spec_model(tmp_path)
    original = loaded.module
    with torch.no_grad():
        original[1].running_mean.fill_(0.25)  # a buffer that must travel with the layer
    session = EditSession.from_model(loaded)
    session.insert(0, "Conv2d 1×1")  # everything moves down one place: 3 -> 3 channels
    session.move(3, 1)  # ReLU after the pool: order changes, nothing with weights does
    session.set_param(5, "kernel_size", 5)  # the second conv: changed -> fresh weights,
    session.set_param(5, "padding", 1)  # with the same output size, so the linear layer still fits
    table = session.table()
    assert table.ok
    result = session.apply(seed=1)
    module = result.model.module
    assert torch.equal(module[1].weight, original[0].weight)
    assert torch.equal(module[2].running_mean, original[1].running_mean)
    assert torch.equal(module[8].weight, original[7].weight)
    assert result.reinitialised == frozenset({0, 5})
    assert result.kept == frozenset({1, 2, 8})
    assert result.model.metadata["edited"]["reinitialised"] == ["0", "5"]
    # the real model gives the table's shapes
    x = torch.randn(1, *loaded.input_shape)
    with torch.no_grad():
        assert tuple(module(x).shape[1:]) == table.output_shape
    assert forward_shapes(module, list(loaded.input_shape)) == [r.output_shape for r in table.rows]
    assert result.model.spec == session.current.spec()
    assert result.model.labels == SPEC["labels"]
    # the table marks what happened
    after = session.table()
    assert [r.weights for r in after.rows if r.weights] == [
        "re-initialised",
        "kept",
        "kept",
        "re-initialised",
        "kept",
    ]


def test_second_apply_takes_weights_from_the_first(tmp_path: Path) -> None:
    session = EditSession.from_model(spec_model(tmp_path))
    session.set_param(0, "out_channels", 6)  # conv 0, BN 1, conv 4 and the linear layer change
    first = session.apply(seed=0)
    assert first.reinitialised == frozenset({0, 1, 4})
    assert 7 in first.kept  # Linear's in_features is unchanged (16 channels x 6 x 6)
    session.set_param(7, "out_features", 3)  # no change
    session.set_param(4, "kernel_size", 5)
    table = session.table()
    assert [table.rows[i].weights for i in (0, 1, 4)] == [
        "re-initialised",
        "re-initialised",
        "new on Apply",
    ]
    second = session.apply(seed=5)
    assert torch.equal(second.model.module[0].weight, first.model.module[0].weight)
    assert torch.equal(second.model.module[1].weight, first.model.module[1].weight)
    assert second.reinitialised == frozenset({4, 7})  # 7: in_features shrank with the 5x5 kernel


def test_apply_refuses_an_invalid_architecture(tmp_path: Path) -> None:
    session = EditSession.from_model(spec_model(tmp_path))
    session.set_param(7, "out_features", 4)  # three labels, four outputs
    table = session.table()
    assert not table.ok and table.error_index is None
    assert "3 labels" in table.error
    with pytest.raises(SpecError, match="cannot be built"):
        session.apply()


@pytest.fixture(scope="module")
def vgg() -> LoadedModel:
    torch.manual_seed(0)
    module = torchvision.models.vgg11(weights=None).eval()
    return LoadedModel(module, "vgg11", (3, 64, 64), Preprocess.imagenet(size=64), None, None, "torchvision")  # fmt: skip


def test_vgg_features_are_editable_and_the_classifier_is_checked(vgg: LoadedModel) -> None:
    session = EditSession.from_model(vgg)
    arch = session.current
    assert arch.family == "features"
    assert arch.editable_count == len(vgg.module.features)
    assert [arch.name_of(i) for i in range(arch.editable_count, len(arch))] == [
        "avgpool",
        "flatten",
    ] + [f"classifier.{i}" for i in range(len(vgg.module.classifier))]
    table = session.table()
    assert table.ok and table.total_params == params_of(vgg.module)
    assert table.output_shape == (1000,)
    last_conv = max(i for i, layer in enumerate(arch.layers) if layer.type == "Conv2d")
    session.set_param(last_conv, "out_channels", 256)
    table = session.table()
    assert table.rows[table.error_index].name == "classifier.0"
    assert "Linear expects 25088 inputs but receives 12544" in table.error
    assert "fixed part" in table.error
    with pytest.raises(CnnvizError, match="cannot be changed"):
        session.set_param(len(arch) - 1, "out_features", 10)
    session.set_param(last_conv, "out_channels", 512)
    session.insert(1, "BatchNorm2d")
    result = session.apply(seed=0)
    module = result.model.module
    assert type(module) is type(vgg.module)
    assert module.classifier is vgg.module.classifier
    assert torch.equal(module.features[0].weight, vgg.module.features[0].weight)
    assert torch.equal(module.features[4].weight, vgg.module.features[3].weight)
    assert result.reinitialised == frozenset({1})
    with torch.no_grad():
        out = module(torch.randn(1, 3, 64, 64))
    assert out.shape == (1, 1000)
    assert vgg.module.features[1].__class__ is nn.ReLU  # the original model is untouched
    assert EditSession.from_model(result.model).current.editable_count == arch.editable_count + 1


def test_alexnet_features_are_editable() -> None:
    model = LoadedModel(torchvision.models.alexnet(weights=None), "alexnet", (3, 96, 96), Preprocess.imagenet(size=96))  # fmt: skip
    arch = editable_architecture(model)
    assert arch.family == "features" and arch.prefix == "features."
    assert live_table(arch).total_params == params_of(model.module)


@pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated")
def test_read_only_models_say_why(tmp_path: Path) -> None:
    resnet = LoadedModel(torchvision.models.resnet18(weights=None), "resnet18", (3, 64, 64), Preprocess.imagenet(size=64))  # fmt: skip
    with pytest.raises(NotEditableError, match="resnet18 is read-only: .*residual"):
        EditSession.from_model(resnet)

    class Custom(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x * 2

    custom = LoadedModel(Custom(), "custom", (1, 8, 8), Preprocess.imagenet(size=8))
    with pytest.raises(NotEditableError, match="its own code"):
        EditSession.from_model(custom)
    scripted = torch.jit.script(nn.Sequential(nn.Conv2d(1, 2, 3)))
    ts = LoadedModel(scripted, "ts", (1, 8, 8), Preprocess.imagenet(size=8), source="torchscript")
    with pytest.raises(NotEditableError, match="TorchScript"):
        EditSession.from_model(ts)
    weird = LoadedModel(nn.Sequential(nn.Conv2d(1, 2, 3), nn.PixelShuffle(1)), "seq", (1, 8, 8), Preprocess.imagenet(size=8))  # fmt: skip
    with pytest.raises(NotEditableError, match="PixelShuffle"):
        EditSession.from_model(weird)


# --------------------------------------------------------------------------------------------------------------
# Files and the CLI


def test_save_then_open_gives_an_identical_table(tmp_path: Path) -> None:
    session = EditSession.from_model(spec_model(tmp_path))
    session.insert(3, "Conv2d 1×1")
    session.set_param(0, "stride", 2)
    cells = session.table().cells()
    path = tmp_path / "edited.json"
    save_spec(session.current.spec(), path)
    reopened = EditSession.from_model(spec_model(tmp_path))
    reopened.replace_spec(load_spec(path))
    assert reopened.table().cells() == cells
    other = dict(SPEC, input_shape=[1, 32, 32])
    with pytest.raises(
        SpecError, match="takes 1×32×32 inputs but the model being edited takes 3×32×32"
    ):
        reopened.replace_spec(other)


def test_cli_summary_prints_the_editor_table(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    session = EditSession.from_spec(SPEC)
    session.set_param(0, "kernel_size", 5)
    session.insert(4, "AvgPool2d")
    table = session.table()
    path = tmp_path / "edited.json"
    save_spec(session.current.spec(), path)
    assert main(["summary", "--model", str(path), "--format", "json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["total_params"] == table.total_params
    assert printed["total_macs"] == table.total_macs
    assert [r["name"] for r in printed["layers"]] == [r.name for r in table.rows]
    for row, shown in zip(table.rows, printed["layers"], strict=True):
        assert shown["output_shape"][1:] == list(row.output_shape)
        assert shown["params"] == row.params and shown["macs"] == row.macs
        assert shown["rf"] == row.rf.to_json()


def test_cli_refuses_the_impossible_spec_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    session = EditSession.from_spec(SPEC)
    session.set_param(4, "kernel_size", 40)
    table = session.table()
    path = tmp_path / "broken.json"
    save_spec(session.current.spec(), path)
    assert main(["summary", "--model", str(path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"cnnviz: error: {table.error}"]
    assert err[0].startswith(
        "cnnviz: error: layer 4 (Conv2d): kernel 40×40 is larger than its 16×16"
    )
