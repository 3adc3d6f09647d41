"""GraphEditSession: live edits of any traceable model, checked against the same model edited in plain torch."""

from __future__ import annotations

import copy

import pytest
import torch
import torchvision
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torch import nn

from cnnviz.core.analysis.summary import summarize
from cnnviz.core.editing import GraphEditSession, GraphTable, NotEditableError
from cnnviz.core.errors import CnnvizError, SpecError
from cnnviz.core.models import load_model


def _session(module: nn.Module, shape=(3, 224, 224)) -> GraphEditSession:
    return GraphEditSession.from_model(load_model(module, input_shape=shape))


def _forward_shapes(model: nn.Module, shape) -> dict[str, tuple[int, ...]]:
    """Every module's output shape from a real forward pass with hooks (first call of each module)."""
    shapes: dict[str, tuple[int, ...]] = {}
    handles = []
    for name, sub in model.named_modules():
        if not name:
            continue

        def hook(_m, _i, out, name=name):
            if isinstance(out, torch.Tensor):
                shapes.setdefault(name, tuple(out.shape))

        handles.append(sub.register_forward_hook(hook))
    try:
        with torch.no_grad():
            model.eval()(torch.zeros(1, *shape))
    finally:
        for h in handles:
            h.remove()
    return shapes


def assert_table_matches(table: GraphTable, model: nn.Module, shape) -> None:
    """Every row equals the summary of ``model`` (edited independently), and real forward shapes agree."""
    assert table.error is None, table.error
    truth = summarize(model, shape)
    rows = [r for r in table.rows if r.layer is not None]
    assert [r.name for r in rows] == [r.name for r in truth.rows]
    for ours, want in zip(rows, truth.rows, strict=True):
        assert ours.output_shape == want.output_shape, ours.name
        assert ours.params == want.params, ours.name
        assert ours.macs == want.macs, ours.name
        assert ours.rf == want.rf, ours.name
    assert table.total_params == sum(p.numel() for p in model.parameters())
    real = _forward_shapes(model, shape)
    for r in rows:
        if r.kind == "module" and r.name in real:
            assert r.output_shape == real[r.name], r.name


def test_stride_edits_on_resnet18_match_the_model_edited_in_torch():
    base = torchvision.models.resnet18()
    session = _session(base)
    session.set("layer2.0.conv1", "stride", 1)
    table = session.set("layer2.0.downsample.0", "stride", 1)
    edited = copy.deepcopy(base)
    edited.layer2[0].conv1.stride = (1, 1)
    edited.layer2[0].downsample[0].stride = (1, 1)
    assert_table_matches(table, edited, (3, 224, 224))
    row = table.row("layer2.0.conv1")
    assert row.status == "changed" and row.shape_changed
    assert row.base_output_shape == (1, 128, 28, 28) and row.output_shape == (1, 128, 56, 56)
    assert table.row("layer2.0.conv1").macs == 4 * row.base_macs
    assert table.row("conv1").status == "same" and not table.row("conv1").shape_changed
    assert table.row("layer2").status == "changed"


def test_residual_addition_is_explained_and_later_rows_are_not_computed():
    session = _session(torchvision.models.resnet18())
    table = session.set("layer1.0.conv1", "stride", 2)
    assert table.error is not None
    assert table.error.node == "layer1.0.add"
    assert table.error.message == (
        "layer1.0.add: residual addition of 64×28×28 (from layer1.0.bn2) and 64×56×56 "
        "(from layer1.0's input): layer1.0.conv1 now has stride 2; give layer1.0 a downsample "
        "or restore stride 1"
    )
    names = [r.name for r in table.rows]
    at = names.index("layer1.0.add")
    assert all(r.computed for r in table.rows[:at] if r.kind != "container")
    assert table.rows[at].reason == table.error.message
    after = table.rows[at + 1 :]
    assert after and all(not r.computed for r in after)
    assert all(r.reason == "not computed: depends on layer1.0.add" for r in after)
    assert "fc" in [r.name for r in after]  # rows stay, marked
    # every row of the original, in its order, and nothing else: the containers around the failure included
    assert names == [r.name for r in session.original_rows]
    assert table.removed == [] and not [r.name for r in table.rows if r.status == "new"]
    for container in ("layer1", "layer1.0"):
        row = table.row(container)
        assert not row.computed and row.reason == "not computed: depends on layer1.0.add"
        assert row.status == "changed"
    assert table.row("layer1.0.conv1").computed
    # the rows before it are those of the model edited in torch
    edited = torchvision.models.resnet18()
    edited.layer1[0].conv1.stride = (2, 2)
    assert table.row("layer1.0.bn2").output_shape == (1, 64, 28, 28)
    assert session.undo().error is None
    assert session.can_redo and session.redo().error is not None


