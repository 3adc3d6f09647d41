"""Edit patches: parsing, load_model, weights, the CLI, and a patch that breaks the graph."""

from __future__ import annotations

import copy
import json

import pytest
import torch
import torchvision
from torch import nn

from cnnviz.cli import main
from cnnviz.core.analysis.summary import summarize
from cnnviz.core.editing import GraphEditSession
from cnnviz.core.errors import CnnvizError, SpecError
from cnnviz.core.models import load_model
from cnnviz.core.models.edits import ModuleEdit, apply_edits, parse_patch

PATCH = {
    "base": "resnet18",
    "edits": [
        {"module": "layer2.0.conv1", "set": {"stride": 1}},
        {"module": "layer2.0.downsample.0", "set": {"stride": 1}},
    ],
}
BROKEN = {"base": "resnet18", "edits": [{"module": "layer1.0.conv1", "set": {"stride": 2}}]}


@pytest.mark.parametrize(
    ("patch", "words"),
    [
        ({"base": "resnet18"}, 'needs "edits"'),
        ({"edits": []}, "base"),
        ({"base": "resnet18", "edits": [], "extra": 1}, "unknown patch key 'extra'"),
        ({"base": "resnet18", "edits": [{"module": "x", "sett": {}}]}, "unknown key 'sett'"),
        ({"base": "resnet18", "edits": [{"module": "x"}]}, "exactly one of"),
        ({"base": "resnet18", "edits": [{"module": "x", "set": {}}]}, "names no argument"),
        ({"base": "resnet18", "edits": [{"module": "x", "set": {"type": "ReLU"}}]}, '"replace"'),
        ({"base": "resnet18", "edits": [{"module": "x", "insert": {"type": "ReLU"}}]}, '"index"'),
        ({"base": "resnet18", "edits": [{"module": "x", "delete": 1}]}, '"delete": true'),
        ({"base": "resnet18", "edits": ["x"]}, "edit 1 must be an object"),
    ],
)
def test_malformed_patches_are_one_line_errors(patch, words):
    with pytest.raises(SpecError) as info:
        parse_patch(patch)
    assert words in str(info.value) and "\n" not in str(info.value)


@pytest.mark.parametrize(
    ("edit", "words"),
    [
        ({"module": "layer9.conv", "set": {"stride": 1}}, "the model has no module 'layer9.conv'"),
        (
            {"module": "layer1.0.conv", "set": {"stride": 1}},
            "did you mean layer1.0.conv2, layer1.0.conv1",
        ),
        ({"module": "layer1.0.conv1", "set": {"strides": 1}}, "has no setting 'strides'"),
        ({"module": "layer1.0.conv1", "set": {"stride": "two"}}, "stride must be"),
        ({"module": "layer1.0", "set": {"stride": 1}}, "edited through the modules inside it"),
        ({"module": "layer1.0.conv1", "replace": {"type": "Conv3x3"}}, "Conv3x3"),
        ({"module": "layer1.0", "insert": {"index": 0, "type": "ReLU"}}, "not an nn.Sequential"),
        ({"module": "layer1.0.conv1", "delete": True}, "not an nn.Sequential"),
    ],
)
def test_impossible_edits_say_why(edit, words):
    with pytest.raises(SpecError) as info:
        load_model({"base": "resnet18", "edits": [edit]}, weights="none")
    message = str(info.value)
    assert message.startswith("edit 1 (") and words in message and "\n" not in message


def test_a_base_that_does_not_load():
    with pytest.raises(CnnvizError, match="resnet1800"):
        load_model({"base": "resnet1800", "edits": []}, weights="none")


def test_load_model_takes_a_patch_and_keeps_the_base_weights(tmp_path):
    base = torchvision.models.resnet18()
    weights = tmp_path / "w.pth"
    torch.save(base.state_dict(), weights)
    patch = copy.deepcopy(PATCH)
    patch["edits"].append({"module": "fc", "set": {"out_features": 10}})
    loaded = load_model(patch, weights=str(weights))
    assert loaded.name == "resnet18 (edited: 3 changes)"
    assert loaded.preprocess == load_model("resnet18", weights="none").preprocess
    state = loaded.module.state_dict()
    for key, value in base.state_dict().items():
        if key.startswith("fc."):
            assert state[key].shape != value.shape
        else:
            assert torch.equal(state[key], value), key
    assert loaded.module.layer2[0].conv1.stride == (1, 1)
    assert loaded.module(torch.randn(1, 3, 224, 224)).shape == (1, 10)


