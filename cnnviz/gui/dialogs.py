"""Dialogs: the model zoo, opening a model with weights, the trust confirmation, About."""

from __future__ import annotations

import html
import platform
import sys
from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QButtonGroup,
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QMessageBox,
    QPushButton,
    QRadioButton,
    QVBoxLayout,
    QWidget,
)

__all__ = [
    "OpenModelDialog",
    "ZooDialog",
    "about_text",
    "confirm_trust",
    "image_filter",
    "model_filter",
]


def _file_filter(title: str, suffixes: Any) -> str:
    patterns = " ".join(f"*{suffix}" for suffix in suffixes)
    return f"{title} ({patterns});;All files (*)"


def image_filter() -> str:
    """The open-picture filter: every extension the decoder opens."""
    from cnnviz.core.images import IMAGE_FILE_EXTENSIONS

    return _file_filter("Images", IMAGE_FILE_EXTENSIONS)


def model_filter() -> str:
    """The open-model filter: every suffix the model loader takes."""
    from cnnviz.core.models import MODEL_FILE_SUFFIXES

    return _file_filter("Models", MODEL_FILE_SUFFIXES)


class ZooDialog(QDialog):
    """Pick a torchvision or timm classification model and pretrained (or random) weights.

    timm's list (when timm is installed) is read off the GUI thread the first time it is chosen;
    ``timm_names`` gives (all, with pretrained weights) directly.
    """

    def __init__(
        self,
        parent: QWidget | None = None,
        names: list[str] | None = None,
        timm_names: tuple[list[str], list[str]] | None = None,
    ):
        super().__init__(parent)
        self.setWindowTitle("Model zoo")
        self.resize(560, 520)
        if names is None:
            from cnnviz.core.models import torchvision_model_names

            names = torchvision_model_names()
        self.names = names
        self._torchvision_names = names
        self._timm_names = timm_names
        self.source = QComboBox()
        self.source.addItem("torchvision classification models", "torchvision")
        from cnnviz.core.models.timm import timm_available

        if timm_names is not None or timm_available():
            self.source.addItem("timm models", "timm")
        self.source.currentIndexChanged.connect(self._source_changed)
        self.pretrained_only = QCheckBox("Only models with pretrained weights")
        self.pretrained_only.setChecked(True)
        self.pretrained_only.setVisible(False)
        self.pretrained_only.toggled.connect(lambda _on: self._source_changed())
        self.filter = QLineEdit()
        self.filter.setPlaceholderText("Filter, e.g. resnet, mobilenet, vgg")
        self.filter.setClearButtonEnabled(True)
        self.filter.textChanged.connect(self._filter)
        self.list = QListWidget()
        self.list.addItems(self.names)
        self.list.currentTextChanged.connect(self._model_changed)
        self.list.itemDoubleClicked.connect(lambda _i: self.accept())
        self.pretrained = QRadioButton("Pretrained weights")
        self.random = QRadioButton("Random weights (nothing to download)")
        group = QButtonGroup(self)
        group.addButton(self.pretrained)
        group.addButton(self.random)
        self.weights = QComboBox()
        self.pretrained.toggled.connect(self.weights.setEnabled)
        self.info = QLabel(" ")
        self.info.setWordWrap(True)
        self.info.setTextFormat(Qt.TextFormat.PlainText)
        buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel
        )
        buttons.button(QDialogButtonBox.StandardButton.Ok).setText("Load")
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(self.source)
        layout.addWidget(self.pretrained_only)
        layout.addWidget(self.filter)
        layout.addWidget(self.list, 1)
        layout.addWidget(self.pretrained)
        layout.addWidget(self.weights)
        layout.addWidget(self.random)
        layout.addWidget(self.info)
        layout.addWidget(buttons)
        self._entries: list[Any] = []
        self.pretrained.setChecked(True)
        if "resnet18" in self.names:
            self.list.setCurrentRow(self.names.index("resnet18"))
        elif self.names:
            self.list.setCurrentRow(0)

    def _source_changed(self, _index: int = 0) -> None:
        timm = self.source.currentData() == "timm"
        self.pretrained_only.setVisible(timm)
        if not timm:
            self._show(self._torchvision_names, "resnet18")
        elif self._timm_names is None:
            self._show([], "")
            self.info.setText("Reading timm's list of models…")
            if not hasattr(self, "_jobs"):
                from cnnviz.core.models.timm import timm_model_names
                from cnnviz.gui.workers import JobRunner

                self._jobs = JobRunner(self)
                self._jobs.submit(
                    "timm names",
                    lambda _t: (timm_model_names(), timm_model_names(pretrained=True)),
                    on_done=self._timm_ready,
                    on_error=lambda exc: self.info.setText(str(exc)),
                )
        else:
            everything, pretrained = self._timm_names
            names = pretrained if self.pretrained_only.isChecked() else everything
            self._show([f"timm:{n}" for n in names], "timm:resnet50d")

    def _timm_ready(self, names: tuple[list[str], list[str]]) -> None:
        self._timm_names = names
        if self.source.currentData() == "timm":
            self._source_changed()

    def _show(self, names: list[str], preferred: str) -> None:
        self.names = names
        self.list.clear()
        self.list.addItems(names)
        self.pretrained.setChecked(True)  # a new list starts from pretrained weights
        if preferred in names:
            self.list.setCurrentRow(names.index(preferred))
        elif names:
            self.list.setCurrentRow(0)
        self._filter(self.filter.text())

    def _filter(self, text: str) -> None:
        needle = text.strip().lower()
        for i in range(self.list.count()):
            item = self.list.item(i)
            item.setHidden(bool(needle) and needle not in item.text().lower())
        current = self.list.currentItem()
        if current is not None and current.isHidden():  # the choice follows what is shown
            shown = [i for i in range(self.list.count()) if not self.list.item(i).isHidden()]
            if shown:
                self.list.setCurrentRow(shown[0])

    def _model_changed(self, name: str) -> None:
        from cnnviz.core.models.torchvision import weights_for

        if name.startswith("timm:"):
            self._timm_model_changed(name)
            return
        self._entries = weights_for(name) if name else []
        self.weights.clear()
        for w in self._entries:
            self.weights.addItem(w.describe(), w.name)
        has = bool(self._entries)
        self.pretrained.setEnabled(has)
        if not has:
            self.random.setChecked(True)
        entry = self._entries[0] if self._entries else None
        if entry is not None and entry.params:
            note = (
                ""
                if entry.cached
                else " Pretrained weights are downloaded once into the torch hub cache."
            )
            self.info.setText(f"{name}: {entry.params / 1e6:.1f} M parameters.{note}")
        else:
            self.info.setText(f"{name}: no pretrained weights listed")

    def _timm_model_changed(self, name: str) -> None:
        pretrained = self._timm_names is not None and name[5:] in self._timm_names[1]
        self._entries = [name] if pretrained else []
        self.weights.clear()
        if pretrained:
            self.weights.addItem("timm's pretrained weights (Hugging Face Hub cache)", "default")
        self.pretrained.setEnabled(pretrained)
        if not pretrained:
            self.random.setChecked(True)
        self.info.setText(
            f"{name}: pretrained weights are fetched once into the Hugging Face Hub cache."
            if pretrained
            else f"{name}: timm has no pretrained weights for it; it opens with random weights."
        )

    def choice(self) -> tuple[str, str] | None:
        """(model name, weights) where weights is an enum member name, "default" (timm) or "none"."""
        item = self.list.currentItem()
        if item is None:
            return None
        if self.random.isChecked() or not self._entries:
            return (item.text(), "none")
        return (item.text(), self.weights.currentData() or "default")