class _Branches(nn.Module):
    """Two branches from the input: a residual-like sum and a separate convolution, joined at the end."""

    def __init__(self) -> None:
        super().__init__()
        self.a1 = nn.Conv2d(3, 8, 3, padding=1)
        self.a2 = nn.Conv2d(3, 8, 3, padding=1)
        self.b = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU())
        self.head = nn.Linear(12 * 8 * 8, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = self.a1(x) + self.a2(x)
        b = self.b(x)
        y = torch.cat([a, b], 1)
        return self.head(y.view(y.size(0), -1))


def test_a_parallel_branch_after_the_failure_is_still_computed():
    session = _session(_Branches(), (3, 8, 8))
    session.propagate = False
    table = session.set("a1", "out_channels", 4)
    assert table.error is not None and table.error.node == "add"
    # every original row in its order; the size() the view reads gets no row of its own
    assert [r.name for r in table.rows] == [r.name for r in session.original_rows]
    assert not [r.name for r in table.rows if r.status == "new"] and table.removed == []
    model = _Branches().eval()
    with torch.no_grad():
        x = torch.zeros(1, 3, 8, 8)
        b0 = model.b[0](x)
        b = model.b(x)
    assert table.row("b.0").computed and table.row("b.0").output_shape == tuple(b0.shape)
    assert table.row("b").computed and table.row("b").output_shape == tuple(b.shape)
    assert table.row("b").params == sum(p.numel() for p in model.b.parameters())
    for name in ("cat", "view", "head"):
        row = table.row(name)
        assert not row.computed and row.reason == "not computed: depends on add", name
    assert table.row("add").reason == table.error.message


@pytest.mark.slow
def test_concatenation_in_densenet_is_explained():
    session = _session(torchvision.models.densenet121(), (3, 64, 64))
    table = session.set("features.denseblock1.denselayer1.conv2", "stride", 2)
    error = table.error
    assert error is not None and error.node == "features.denseblock1.denselayer2.cat"
    assert error.message.startswith(
        "features.denseblock1.denselayer2.cat: concatenation along channels of 64×16×16 "
        "(from features.pool0) and 32×8×8 (from features.denseblock1.denselayer1.conv2)"
    )
    assert "features.denseblock1.denselayer1.conv2 now has stride 2" in error.message
    assert error.message.endswith("restore stride 1")


def test_squeeze_and_excitation_gate_is_explained_without_propagation():
    session = _session(torchvision.models.mobilenet_v3_small())
    session.propagate = False
    error = session.set("features.1.block.1.fc2", "out_channels", 8).error
    assert error is not None and error.node == "features.1.block.1.mul"
    assert error.message.startswith(
        "features.1.block.1.mul: squeeze-and-excitation gate multiplication of 8×1×1 "
        "(from features.1.block.1.scale_activation) and 16×56×56 (from features.1.block.1's input)"
    )
    assert "restore out_channels 16" in error.message


def _flat_net() -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU(), nn.Flatten(), nn.Linear(8 * 30 * 30, 10))


def test_flatten_then_linear_is_explained_and_propagation_fixes_it():
    session = _session(_flat_net(), (3, 32, 32))
    session.propagate = False
    error = session.set("0", "out_channels", 4).error
    assert error is not None and error.node == "3"
    assert error.message == (
        "3: Linear expects 7200 input features but receives 3600 (from 2): 0 now has out_channels 4; "
        "set 3's in_features to 3600 or restore out_channels 8"
    )
    session.undo()
    session.propagate = True
    table = session.set("0", "out_channels", 4)
    edited = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 30 * 30, 10))
    assert_table_matches(table, edited, (3, 32, 32))
    fields = {f.key: f for f in session.fields("3")}
    assert fields["in_features"].value == 3600 and fields["in_features"].follows
    assert not fields["out_features"].follows