def test_a_breaking_patch_is_refused_with_the_explained_error(tmp_path):
    path = tmp_path / "broken.json"
    path.write_text(json.dumps(BROKEN))
    with pytest.raises(SpecError) as info:
        load_model(path, weights="none")
    assert "layer1.0.add: residual addition of 64×28×28 (from layer1.0.bn2) and 64×56×56" in str(
        info.value
    )


def test_save_load_round_trip_gives_the_same_table(tmp_path):
    session = GraphEditSession.from_model(load_model("resnet18", weights="none"))
    session.set("layer2.0.conv1", "stride", 1)
    session.set("layer2.0.downsample.0", "stride", 1)
    session.set("layer3.0.conv1", "out_channels", 200)  # bn1 and conv2 follow
    session.insert("layer4", 2, "ReLU")
    path = session.save_patch(tmp_path / "edit.json")
    data = json.loads(path.read_text())
    assert data["base"] == "resnet18"
    assert {"module": "layer3.0.bn1", "set": {"num_features": 200}, "follows": True} in data[
        "edits"
    ]
    loaded = load_model(path, weights="none")
    truth = summarize(loaded)
    rows = [r for r in session.table().rows if r.layer is not None]
    assert [r.name for r in rows] == [r.name for r in truth.rows]
    for ours, want in zip(rows, truth.rows, strict=True):
        assert (ours.output_shape, ours.params, ours.macs, ours.rf) == (
            want.output_shape,
            want.params,
            want.macs,
            want.rf,
        ), ours.name
    again = GraphEditSession.from_patch(path, weights="none")
    assert again.edits == session.edits
    assert GraphEditSession.patch_edits(data) == session.edits


def test_edits_never_change_the_model_they_are_given():
    model = nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU(), nn.Conv2d(8, 8, 3))
    before = copy.deepcopy(model.state_dict())
    outcome = apply_edits(
        model,
        [
            ModuleEdit("set", "0", {"stride": 2}),
            ModuleEdit("insert", "", {}, "ReLU", 1),
            ModuleEdit("delete", "2"),
        ],
    )
    assert model[0].stride == (1, 1) and len(model) == 3
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())
    assert [type(m).__name__ for m in outcome.module] == ["Conv2d", "ReLU", "Conv2d"]
    assert outcome.module[0].weight is not model[0].weight
    assert torch.equal(outcome.module[0].weight, model[0].weight)  # same shapes: weights kept
    assert outcome.module[2] is model[2]  # untouched modules are shared