class OpenModelDialog(QDialog):
    """A model (name or file) plus weights (default, random, or a state_dict file)."""

    def __init__(self, parent: QWidget | None = None, model: str = "", weights: str = "default"):
        super().__init__(parent)
        self.setWindowTitle("Open model")
        self.resize(560, 220)
        self.model = QLineEdit(model)
        self.model.setPlaceholderText(
            "default, resnet18, timm:convnext_nano, or a file: spec .json, checkpoint, TorchScript, .pt2"
        )
        browse = QPushButton("File…")
        browse.clicked.connect(self._browse_model)
        row = QHBoxLayout()
        row.addWidget(self.model, 1)
        row.addWidget(browse)
        self.weights = QComboBox()
        self.weights.setEditable(True)
        self.weights.addItem("default", "default")
        self.weights.addItem("none (random)", "none")
        if weights not in ("default", "none"):
            self.weights.addItem(weights, weights)
            self.weights.setCurrentIndex(2)
        wbrowse = QPushButton("File…")
        wbrowse.clicked.connect(self._browse_weights)
        wrow = QHBoxLayout()
        wrow.addWidget(self.weights, 1)
        wrow.addWidget(wbrowse)
        form = QFormLayout()
        form.addRow("Model", row)
        form.addRow("Weights", wrow)
        note = QLabel(
            "Weights: 'default' uses pretrained weights (torchvision, timm) or those stored in the file; "
            "'none' starts from random weights; or pick a state_dict file for the architecture above."
        )
        note.setWordWrap(True)
        buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Open | QDialogButtonBox.StandardButton.Cancel
        )
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(note)
        layout.addWidget(buttons)

    def _browse_model(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Model file", "", model_filter())
        if path:
            self.model.setText(path)

    def _browse_weights(self) -> None:
        path, _ = QFileDialog.getOpenFileName(
            self,
            "Weights file (state_dict)",
            "",
            "Weights (*.pt *.pth *.bin *.safetensors);;All files (*)",
        )
        if path:
            self.weights.addItem(path, path)
            self.weights.setCurrentIndex(self.weights.count() - 1)

    def choice(self) -> tuple[str, str] | None:
        model = self.model.text().strip()
        if not model:
            return None
        data = self.weights.currentData()
        text = self.weights.currentText().strip()
        weights = (
            data
            if data is not None and self.weights.itemText(self.weights.currentIndex()) == text
            else text
        )
        return (model, weights or "default")


def confirm_trust(parent: QWidget | None, spec: str, message: str) -> bool:
    """Ask before unpickling a file: it can run arbitrary code. Default answer: No."""
    box = QMessageBox(parent)
    box.setIcon(QMessageBox.Icon.Warning)
    box.setWindowTitle("Load an untrusted file?")
    from cnnviz.core.models.safety import TRUST_ADVICE

    box.setText(f"Opening <b>{html.escape(spec)}</b> can run code from a file.")
    box.setInformativeText(
        "A file that needs full unpickling, or holds native code, can run arbitrary code on this "
        "computer with your permissions. Load it only if you trust where it came from.\n\n"
        + message.replace(TRUST_ADVICE, "")
    )
    box.setStandardButtons(QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No)
    box.setDefaultButton(QMessageBox.StandardButton.No)
    box.button(QMessageBox.StandardButton.Yes).setText("Load and run its code")
    box.button(QMessageBox.StandardButton.No).setText("Don't load")
    return box.exec() == QMessageBox.StandardButton.Yes


def versions() -> dict[str, str]:
    """Versions of cnnviz and what it runs on."""
    from importlib.metadata import PackageNotFoundError, version

    import pyqtgraph
    import PySide6

    from cnnviz._version import __version__

    def installed(name: str) -> str:
        # A loaded module knows its full build tag (e.g. +cu130); otherwise the installed metadata answers,
        # so the About box never imports torch just to learn its version.
        module = sys.modules.get(name)
        if module is not None and isinstance(getattr(module, "__version__", None), str):
            return str(module.__version__)
        try:
            return version(name)
        except PackageNotFoundError:
            return "not installed"

    return {
        "cnnviz": __version__,
        "torch": installed("torch"),
        "torchvision": installed("torchvision"),
        "PySide6": PySide6.__version__,
        "Qt": PySide6.QtCore.qVersion(),
        "pyqtgraph": pyqtgraph.__version__,
        "Python": platform.python_version(),
    }


def about_text() -> str:
    rows = "".join(f"<tr><td>{k}</td><td>&nbsp;{v}</td></tr>" for k, v in versions().items())
    return (
        "<h3>cnnviz</h3>"
        "<p>See inside convolutional networks: every layer's feature maps, the exact receptive field of any unit, "
        "and a per-layer table of shapes, parameters and MACs.</p>"
        f"<table>{rows}</table>"
        "<p>Keys: arrow keys move the selected unit (Shift: 5 at a time), E toggles the effective receptive field, "
        "Esc returns to all channels.</p>"
    )


def show_about(parent: Any) -> None:
    QMessageBox.about(parent, "About cnnviz", about_text())