def test_propagation_follows_batch_norm_and_next_convolution():
    base = torchvision.models.resnet18()
    session = _session(base)
    table = session.set("layer1.0.conv1", "out_channels", 32)
    edited = copy.deepcopy(base)
    block = edited.layer1[0]
    block.conv1 = nn.Conv2d(64, 32, 3, 1, 1, bias=False)
    block.bn1 = nn.BatchNorm2d(32)
    block.conv2 = nn.Conv2d(32, 64, 3, 1, 1, bias=False)
    assert_table_matches(table, edited, (3, 224, 224))
    assert {e.module for e in session.edits if e.follows} == {"layer1.0.bn1", "layer1.0.conv2"}
    assert {f.key: f.follows for f in session.fields("layer1.0.bn1")}["num_features"]
    # a residual add cannot follow: the error says what else must change
    error = session.set("layer1.0.conv2", "out_channels", 32).error
    assert error is not None and error.node == "layer1.0.add"
    assert "32×56×56 (from layer1.0.bn2) and 64×56×56 (from layer1.0's input)" in error.message
    assert "give layer1.0 a downsample with 32 output channels" in error.message


def test_depthwise_convolutions_follow_entirely():
    session = _session(torchvision.models.mobilenet_v2(), (3, 96, 96))
    table = session.set("features.2.conv.0.0", "out_channels", 48)
    assert table.error is None
    depthwise = {f.key: f.value for f in session.fields("features.2.conv.1.0")}
    assert depthwise["in_channels"] == depthwise["out_channels"] == depthwise["groups"] == 48


def test_groups_must_divide_channels():
    session = _session(torchvision.models.resnet18())
    with pytest.raises(SpecError, match="groups 3 must divide in_channels 64"):
        session.set("layer1.0.conv1", "groups", 3)
    assert session.edits == ()


def test_repeated_edits_of_one_module_are_one_edit_and_restoring_removes_it():
    session = _session(torchvision.models.resnet18())
    session.set("layer1.0.conv1", "kernel_size", 5)
    session.set("layer1.0.conv1", "padding", 2)
    assert len(session.edits) == 1
    assert dict(session.edits[0].settings) == {"kernel_size": 5, "padding": 2}
    session.set("layer1.0.conv1", "kernel_size", 3)
    session.set("layer1.0.conv1", "padding", 1)
    assert session.edits == ()
    assert session.table().total_params == session.original_table.total_params


def test_replace_insert_delete_match_torch():
    base = torchvision.models.resnet18()
    session = _session(base)
    session.set("layer2.0.conv1", "stride", 1)
    session.replace("layer2.0.downsample", "Identity")
    session.set("layer2.0.conv1", "out_channels", 64)
    table = session.set("layer2.0.conv2", "out_channels", 64)
    assert table.error is not None and table.error.node == "layer2.1.conv1"  # next block takes 128
    edited = copy.deepcopy(base)
    # undo the last two, make the block keep 128 channels with a Conv in the downsample's place instead
    session.undo()
    session.undo()
    session.replace(
        "layer2.0.downsample", "Conv2d", in_channels=64, out_channels=128, kernel_size=1
    )
    table = session.insert("layer3", 1, "ReLU")
    edited.layer2[0].conv1.stride = (1, 1)
    edited.layer2[0].downsample = nn.Conv2d(64, 128, 1)
    edited.layer3 = nn.Sequential(edited.layer3[0], nn.ReLU(), edited.layer3[1])
    assert_table_matches(table, edited, (3, 224, 224))
    assert table.row("layer3.1").status == "new"
    assert table.row("layer3.2").original_name == "layer3.1"
    assert table.row("layer3.2").status == "same"
    table = session.delete("layer3.1")
    assert table.row("layer3.1").original_name == "layer3.1"
    assert [m.name for m in session.modules() if m.name.startswith("layer3.")][:1] == ["layer3.0"]


def test_batch_norm_off_and_on():
    base = torchvision.models.resnet18()
    session = _session(base)
    assert {f.key: f.value for f in session.fields("layer1.0.bn1")}["enabled"] is True
    table = session.set("layer1.0.bn1", "enabled", False)
    edited = copy.deepcopy(base)
    edited.layer1[0].bn1 = nn.Identity()
    assert_table_matches(table, edited, (3, 224, 224))
    assert table.row("layer1.0.bn1").type == "Identity"
    assert table.total_params == session.original_table.total_params - 128
    assert session.fields("layer1.0.bn1") == [session.fields("layer1.0.bn1")[0]]
    table = session.set("layer1.0.bn1", "enabled", True)
    assert table.row("layer1.0.bn1").type == "BatchNorm2d"
    assert table.total_params == session.original_table.total_params


