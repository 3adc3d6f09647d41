"""The app's state without a window: load a spec, run a picture, pick units and move between layers.

Every box is checked against the core's own ``receptive_field``; the unit carried between layers against the
formula ``y*S - P + (r - 1)/2`` for the field centre.
"""

from __future__ import annotations

import json
import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402

from cnnviz.core.analysis.receptive import receptive_field  # noqa: E402
from cnnviz.gui.state import Session, UnitSelection  # noqa: E402
from cnnviz.gui.workers import JobRunner  # noqa: E402

SPEC = {
    "name": "state test net",
    "input_shape": [1, 24, 24],
    "labels": ["a", "b", "c"],
    "layers": [
        {"type": "Conv2d", "out_channels": 4, "kernel_size": 3, "padding": 1},
        {"type": "ReLU"},
        {"type": "MaxPool2d", "kernel_size": 2},
        {"type": "Conv2d", "out_channels": 6, "kernel_size": 3, "stride": 2},
        {"type": "ReLU"},
        {"type": "Flatten"},
        {"type": "Linear", "out_features": 3},
    ],
}


@pytest.fixture
def session(qtbot, tmp_path: Path):
    spec = tmp_path / "net.json"
    spec.write_text(json.dumps(SPEC))
    picture = tmp_path / "digit.png"
    y, x = np.mgrid[0:24, 0:24]
    Image.fromarray(((x * 7 + y * 3) % 256).astype(np.uint8)).save(picture)
    state = Session(JobRunner())
    state.queue_image(str(picture))
    state.load_model(str(spec))
    assert state.runner.wait(60_000), "loading and running did not finish"
    assert state.activations, "the model did not run"
    yield state
    state.shutdown()


def _centre(rf, unit: tuple[int, int], axis: int) -> float:
    return unit[axis] * rf.stride[axis] - rf.padding[axis] + (rf.size[axis] - 1) / 2


def test_load_spec_runs_the_queued_picture(session: Session) -> None:
    assert session.image_name == "digit.png"
    assert list(session.rows) == list(session.activations)
    assert session.layer == "0"  # the first convolution
    assert session.predictions is not None and len(session.predictions) == 3


def test_select_unit_box_equals_receptive_field(session: Session, qtbot) -> None:
    session.select_layer("3")
    seen: list[UnitSelection | None] = []
    session.unitChanged.connect(seen.append)
    session.select_unit(2, 3)
    selection = session.selection
    assert selection is not None and seen[-1] is selection
    truth = receptive_field(session.model, "3", (2, 3), input_shape=tuple(SPEC["input_shape"]))
    assert selection.box.box == truth.box
    assert selection.box.size == truth.size


def test_select_layer_carries_the_unit(session: Session) -> None:
    session.select_layer("3")
    session.select_unit(1, 4)
    old = session.rows["3"].rf
    session.select_layer("0")
    selection = session.selection
    assert selection is not None and selection.layer == "0"
    new = session.rows["0"].rf
    for axis in (0, 1):
        # the new unit's field centre is the one nearest the old unit's
        assert (
            abs(_centre(new, selection.unit, axis) - _centre(old, (1, 4), axis))
            <= new.stride[axis] / 2
        )
    truth = receptive_field(
        session.model, "0", selection.unit, input_shape=tuple(SPEC["input_shape"])
    )
    assert selection.box.box == truth.box


def test_select_unit_at_input_picks_the_unit_centred_there(session: Session) -> None:
    session.select_layer("3")
    rf = session.rows["3"].rf
    target = (2, 1)
    session.select_unit_at_input(_centre(rf, target, 0), _centre(rf, target, 1))
    assert session.selection is not None and session.selection.unit == target