def test_cli_summary_of_a_patch(tmp_path, capsys):
    good = tmp_path / "good.json"
    good.write_text(json.dumps(PATCH))
    assert main(["summary", "--model", str(good), "--weights", "none"]) == 0
    out = capsys.readouterr().out
    assert "resnet18 (edited: 2 changes)" in out
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(BROKEN))
    assert main(["summary", "--model", str(bad), "--weights", "none"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("cnnviz: error: ")
    assert "layer1.0.add: residual addition" in err[0] and "give layer1.0 a downsample" in err[0]


def test_a_relative_base_file_is_read_beside_the_patch(tmp_path):
    spec = {
        "input_shape": [1, 8, 8],
        "layers": [{"type": "Conv2d", "out_channels": 4, "kernel_size": 3}, {"type": "ReLU"}],
    }
    (tmp_path / "net.json").write_text(json.dumps(spec))
    patch = {"base": "net.json", "edits": [{"module": "0", "set": {"padding": 1}}]}
    (tmp_path / "p.json").write_text(json.dumps(patch))
    loaded = load_model(tmp_path / "p.json")
    assert loaded.name.endswith("(edited: 1 change)")
    assert summarize(loaded).rows[-1].output_shape == (1, 4, 8, 8)


def test_an_edited_model_edited_again_saves_one_patch(tmp_path):
    first = tmp_path / "first.json"
    first.write_text(json.dumps(PATCH))
    loaded = load_model(first, weights="none")
    session = GraphEditSession.from_model(loaded)
    session.set("fc", "out_features", 10)
    applied = session.apply().model
    assert applied.name == "resnet18 (edited: 3 changes)"
    (tmp_path / "elsewhere").mkdir()
    path = session.save_patch(tmp_path / "elsewhere" / "second.json")
    data = json.loads(path.read_text())
    assert data["base"] == "resnet18" and data["edits"] == [
        *PATCH["edits"],
        session.edits[0].to_json(),
    ]
    again = load_model(path, weights="none")
    assert again.name == "resnet18 (edited: 3 changes)"
    assert summarize(again).total_params == summarize(applied).total_params


class _Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3)
        self.fc = nn.Linear(8, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.conv(x).mean((2, 3)))


def test_a_model_given_as_a_python_object_is_not_saved_as_an_unloadable_patch(tmp_path):
    session = GraphEditSession.from_model(load_model(_Net(), input_shape=(3, 16, 16)))
    session.set("conv", "stride", 2)
    with pytest.raises(SpecError, match="needs a base that cnnviz can open") as info:
        session.to_patch()
    assert "\n" not in str(info.value) and "Python object" in str(info.value)
    with pytest.raises(SpecError, match="Python object"):
        session.save_patch(tmp_path / "edit.json")
    assert list(tmp_path.iterdir()) == []  # nothing written
    # what a patch naming the class would be: one that cannot be opened
    with pytest.raises(CnnvizError, match="unknown model '_Net'"):
        load_model({"base": "_Net", "edits": []})


def test_a_model_built_from_a_spec_in_no_file_saves_its_spec_beside_the_patch(tmp_path):
    spec = {
        "name": "tiny",
        "input_shape": [1, 12, 12],
        "layers": [
            {"type": "Conv2d", "out_channels": 4, "kernel_size": 3},
            {"type": "ReLU"},
            {"type": "Flatten"},
            {"type": "Linear", "out_features": 3},
        ],
    }
    source = tmp_path / "tiny.json"
    source.write_text(json.dumps(spec))
    session = GraphEditSession.from_model(load_model(source))
    session.set("0", "out_channels", 6)  # the Linear follows
    source.unlink()  # the spec is now in no file cnnviz could open
    with pytest.raises(SpecError, match="spec that is in no file"):
        session.to_patch()
    path = session.save_patch(tmp_path / "edit.json")
    assert json.loads(path.read_text())["base"] == "edit-base.json"
    assert json.loads((tmp_path / "edit-base.json").read_text())["layers"] == spec["layers"]
    opened = load_model(path)
    edited = torch.nn.Sequential(
        nn.Conv2d(1, 6, 3), nn.ReLU(), nn.Flatten(), nn.Linear(6 * 10 * 10, 3)
    )
    assert summarize(opened).total_params == sum(p.numel() for p in edited.parameters())
    assert opened.module(torch.zeros(1, 1, 12, 12)).shape == (1, 3)


def test_a_breaking_patch_names_the_edit_that_broke_it_as_the_session_does(tmp_path):
    breaking = {"module": "layer1.0.conv1", "set": {"stride": 2}}
    later = {"module": "conv1", "set": {"kernel_size": 5, "padding": 2}}  # upstream, harmless alone
    # the truth, in torch: the first edit alone breaks the model, the second alone does not
    for edit, runs in ((breaking, False), (later, True)):
        model = torchvision.models.resnet18().eval()
        target = model.get_submodule(edit["module"])
        for key, value in edit["set"].items():
            setattr(target, key, (value, value))
        if key == "kernel_size":
            target.weight = nn.Parameter(torch.zeros(64, 3, 5, 5))
        try:
            model(torch.zeros(1, 3, 224, 224))
            ran = True
        except RuntimeError:
            ran = False
        assert ran is runs, edit
    patch = {"base": "resnet18", "edits": [breaking, later]}
    path = tmp_path / "broken.json"
    path.write_text(json.dumps(patch))
    with pytest.raises(SpecError) as info:
        load_model(path, weights="none")
    message = str(info.value)
    assert "layer1.0.conv1 now has stride 2" in message and "conv1 now has kernel" not in message
    session = GraphEditSession.from_model(load_model("resnet18", weights="none"))
    table = session.goto(GraphEditSession.patch_edits(patch))
    assert table.error is not None
    assert message == f"the edited model does not fit together: {table.error.message}"