def test_modules_tree_and_fields():
    session = _session(torchvision.models.resnet18())
    mods = {m.name: m for m in session.modules()}
    assert mods[""].is_container and mods[""].depth == 0
    assert mods["layer1.0"].in_sequential and mods["layer1.0"].is_container
    assert not mods["layer1.0"].editable and "inside it" in (mods["layer1.0"].why_not or "")
    assert mods["layer1.0.conv1"].editable and not mods["layer1.0.conv1"].in_sequential
    kinds = {f.key: f.kind for f in session.fields("layer1.0.conv1")}
    assert kinds["stride"] == "pair" and kinds["bias"] == "bool" and kinds["groups"] == "int"
    relu = session.fields("relu")[0]
    assert relu.kind == "choice" and "GELU" in relu.choices
    assert session.set("relu", "type", "GELU").row("relu").type == "GELU"


def test_apply_keeps_weights_of_unchanged_modules():
    loaded = load_model("resnet18", weights="none")
    session = GraphEditSession.from_model(loaded)
    session.set("layer2.0.conv1", "stride", 1)
    session.set("layer2.0.downsample.0", "stride", 1)
    session.set("layer3.0.conv1", "out_channels", 128)
    result = session.apply()
    old = loaded.module.state_dict()
    new = result.model.module.state_dict()
    changed = {"layer3.0.conv1.weight", "layer3.0.conv2.weight"} | {
        f"layer3.0.bn1.{k}" for k in ("weight", "bias", "running_mean", "running_var")
    }
    for key, value in new.items():
        if key in changed:
            assert value.shape != old[key].shape or key.endswith("num_batches_tracked")
        else:
            assert torch.equal(value, old[key]), key
    assert set(result.reinitialised) == {"layer3.0.conv1", "layer3.0.bn1", "layer3.0.conv2"}
    assert "layer2.0.conv1" in result.kept
    assert result.model.module.layer2[0].conv1.stride == (1, 1)
    assert loaded.module.layer2[0].conv1.stride == (2, 2)  # the original is untouched
    out = result.model.module(torch.randn(1, 3, 224, 224))
    assert out.shape == (1, 1000)
    assert result.model.labels == loaded.labels and result.model.preprocess == loaded.preprocess


def test_a_second_apply_keeps_the_weights_of_the_first():
    loaded = load_model("resnet18", weights="none")
    session = GraphEditSession.from_model(loaded)
    session.set("layer3.0.conv1", "out_channels", 128)  # A: fresh weights at the first Apply
    first = session.apply()
    assert "layer3.0.conv1" in first.reinitialised
    session.set("layer4.0.conv1", "out_channels", 256)  # B
    second = session.apply()
    one = first.model.module.state_dict()
    two = second.model.module.state_dict()
    for module in ("layer3.0.conv1", "layer3.0.bn1", "layer3.0.conv2"):
        for key in [k for k in one if k.startswith(module + ".")]:
            assert torch.equal(two[key], one[key]), key
    assert set(second.reinitialised) == {"layer4.0.conv1", "layer4.0.bn1", "layer4.0.conv2"}
    assert not torch.equal(
        two["layer4.0.conv1.weight"][:1], loaded.module.state_dict()["layer4.0.conv1.weight"][:1]
    )
    # weights changed in the applied model (trained, say) are those the next Apply keeps
    with torch.no_grad():
        second.model.module.fc.weight.fill_(0.5)
    session.set("layer2.0.conv1", "stride", 1)
    session.set("layer2.0.downsample.0", "stride", 1)
    third = session.apply()
    assert torch.equal(third.model.module.fc.weight, second.model.module.fc.weight)
    assert third.reinitialised == ()
    assert torch.equal(
        third.model.module.layer4[0].conv1.weight, second.model.module.layer4[0].conv1.weight
    )
    # an undone edit goes back to the shape of the loaded model, whose weights it takes again
    session.undo()
    session.undo()
    session.undo()
    fourth = session.apply()
    assert "layer4.0.conv1" not in fourth.reinitialised
    assert fourth.model.module.layer4[0].conv1.weight.shape == (512, 256, 3, 3)
    assert torch.equal(
        fourth.model.module.layer4[0].conv1.weight, loaded.module.layer4[0].conv1.weight
    )