class _Untraceable(torch.nn.Module):
    """Python control flow on a tensor value: torch.fx cannot trace it, so its fields are measured."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(1, 2, 3, stride=2, padding=1)
        self.conv2 = torch.nn.Conv2d(2, 2, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv(x)
        if y.sum() > -1e9:
            y = self.conv2(y)
        return y


def test_measured_box_arrives_from_the_worker_not_the_gui_thread(qtbot, tmp_path: Path) -> None:
    """A measured field is a backward pass: select_unit returns at once saying so, the box follows."""
    from cnnviz.core.images.preprocess import Preprocess
    from cnnviz.core.models.loaded import LoadedModel

    module = _Untraceable().eval()
    pre = Preprocess(1, (24, 24), "resize", None, (0.5,), (0.25,))
    picture = tmp_path / "p.png"
    Image.fromarray(np.arange(24 * 24, dtype=np.uint8).reshape(24, 24)).save(picture)
    state = Session(JobRunner())
    try:
        state.queue_image(str(picture))
        state.set_model(LoadedModel(module, "untraceable", (1, 24, 24), pre, None, source="module"))
        assert state.runner.wait(60_000) and state.activations
        state.select_layer("conv2")
        seen: list[UnitSelection | None] = []
        state.unitChanged.connect(seen.append)
        state.select_unit(5, 6)
        first = state.selection
        assert first is not None and first.box is None and "measuring" in (first.note or "")
        qtbot.waitUntil(lambda: first.box is not None, timeout=60_000)
        assert seen[-1] is first and first.note is None and first.box.measured
        x = torch.randn(1, 1, 24, 24, dtype=torch.float64, requires_grad=True)
        module.double()(x)[0, :, 5, 6].sum().backward()
        module.float()
        grad = x.grad[0, 0].abs().numpy()
        rows, cols = np.flatnonzero(grad.any(1)), np.flatnonzero(grad.any(0))
        assert first.box.support_box == (rows[0], cols[0], rows[-1], cols[-1])
        # a stale measurement never overwrites a newer selection
        state.select_unit(1, 1)
        state.select_unit(2, 2)
        latest = state.selection
        qtbot.waitUntil(lambda: latest.box is not None, timeout=60_000)
        assert state.runner.wait(60_000)
        assert state.selection is latest and latest.box.unit == (2, 2)
    finally:
        state.shutdown()


def test_layers_are_shown_as_the_model_computed_them_when_the_picture_ran(
    qtbot, tmp_path: Path
) -> None:
    spec = {
        "name": "normed net",
        "input_shape": [1, 16, 16],
        "layers": [
            {"type": "Conv2d", "out_channels": 4, "kernel_size": 3, "padding": 1},
            {"type": "BatchNorm2d"},
            {"type": "ReLU"},
            {"type": "Conv2d", "out_channels": 4, "kernel_size": 3, "padding": 1},
            {"type": "BatchNorm2d"},
            {"type": "ReLU"},
            {"type": "Flatten"},
            {"type": "Linear", "out_features": 3},
        ],
    }
    path = tmp_path / "normed.json"
    path.write_text(json.dumps(spec))
    picture = tmp_path / "p.png"
    y, x = np.mgrid[0:16, 0:16]
    Image.fromarray(((x * 11 + y * 5) % 256).astype(np.uint8)).save(picture)
    state = Session(JobRunner())
    try:
        state.queue_image(str(picture))
        state.load_model(str(path))
        assert state.runner.wait(60_000)
        module = state.model.module
        with torch.no_grad():
            for m in module.modules():
                if isinstance(m, torch.nn.BatchNorm2d):
                    m.running_mean.uniform_(-0.5, 0.5)
                    m.running_var.uniform_(0.5, 2.0)
        state.run()
        assert state.runner.wait(60_000)
        seen: dict[str, np.ndarray] = {}
        handles = [
            m.register_forward_hook(
                lambda _m, _a, out, name=name: seen.__setitem__(name, out.detach().clone().numpy())
            )
            for name, m in module.named_modules()
            if name
        ]
        with torch.no_grad():
            module(state.image.tensor)
        for h in handles:
            h.remove()
        # shapes for the layer list come without computing any layer
        assert state.activation_shapes() == {k: v.shape for k, v in seen.items()}
        assert np.array_equal(
            state.activation("1"), seen["1"]
        )  # a norm the capture left to compute
        with torch.no_grad():
            module[4].weight.mul_(2.0)  # the model changes before the layer is shown
        # the picture's maps are those of the model it ran through
        assert np.array_equal(state.activation("4"), seen["4"])
        state.run()
        assert state.runner.wait(60_000)
        with torch.no_grad():
            assert np.array_equal(state.activation("4"), module[:5](state.image.tensor).numpy())
    finally:
        state.shutdown()
