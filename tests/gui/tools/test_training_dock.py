"""The training dock: a short real run on tiny synthetic digits, cancel, and the errors a student can cause."""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from pathlib import Path  # noqa: E402

import pyqtgraph as pg  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
import torchvision  # noqa: E402
from PySide6.QtCore import Qt  # noqa: E402
from shape_folders import TINY_SPEC, make_folder  # noqa: E402

from cnnviz.core.images import Preprocess  # noqa: E402
from cnnviz.core.models import LoadedModel, load_model  # noqa: E402
from cnnviz.core.models.spec import save_spec  # noqa: E402
from cnnviz.gui.tools.training import TrainingDock  # noqa: E402

pg.setConfigOptions(imageAxisOrder="row-major")


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """One thread: on a shared machine a tiny net's steps are many times faster than on two."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def tiny_spec(outputs: int = 10) -> dict:
    return {
        "name": "tiny digits",
        "input_shape": [1, 12, 12],
        "layers": [
            {"type": "Conv2d", "out_channels": 4, "kernel_size": 3, "padding": 1},
            {"type": "ReLU"},
            {"type": "MaxPool2d", "kernel_size": 2},
            {"type": "Flatten"},
            {"type": "Linear", "out_features": outputs},
        ],
    }


def spec_model(tmp_path: Path, outputs: int = 10) -> LoadedModel:
    path = tmp_path / f"tiny{outputs}.json"
    save_spec(tiny_spec(outputs), path)
    torch.manual_seed(0)
    return load_model(str(path))


@pytest.fixture
def dock(qtbot) -> TrainingDock:
    widget = TrainingDock()
    qtbot.addWidget(widget)
    widget.resize(500, 600)
    widget.show()
    qtbot.waitExposed(widget)
    yield widget
    widget.shutdown()


def test_short_run_finishes_and_emits_the_trained_model(
    qtbot, dock: TrainingDock, tmp_path: Path
) -> None:
    base = spec_model(tmp_path)
    dock.set_model(base)
    assert dock.train_button.isEnabled() and not dock.save_button.isEnabled()
    dock.samples_spin.setValue(48)
    dock.epochs_spin.setValue(1)
    dock.batch_spin.setValue(16)
    dock.keep_check.setChecked(False)
    with qtbot.waitSignal(dock.trained, timeout=120_000) as blocker:
        qtbot.mouseClick(dock.train_button, Qt.MouseButton.LeftButton)
        assert dock.cancel_button.isEnabled() and not dock.train_button.isEnabled()
    model = blocker.args[0]
    assert isinstance(model, LoadedModel) and model.source == "trained"
    assert model.name == "tiny digits (trained)"
    assert model.labels == [str(d) for d in range(10)]
    assert [layer for layer in model.spec["layers"]] == tiny_spec()["layers"]
    with torch.no_grad():
        out = model.module(torch.zeros(1, 1, 12, 12))
    assert out.shape == (1, 10)
    # the run reported every batch: 48 samples, a tenth held out for validation, batches of 16
    n_batches = -(-(48 - round(48 * 0.1)) // 16)
    xs, losses = dock.loss_curve.getData()
    assert len(xs) == n_batches and xs[-1] == pytest.approx(1.0)
    assert dock.progress.value() == dock.progress.maximum()
    assert len(dock.val_acc.getData()[0]) == 1
    assert "1 epoch" in dock.message.text()
    # the base model was not touched, the trained one is new
    assert not torch.equal(model.module[0].weight, base.module[0].weight)
    dock.set_model(model)  # handed back by the app: still saveable
    assert dock.save_button.isEnabled()
    path = dock.save_checkpoint(tmp_path / "trained.pt")
    assert path is not None
    reloaded = load_model(str(path))
    assert torch.equal(reloaded.module[0].weight, model.module[0].weight)
    assert reloaded.labels == model.labels


def test_cancel_leaves_the_model_alone(qtbot, dock: TrainingDock, tmp_path: Path) -> None:
    dock.set_model(spec_model(tmp_path))
    dock.samples_spin.setValue(200)
    dock.epochs_spin.setValue(50)
    dock.batch_spin.setValue(4)
    emitted = []
    dock.trained.connect(emitted.append)
    assert dock.start()
    qtbot.waitUntil(lambda: len(dock._loss) > 0, timeout=120_000)  # the first batch reported
    qtbot.mouseClick(dock.cancel_button, Qt.MouseButton.LeftButton)
    assert dock.wait()
    assert emitted == []
    assert dock.phase.text().startswith("Cancelled ")
    assert "unchanged" in dock.message.text()
    assert dock.train_button.isEnabled() and not dock.cancel_button.isEnabled()


@pytest.fixture(scope="module")
def shapes(tmp_path_factory) -> Path:
    return make_folder(tmp_path_factory.mktemp("shapes"), per_class=30)


def folder_model(tmp_path: Path) -> LoadedModel:
    path = tmp_path / "shapes.json"
    save_spec(TINY_SPEC, path)
    torch.manual_seed(0)
    return load_model(str(path))


def test_first_epoch_axis_reads_epochs_and_cancel_says_what_was_done(
    qtbot, dock: TrainingDock, shapes: Path, tmp_path: Path
) -> None:
    dock.set_model(folder_model(tmp_path))
    dock.data_combo.setCurrentIndex(dock.data_combo.findData("folder"))
    dock.folder_edit.setText(str(shapes))
    dock.epochs_spin.setValue(3)
    dock.batch_spin.setValue(1)  # 81 batches in an epoch: the cancel lands inside the first
    assert dock.start()
    qtbot.waitUntil(lambda: len(dock._loss) > 0, timeout=120_000)
    dock.cancel()
    assert dock.phase.text() == "Cancelling after this batch…"
    assert dock.wait()
    qtbot.wait(50)  # the plots take their new ranges
    xs, _ = dock.loss_curve.getData()
    seen = len(xs)
    assert 0 < xs[-1] < 1  # still in the first epoch
    # The plots span the planned run, from epoch 0 to 3, from the first batch on.
    for plot in (dock.loss_plot, dock.acc_plot):
        low, high = plot.viewRange()[0]
        assert -0.1 < low <= 0 and 3 <= high < 3.1
    for plot in (dock.loss_plot, dock.acc_plot):
        axis = plot.getAxis("bottom")
        assert axis.autoSIPrefixScale == 1.0
        assert "epoch" in axis.labelString() and "(x" not in axis.labelString()
    n_train = 90 - round(90 * 0.1)
    assert dock.phase.text() == (
        f"Cancelled in epoch 1 after {seen} of {n_train} batches (0 complete epochs before it)."
    )
    assert "unchanged" in dock.message.text()


def test_auto_settings_follow_the_data_and_a_near_chance_run_warns(
    qtbot, dock: TrainingDock, shapes: Path, tmp_path: Path
) -> None:
    assert dock.epochs_spin.text() == "Auto" and dock.batch_spin.text() == "Auto"
    dock.set_model(folder_model(tmp_path))
    dock.data_combo.setCurrentIndex(dock.data_combo.findData("folder"))
    dock.folder_edit.setText(str(shapes))
    # Automatic batch size, one epoch, a learning rate too small to learn anything.
    dock.epochs_spin.setValue(1)
    dock.lr_spin.setValue(0.00001)
    dock.keep_check.setChecked(False)
    with qtbot.waitSignal(dock.trained, timeout=120_000):
        assert dock.start()
    result = dock.result
    assert result is not None
    n_train = 90 - round(90 * 0.1)
    assert result.metrics["batch_size"] == 8 == max(8, 1 << ((n_train // 8).bit_length() - 1))
    assert result.steps == -(-n_train // 8)
    assert dock.progress.value() == dock.progress.maximum()
    assert not dock.warning.isHidden()
    val = result.metrics["val_acc"]
    assert dock.warning.text().startswith(
        f"Warning: The final validation accuracy {100 * val:.1f}% (9 pictures) is close to chance "
        "(33.3%, 3 classes)"
    )
    assert dock.phase.text() == "Finished 1 epoch (11 steps)."
    # A good run afterwards clears the warning: Auto epochs give 300 steps at the default rate.
    dock.set_model(folder_model(tmp_path))
    dock.epochs_spin.setValue(0)
    dock.lr_spin.setValue(0.003)
    with qtbot.waitSignal(dock.trained, timeout=240_000):
        assert dock.start()
    assert dock.result is not None and dock.result.steps >= 300
    assert dock.result.warning is None and dock.result.metrics["val_acc"] >= 0.7  # chance is 1/3
    assert dock.warning.isHidden() and dock.warning.text() == ""


def test_wrong_number_of_outputs_is_explained(qtbot, dock: TrainingDock, tmp_path: Path) -> None:
    dock.set_model(spec_model(tmp_path, outputs=3))
    dock.samples_spin.setValue(20)
    emitted = []
    dock.trained.connect(emitted.append)
    assert dock.start()
    assert dock.wait()
    assert emitted == []
    assert dock.message.text().startswith(
        "Cannot train: The model ends in 3 outputs but the data has 10 classes"
    )
    assert dock.train_button.isEnabled()


def test_image_folder_needs_a_folder(qtbot, dock: TrainingDock, tmp_path: Path) -> None:
    dock.set_model(spec_model(tmp_path))
    dock.data_combo.setCurrentIndex(dock.data_combo.findData("folder"))
    assert not dock.folder_row.isHidden() and dock.samples_spin.isHidden()
    assert dock.start()
    assert dock.wait()
    assert "Choose an image folder first" in dock.message.text()


def test_models_without_a_spec_cannot_train(qtbot, dock: TrainingDock) -> None:
    resnet = LoadedModel(torchvision.models.resnet18(weights=None), "resnet18", (3, 64, 64), Preprocess.imagenet(size=64))  # fmt: skip
    dock.set_model(resnet)
    assert "resnet18 cannot be trained here" in dock.about.text()
    assert not dock.train_button.isEnabled()
    assert not dock.start()