def test_apply_refuses_a_broken_graph():
    session = _session(torchvision.models.resnet18())
    session.set("layer1.0.conv1", "stride", 2)
    with pytest.raises(CnnvizError, match="layer1.0.add: residual addition"):
        session.apply()


def test_timm_resnet_is_editable():
    timm = pytest.importorskip("timm")
    base = timm.create_model("resnet18", pretrained=False)
    session = GraphEditSession.from_model(load_model(base))
    table = session.set("layer2.0.conv1", "stride", 1)
    assert table.error is not None and table.error.node.startswith("layer2.0.")
    table = session.set("layer2.0.downsample.0", "stride", 1)
    edited = copy.deepcopy(base)
    edited.layer2[0].conv1.stride = (1, 1)
    edited.layer2[0].downsample[0].stride = (1, 1)
    assert_table_matches(table, edited, session.model.input_shape)


def test_onnx_model_is_editable(tmp_path):
    pytest.importorskip("onnx2torch")
    net = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 4, 3, padding=1))
    path = tmp_path / "small.onnx"
    torch.onnx.export(net.eval(), (torch.randn(1, 3, 32, 32),), str(path), dynamo=False)
    loaded = load_model(path)
    session = GraphEditSession.from_model(loaded)
    convs = [m.name for m in session.modules() if m.type == "Conv2d"]
    assert len(convs) == 2 and all(m.editable for m in session.modules() if m.type == "Conv2d")
    table = session.set(convs[0], "stride", 2)
    edited = copy.deepcopy(loaded.module)
    edited.get_submodule(convs[0]).stride = (2, 2)
    assert_table_matches(table, edited, loaded.input_shape)


def test_torchscript_is_not_editable(tmp_path):
    path = tmp_path / "m.ts"
    torch.jit.script(_flat_net()).save(str(path))
    with pytest.raises(NotEditableError, match="read-only"):
        GraphEditSession.from_model(load_model(path))


def test_propagation_through_a_squeeze_and_excitation_block():
    base = torchvision.models.mobilenet_v3_small()
    session = _session(base)
    table = session.set("features.4.block.0.0", "out_channels", 120)
    edited = copy.deepcopy(base)
    block = edited.features[4].block
    block[0][0] = nn.Conv2d(block[0][0].in_channels, 120, 1, bias=False)
    block[0][1] = nn.BatchNorm2d(120, eps=0.001, momentum=0.01)
    block[1][0] = nn.Conv2d(120, 120, 5, 2, 2, groups=120, bias=False)
    block[1][1] = nn.BatchNorm2d(120, eps=0.001, momentum=0.01)
    block[2].fc1 = nn.Conv2d(120, block[2].fc1.out_channels, 1)
    block[2].fc2 = nn.Conv2d(block[2].fc1.out_channels, 120, 1)
    block[3][0] = nn.Conv2d(120, block[3][0].out_channels, 1, bias=False)
    assert_table_matches(table, edited, (3, 224, 224))
    follows = {e.module for e in session.edits if e.follows}
    assert {"features.4.block.2.fc1", "features.4.block.2.fc2", "features.4.block.3.0"} <= follows


_SMALL = (3, 64, 64)
_RESNET = torchvision.models.resnet18()
_CONVS = [n for n, m in _RESNET.named_modules() if isinstance(m, nn.Conv2d)]


@given(
    st.lists(
        st.tuples(
            st.sampled_from(_CONVS),
            st.sampled_from(["stride", "padding", "dilation"]),
            st.integers(1, 3),
        ),
        min_size=1,
        max_size=3,
    )
)
@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_random_geometry_edits_agree_with_a_real_forward(changes):
    """An edit breaks the table exactly when the model edited in torch fails to run; otherwise every row agrees."""
    session = _session(_RESNET, _SMALL)
    edited = copy.deepcopy(_RESNET)
    for name, key, value in changes:
        session.set(name, key, value)
        setattr(edited.get_submodule(name), key, (value, value))
    table = session.table()
    try:
        with torch.no_grad():
            edited.eval()(torch.zeros(1, *_SMALL))
        runs = True
    except RuntimeError:
        runs = False
    assert runs == (table.error is None), table.error
    if runs:
        assert_table_matches(table, edited, _SMALL)
    else:
        assert table.error is not None and table.row(table.error.node).computed is False
