"""The training dock: train the current architecture in the background and make the result the current model.

The core training loop (:func:`cnnviz.core.training.train`) runs on a pool thread with a cancel event; its
per-batch and per-epoch callbacks reach the GUI thread as queued Qt signals, which drive the progress bar and the
live loss/accuracy plot. The trained model is handed to the app through ``trained(LoadedModel)`` and can be saved
as a cnnviz checkpoint.
"""

from __future__ import annotations

import copy
import math
from pathlib import Path
from typing import Any

import pyqtgraph as pg
from PySide6.QtCore import QObject, Qt, Signal
from PySide6.QtGui import QResizeEvent
from PySide6.QtWidgets import (
    QBoxLayout,
    QCheckBox,
    QComboBox,
    QDockWidget,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QProgressBar,
    QPushButton,
    QSizePolicy,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from cnnviz.core.errors import CnnvizError
from cnnviz.core.models import LoadedModel
from cnnviz.core.training import Callbacks, TrainResult
from cnnviz.core.training.plan import DEFAULT_LR, MIN_STEPS
from cnnviz.gui.workers import Cancelled, CancelToken, Job, JobRunner

__all__ = ["DATA_CHOICES", "TrainingDock"]

DATA_CHOICES: tuple[tuple[str, str], ...] = (
    ("synthetic-digits", "Synthetic digits (generated, offline)"),
    ("folder", "Image folder (one sub-folder per class)…"),
    ("mnist", "MNIST (downloads once)"),
    ("fashion-mnist", "Fashion-MNIST (downloads once)"),
    ("cifar10", "CIFAR-10 (downloads once)"),
)
"""(key, label) of the data sources offered."""

LOSS_PEN = pg.mkPen("#1f77b4", width=1.5)
ACC_PEN = pg.mkPen("#2ca02c", width=1.5)
VAL_BRUSH = pg.mkBrush("#d62728")

WIDE_DOCK = 760
"""From this width on, the plot stands beside the settings instead of below them."""
CONTROLS_WIDTH = 400
QWIDGETSIZE_MAX = (1 << 24) - 1


class _Progress(QObject, Callbacks):
    """The training callbacks as Qt signals (emitted on the worker thread, delivered on the GUI thread)."""

    batch = Signal(int, int, int, float, float)  # epoch, batch, n_batches, loss, acc
    epoch = Signal(int, object)  # epoch, metrics
    phase = Signal(str)
    plan = Signal(object)  # what train chose: batch size, epochs, …
    images = Signal(int, int)  # pictures prepared, of how many

    def on_train_start(self, plan: dict[str, Any]) -> None:
        self.plan.emit(dict(plan))

    def on_stage(self, text: str) -> None:
        self.phase.emit(text[:1].upper() + text[1:])

    def on_images(self, done: int, total: int) -> None:
        self.images.emit(int(done), int(total))

    def on_epoch_start(self, epoch: int, n_epochs: int) -> None:
        self.phase.emit(f"Epoch {epoch} of {n_epochs}")

    def on_batch_end(self, epoch: int, batch: int, n_batches: int, loss: float, acc: float) -> None:
        self.batch.emit(epoch, batch, n_batches, float(loss), float(acc))

    def on_epoch_end(self, epoch: int, metrics: dict[str, Any]) -> None:
        self.epoch.emit(epoch, dict(metrics))


def _open_data(
    choice: str,
    folder: str,
    shape: tuple[int, int, int],
    samples: int,
    seed: int,
    progress: _Progress | None = None,
) -> Any:
    from cnnviz.core.training import datasets

    if choice == "synthetic-digits":
        return datasets.open_dataset(
            choice,
            shape,
            seed=seed,
            samples=samples,
            stage=progress.on_stage if progress is not None else None,
            progress=progress.on_images if progress is not None else None,
        )
    if choice == "folder":
        if not folder.strip():
            raise CnnvizError(
                "Choose an image folder first: one sub-folder of pictures per class (Browse…)."
            )
        return datasets.image_folder(folder.strip(), shape)
    return datasets.torchvision_dataset(choice, shape)


class TrainingDock(QDockWidget):
    """Train the current model's architecture; ``trained(LoadedModel)`` when done.

    Interface: :meth:`set_model` (a LoadedModel), signals ``trained(object)`` and ``status(str)``.
    """

    trained = Signal(object)
    status = Signal(str)

    def __init__(self, parent: QWidget | None = None, title: str = "Training"):
        super().__init__(title, parent)
        self.setObjectName("training_dock")
        self.model: LoadedModel | None = None
        self.result: TrainResult | None = None
        self.trained_model: LoadedModel | None = None
        self._task: Job | None = None
        self._cancel: CancelToken | None = None
        self._progress: _Progress | None = None
        self.runner = JobRunner(self)
        self._loss: list[tuple[float, float]] = []
        self._acc: list[tuple[float, float]] = []
        self._val: list[tuple[float, float]] = []
        self._val_acc: list[tuple[float, float]] = []
        self._n_epochs = 0
        self._last_dir = str(Path.home())

        body = QWidget()
        self.setWidget(body)
        self.about = QLabel("Load a model to train it.")
        self.about.setWordWrap(True)
        self.about.setTextFormat(Qt.TextFormat.PlainText)
        self.about.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)

        self.data_combo = QComboBox()
        for key, label in DATA_CHOICES:
            self.data_combo.addItem(label, key)
        self.data_combo.currentIndexChanged.connect(self._data_changed)
        self.folder_edit = QLineEdit()
        self.folder_edit.setPlaceholderText("folder with one sub-folder per class")
        self.browse_button = QPushButton("Browse…")
        self.browse_button.clicked.connect(self._browse)
        folder_row = QWidget()
        folder_layout = QHBoxLayout(folder_row)
        folder_layout.setContentsMargins(0, 0, 0, 0)
        folder_layout.addWidget(self.folder_edit, 1)
        folder_layout.addWidget(self.browse_button)
        self.folder_row = folder_row

        self.samples_spin = QSpinBox()
        self.samples_spin.setRange(20, 60_000)
        self.samples_spin.setSingleStep(500)
        self.samples_spin.setValue(3000)
        self.samples_spin.setToolTip("How many digit pictures to generate for training")
        # 0 reads "Auto": the core scales the batch and the epochs with the data (core.training.plan).
        self.epochs_spin = QSpinBox()
        self.epochs_spin.setRange(0, 500)
        self.epochs_spin.setSpecialValueText("Auto")
        self.epochs_spin.setValue(0)
        self.epochs_spin.setToolTip(
            f"Passes over the training pictures; Auto gives at least {MIN_STEPS} optimiser steps "
            "(at least one epoch, fewer on large data sets)"
        )
        self.batch_spin = QSpinBox()
        self.batch_spin.setRange(0, 4096)
        self.batch_spin.setSpecialValueText("Auto")
        self.batch_spin.setValue(0)
        self.batch_spin.setToolTip(
            "Pictures per optimiser step; Auto takes an eighth of the training pictures, "
            "a power of two from 8 to 64"
        )
        self.lr_spin = QDoubleSpinBox()
        self.lr_spin.setDecimals(5)
        self.lr_spin.setRange(0.00001, 1.0)
        self.lr_spin.setSingleStep(0.0005)
        self.lr_spin.setValue(DEFAULT_LR)
        self.lr_spin.setToolTip(
            "Peak learning rate of AdamW: a one-cycle schedule warms up to it, then anneals"
        )
        self.keep_check = QCheckBox("Start from the model's current weights")
        self.keep_check.setChecked(True)
        self.keep_check.setToolTip(
            "Fine-tune the current weights (layers re-initialised by the editor start afresh anyway); "
            "unticked, every layer starts from a new random initialisation"
        )

        form = QFormLayout()
        form.setLabelAlignment(Qt.AlignmentFlag.AlignRight)
        form.addRow("Data", self.data_combo)
        form.addRow("Folder", self.folder_row)
        form.addRow("Samples", self.samples_spin)
        form.addRow("Epochs", self.epochs_spin)
        form.addRow("Batch size", self.batch_spin)
        form.addRow("Learning rate", self.lr_spin)
        form.addRow("", self.keep_check)
        self.form = form

        self.train_button = QPushButton("Train")
        self.train_button.clicked.connect(self.start)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.clicked.connect(self.cancel)
        self.save_button = QPushButton("Save checkpoint…")
        self.save_button.clicked.connect(lambda: self.save_checkpoint())
        buttons = QHBoxLayout()
        buttons.addWidget(self.train_button)
        buttons.addWidget(self.cancel_button)
        buttons.addStretch(1)
        buttons.addWidget(self.save_button)

        self.progress = QProgressBar()
        self.progress.setRange(0, 1)
        self.progress.setValue(0)
        self.progress.setTextVisible(True)
        self.phase = QLabel("")
        self.phase.setTextFormat(Qt.TextFormat.PlainText)
        self.message = QLabel("")
        self.message.setWordWrap(True)
        self.message.setTextFormat(Qt.TextFormat.PlainText)
        self.message.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.message.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.warning = QLabel("")
        self.warning.setObjectName("training_warning")
        self.warning.setWordWrap(True)
        self.warning.setTextFormat(Qt.TextFormat.PlainText)
        self.warning.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.warning.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.warning.setStyleSheet("color: #a64b00;")
        self.warning.hide()
        self.phase.setWordWrap(True)
        self.phase.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)

        self.plots = pg.GraphicsLayoutWidget()
        self.plots.setBackground("w")
        self.plots.setMinimumHeight(150)
        # Its size hint would count in the dock's height for its width and push the verdict below a scroll;
        # the plot takes what room is left instead.
        self.plots.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Ignored)
        self.loss_plot = self.plots.addPlot(title="Loss")
        self.acc_plot = self.plots.addPlot(title="Accuracy")
        for plot in (self.loss_plot, self.acc_plot):
            plot.showGrid(x=True, y=True, alpha=0.25)
            plot.setLabel("bottom", "epoch")
            # Fractions of the first epoch are epochs too: no "(x0.001)" rescaling of the axis.
            plot.getAxis("bottom").enableAutoSIPrefix(False)
            plot.getAxis("left").enableAutoSIPrefix(False)
            plot.setMouseEnabled(x=False, y=False)
            plot.hideButtons()
        self.acc_plot.setYRange(0, 1, padding=0.02)
        self.loss_curve = self.loss_plot.plot([], [], pen=LOSS_PEN, name="train")
        self.acc_curve = self.acc_plot.plot([], [], pen=ACC_PEN, name="train")
        self.val_loss = self.loss_plot.plot(
            [], [], pen=None, symbol="o", symbolSize=7, symbolBrush=VAL_BRUSH, name="validation"
        )
        self.val_acc = self.acc_plot.plot(
            [], [], pen=None, symbol="o", symbolSize=7, symbolBrush=VAL_BRUSH, name="validation"
        )
        legend = self.acc_plot.addLegend(offset=(-5, -5), labelTextSize="8pt", verSpacing=-6)
        legend.addItem(self.acc_curve, "train (batches)")
        legend.addItem(self.val_acc, "validation")

        # Settings and progress on one side, the plot and the verdict on the other: side by side in a wide
        # dock (the bottom of the window, where the plot would otherwise scroll out of sight), stacked in a
        # narrow one.
        self.controls = QWidget()
        controls = QVBoxLayout(self.controls)
        controls.setContentsMargins(0, 0, 0, 0)
        controls.setSpacing(4)
        controls.addLayout(form)
        controls.addLayout(buttons)
        controls.addWidget(self.progress)
        controls.addWidget(self.phase)
        controls.addStretch(1)
        results = QWidget()
        results_layout = QVBoxLayout(results)
        results_layout.setContentsMargins(0, 0, 0, 0)
        results_layout.setSpacing(4)
        # The verdict above the plot: in a short dock the plot gives up height first, not the words.
        results_layout.addWidget(self.message)
        results_layout.addWidget(self.warning)
        results_layout.addWidget(self.plots, 1)
        self.columns = QBoxLayout(QBoxLayout.Direction.LeftToRight)
        self.columns.setSpacing(8)
        self.columns.addWidget(self.controls)
        self.columns.addWidget(results, 1)

        layout = QVBoxLayout(body)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.setSpacing(4)
        layout.addWidget(self.about)
        layout.addLayout(self.columns, 1)
        self._arrange()
        self._data_changed()
        self._update_controls()

    def resizeEvent(self, event: QResizeEvent) -> None:  # noqa: N802 (Qt's name)
        super().resizeEvent(event)
        self._arrange()

    def _arrange(self) -> None:
        """Columns side by side when the dock is wide enough for a readable plot next to the settings."""
        wide = self.width() >= WIDE_DOCK
        direction = QBoxLayout.Direction.LeftToRight if wide else QBoxLayout.Direction.TopToBottom
        if self.columns.direction() != direction:
            self.columns.setDirection(direction)
        self.controls.setMaximumWidth(CONTROLS_WIDTH if wide else QWIDGETSIZE_MAX)
        self.plots.setMinimumHeight(120 if wide else 150)

    # ----------------------------------------------------------------------------------------------------------
    # Model

    def set_model(self, model: LoadedModel | None) -> None:
        """Train this model's architecture from now on (the model this dock trained keeps its results shown)."""
        self.model = model
        if model is not None and model is self.trained_model:
            self._update_controls()
            return
        if model is None:
            self.about.setText("Load a model to train it.")
        elif model.spec is None:
            self.about.setText(
                f"{model.name} cannot be trained here: the app trains models described by an "
                "architecture spec (spec files, cnnviz checkpoints, edited spec models). To train an edited "
                "VGG/AlexNet, save its architecture in the layer editor and open that file."
            )
        else:
            c, h, w = model.input_shape
            layers = len(model.spec.get("layers", []))
            params = sum(p.numel() for p in model.module.parameters())
            self.about.setText(
                f"Train {model.name}: {layers} layers, {params:,} parameters, {c}×{h}×{w} inputs. "
                "The trained model becomes the current model. Edits in the layer editor count once "
                "applied."
            )
        self._update_controls()

    @property
    def running(self) -> bool:
        return self._task is not None

    def _update_controls(self) -> None:
        trainable = self.model is not None and self.model.spec is not None
        running = self.running
        for widget in (
            self.data_combo,
            self.folder_edit,
            self.browse_button,
            self.samples_spin,
            self.epochs_spin,
            self.batch_spin,
            self.lr_spin,
            self.keep_check,
        ):
            widget.setEnabled(trainable and not running)
        self.train_button.setEnabled(trainable and not running)
        self.cancel_button.setEnabled(running)
        self.save_button.setEnabled(self.result is not None and not running)

    def _data_changed(self) -> None:
        key = self.data_combo.currentData()
        folder = key == "folder"
        self.form.setRowVisible(self.folder_row, folder)
        self.form.setRowVisible(self.samples_spin, key == "synthetic-digits")

    def _browse(self) -> None:
        chosen = QFileDialog.getExistingDirectory(self, "Training images", self._last_dir)
        if chosen:
            self.folder_edit.setText(chosen)
            self._last_dir = chosen

    # ----------------------------------------------------------------------------------------------------------
    # Training

    def start(self) -> bool:
        """Start training in the background; False (with a message) when it cannot start."""
        from cnnviz.core.training import train

        model = self.model
        if model is None or model.spec is None or self.running:
            return False
        spec = dict(model.spec)
        spec["input_shape"] = list(model.input_shape)
        shape = model.input_shape
        choice = str(self.data_combo.currentData())
        folder = self.folder_edit.text()
        samples = int(self.samples_spin.value())
        epochs = int(self.epochs_spin.value()) or None  # 0 is "Auto"
        batch = int(self.batch_spin.value()) or None
        lr = float(self.lr_spin.value())
        # The worker trains its own copy: the app keeps using (and capturing with) the current model meanwhile.
        start_from = copy.deepcopy(model.module) if self.keep_check.isChecked() else None
        # A token of its own, not the job's: a user's cancel ends the loop early and its result (epochs done)
        # must still arrive, whereas cancelling the job's token would drop it.
        cancel = CancelToken()
        progress = _Progress()
        progress.batch.connect(self._batch)
        progress.epoch.connect(self._epoch)
        progress.phase.connect(self.phase.setText)
        progress.plan.connect(self._plan)
        progress.images.connect(self._images)

        def job(_token: CancelToken) -> TrainResult:
            progress.phase.emit("Preparing the data…")
            data = _open_data(choice, folder, shape, samples, seed=0, progress=progress)
            cancel.check()
            return train(
                spec,
                data,
                epochs=epochs,
                batch_size=batch,
                lr=lr,
                device="auto",
                callbacks=progress,
                cancel=cancel,
                model=start_from,
            )

        self._loss, self._acc, self._val, self._val_acc = [], [], [], []
        self._redraw()
        self.result = None
        self._n_epochs = 0
        self.progress.setRange(0, 0)  # busy until the first batch reports
        self.message.setText("")
        self.warning.setText("")
        self.warning.hide()
        self._cancel, self._progress = cancel, progress
        self._task = self.runner.submit(
            "train",
            job,
            on_done=lambda result: self._finished(model, result),
            on_error=self._failed,
            on_cancel=lambda: self._failed(Cancelled()),
            label=f"Training {model.name}",
        )
        self._update_controls()
        self.status.emit(f"Training {model.name}…")
        return True

    def cancel(self) -> None:
        """Stop after the current batch; the current model stays as it was."""
        if self._cancel is not None:
            self._cancel.cancel()
            self.phase.setText("Cancelling after this batch…")

    def _plan(self, plan: dict[str, Any]) -> None:
        self._n_epochs = int(plan["epochs"])
        steps = self._n_epochs * int(plan["batches_per_epoch"])
        # The whole run's extent from the start: the curves fill it, and no axis shows negative epochs.
        for plot in (self.loss_plot, self.acc_plot):
            plot.setXRange(0, self._n_epochs, padding=0.02)
        self.progress.setRange(0, max(1, steps))
        self.progress.setValue(0)
        val = f", {plan['n_val']:,} for validation" if plan["n_val"] else ""
        self.phase.setText(
            f"{plan['n_train']:,} training pictures{val}: {self._n_epochs} epoch"
            f"{'s' if self._n_epochs != 1 else ''} of {plan['batches_per_epoch']:,} batches of "
            f"{plan['batch_size']}"
        )

    def _images(self, done: int, total: int) -> None:
        if self.progress.maximum() != total:
            self.progress.setRange(0, max(1, total))
        self.progress.setValue(done)

    def _batch(self, epoch: int, batch: int, n_batches: int, loss: float, acc: float) -> None:
        steps = n_batches * max(1, self._n_epochs)
        if self.progress.maximum() != steps:
            self.progress.setRange(0, steps)
        self.progress.setValue((epoch - 1) * n_batches + batch)
        x = epoch - 1 + batch / n_batches
        if math.isfinite(loss):
            self._loss.append((x, loss))
        self._acc.append((x, acc))
        self._redraw()

    def _epoch(self, epoch: int, metrics: dict[str, Any]) -> None:
        val_loss, val_acc = metrics.get("val_loss"), metrics.get("val_acc")
        if val_loss is not None and val_acc is not None:
            self._val.append((float(epoch), float(val_loss)))
            self._val_acc.append((float(epoch), float(val_acc)))
            self.phase.setText(
                f"Epoch {epoch}: validation accuracy {100 * val_acc:.1f}%, loss {val_loss:.3f}"
            )
        self._redraw()

    def _redraw(self) -> None:
        def xy(points: list[tuple[float, float]]) -> tuple[list[float], list[float]]:
            return [p[0] for p in points], [p[1] for p in points]

        self.loss_curve.setData(*xy(self._loss))
        self.acc_curve.setData(*xy(self._acc))
        self.val_loss.setData(*xy(self._val))
        self.val_acc.setData(*xy(self._val_acc))

    def _finished(self, base: LoadedModel, result: TrainResult) -> None:
        self._task = self._cancel = self._progress = None
        self.progress.setRange(0, 1)
        if result.cancelled:
            self.progress.setValue(0)
            text = self._cancelled_text(result)
            self.phase.setText(text)
            self.message.setText(
                "The partly trained weights were discarded; the current model is unchanged. "
                "Press Train to start again."
            )
            self.status.emit(text)
            self._update_controls()
            return
        self.progress.setValue(1)
        self.result = result
        name = base.name if base.name.endswith("(trained)") else f"{base.name} (trained)"
        loaded = LoadedModel(
            module=result.model,
            name=name,
            input_shape=base.input_shape,
            preprocess=result.preprocess,
            labels=list(result.labels),
            spec=dict(result.spec),
            source="trained",
            metadata={"metrics": dict(result.metrics), "history": list(result.history)},
        )
        self.trained_model = loaded
        self.model = loaded
        self.phase.setText(
            f"Finished {result.epochs_completed} epoch{'s' if result.epochs_completed != 1 else ''} "
            f"({result.steps:,} steps)."
        )
        self.message.setText(self._summary(result))
        if result.warning:
            self.warning.setText(f"Warning: {result.warning[:1].upper()}{result.warning[1:]}")
            self.warning.show()
        self.status.emit(f"Training finished: {self._summary(result)}")
        self._update_controls()
        self.trained.emit(loaded)

    @staticmethod
    def _cancelled_text(result: TrainResult) -> str:
        """What was done when the cancel took effect, in whole epochs and batches of the next one."""
        per_epoch = max(1, result.batches_per_epoch)
        done = result.epochs_completed
        extra = result.steps - done * per_epoch

        def plural(n: int, word: str) -> str:
            return f"{n:,} {word}{'s' if n != 1 else ''}"

        if done == 0 and extra == 0:
            return "Cancelled before the first batch."
        if extra == 0:
            return f"Cancelled after {plural(done, 'complete epoch')}."
        return (
            f"Cancelled in epoch {done + 1} after {extra:,} of {per_epoch:,} batches "
            f"({plural(done, 'complete epoch')} before it)."
        )

    @staticmethod
    def _summary(result: TrainResult) -> str:
        m = result.metrics
        parts = [f"{result.epochs_completed} epoch{'s' if result.epochs_completed != 1 else ''}"]
        if m.get("val_acc") is not None:
            parts.append(f"validation accuracy {100 * m['val_acc']:.1f}%")
        if m.get("heldout_fonts_acc") is not None:
            parts.append(f"unseen fonts {100 * m['heldout_fonts_acc']:.1f}%")
        parts.append(f"{result.seconds:.1f} s on {result.device}")
        return ", ".join(parts) + ". The trained model is now the current model."

    def _failed(self, exc: BaseException) -> None:
        self._task = self._cancel = self._progress = None
        self.progress.setRange(0, 1)
        self.progress.setValue(0)
        phase = ""
        if isinstance(exc, Cancelled):
            text = "Training was cancelled; the current model is unchanged."
            phase = "Cancelled while the data was being prepared."
        elif isinstance(exc, CnnvizError):
            text = f"Cannot train: {exc}"
        else:
            detail = " ".join(str(exc).split()) or type(exc).__name__
            text = f"Training failed unexpectedly ({type(exc).__name__}: {detail})"
        self.message.setText(text)
        self.phase.setText(phase)
        self.status.emit(text)
        self._update_controls()

    # ----------------------------------------------------------------------------------------------------------
    # Saving and shutdown

    def save_checkpoint(self, path: str | Path | None = None) -> Path | None:
        """Save the last trained model as a cnnviz checkpoint (asks for a file when ``path`` is None)."""
        from cnnviz.core.models.checkpoint import save_checkpoint

        result = self.result
        if result is None:
            return None
        if path is None:
            chosen, _ = QFileDialog.getSaveFileName(
                self,
                "Save checkpoint",
                str(Path(self._last_dir) / "trained.pt"),
                "Checkpoint (*.pt)",
            )
            if not chosen:
                return None
            path = chosen
        try:
            written = save_checkpoint(
                path,
                spec=result.spec,
                state_dict=result.model.state_dict(),
                labels=result.labels,
                preprocess=result.preprocess,
                metrics=result.metrics,
            )
        except (CnnvizError, OSError) as exc:
            text = f"Could not save the checkpoint: {exc}"
            self.message.setText(text)
            self.status.emit(text)
            return None
        self._last_dir = str(Path(written).parent)
        self.status.emit(f"Saved the checkpoint to {written}.")
        return Path(written)

    def wait(self, timeout_ms: int = 120_000) -> bool:
        """Wait until training has finished and its result was delivered (tests, shutdown)."""
        return self.runner.wait(timeout_ms)

    def shutdown(self) -> None:
        """Cancel training and wait for the worker (call before the window closes)."""
        self.cancel()
        self.runner.shutdown(30_000)
