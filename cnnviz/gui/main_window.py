"""The main window: docks, menus and the wiring between the session and the views (no computation here)."""

from __future__ import annotations

import os
from functools import partial
from pathlib import Path
from typing import Any

from PySide6.QtCore import QByteArray, QMimeData, Qt, QTimer, Signal
from PySide6.QtGui import (
    QAction,
    QActionGroup,
    QCloseEvent,
    QGuiApplication,
    QImage,
    QResizeEvent,
    QShowEvent,
)
from PySide6.QtWidgets import (
    QDockWidget,
    QFileDialog,
    QMainWindow,
    QMenu,
    QMessageBox,
    QProgressBar,
    QSplitter,
    QToolBar,
    QToolButton,
    QWidget,
)

from cnnviz.core.errors import describe_error
from cnnviz.core.present.view import COLORMAPS, NORMALIZATIONS, layer_label
from cnnviz.gui import dialogs, layout
from cnnviz.gui.help import HelpDialog
from cnnviz.gui.hints import UnitHint
from cnnviz.gui.icons import app_icon
from cnnviz.gui.menus import build_actions, build_menus, build_status_bar, build_toolbar
from cnnviz.gui.settings import Preferences, recent_path, recent_problem
from cnnviz.gui.state import Session, UnitSelection
from cnnviz.gui.tools.top_pictures import install_top_pictures
from cnnviz.gui.views.draw_canvas import DrawPanel, qimage_to_array
from cnnviz.gui.views.elided import ElidedLabel
from cnnviz.gui.views.feature_maps import FeatureMapView
from cnnviz.gui.views.input_view import InputView
from cnnviz.gui.views.layer_table import LayerListView, LayerTableView
from cnnviz.gui.views.predictions import PredictionPanel
from cnnviz.gui.views.top_pictures import TopPicturesView
from cnnviz.gui.workers import CancelToken, JobRunner

__all__ = ["MainWindow", "unit_status"]


def unit_status(selection: UnitSelection | None, row: Any = None) -> str:
    """The status-bar line for a selected unit: layer (named with its ``row``'s type where it is a bare
    index), unit, r, S, P and the box in original-image pixels."""
    from cnnviz.core.present.captions import unit_status as status_line

    if selection is None:
        return ""
    return status_line(
        layer_label(selection.layer, row),
        selection.unit,
        selection.box,
        channel=selection.channel,
        note=selection.note,
    )


def _pasted_image_problem(image: QImage) -> str | None:
    """Why a pasted or dropped picture is refused (it would not fit the decode budget), or None.

    Files are checked by the decoder; a clipboard picture arrives decoded already, so its RGB copy is
    checked here before it is made.
    """
    from cnnviz.core.budget import format_bytes
    from cnnviz.core.errors import CnnvizError
    from cnnviz.core.images import decode_budget

    try:
        budget = decode_budget()
    except CnnvizError as exc:
        return str(exc)
    need = image.width() * image.height() * 3
    if need <= budget:
        return None
    return (
        f"the picture is {image.width()}×{image.height()} pixels, which needs {format_bytes(need)}, "
        f"over the {format_bytes(budget)} budget for pictures; use a smaller one or raise the budget "
        "with the environment variable CNNVIZ_MAX_IMAGE_BYTES"
    )


class MainWindow(QMainWindow):
    """cnnviz's window. Everything it shows lives in ``self.session``; views only draw."""

    exported = Signal(str)  # path written (tests, scripts)

    # Built by cnnviz.gui.menus.
    act_about: QAction
    act_getting_started: QAction
    act_shortcuts: QAction
    act_reset_layout: QAction
    act_editor: QAction
    act_training: QAction
    act_lab: QAction
    act_default_model: QAction
    act_erf: QAction
    act_export_all: QAction
    act_export_channel: QAction
    act_export_csv: QAction
    act_export_grid_png: QAction
    act_export_grid_svg: QAction
    act_export_md: QAction
    act_export_rf_png: QAction
    act_export_rf_svg: QAction
    act_fit: QAction
    act_model_input: QAction
    act_model_weights: QAction
    act_open_image: QAction
    act_open_model: QAction
    act_paste: QAction
    act_quit: QAction
    act_sort: QAction
    act_zoo: QAction
    unit_label: ElidedLabel
    message_label: ElidedLabel
    busy_label: ElidedLabel
    progress: QProgressBar
    cancel_button: QToolButton
    samples_menu: QMenu
    recent_images_menu: QMenu
    recent_models_menu: QMenu
    cmap_group: QActionGroup
    norm_group: QActionGroup
    toolbar: QToolBar

    def __init__(
        self,
        session: Session | None = None,
        preferences: Preferences | None = None,
        parent: QWidget | None = None,
    ):
        super().__init__(parent)
        self.session = session or Session(parent=self)
        self.prefs = preferences or Preferences()
        self.io_runner = JobRunner(self, threads=1)
        self.setWindowTitle("cnnviz")
        self.setAcceptDrops(True)
        self.setDockOptions(
            QMainWindow.DockOption.AnimatedDocks | QMainWindow.DockOption.AllowTabbedDocks
        )
        icon = app_icon()
        if icon is not None:
            self.setWindowIcon(icon)

        # -- views -----------------------------------------------------------------------------------------------
        self.input_view = InputView()
        self.feature_view = FeatureMapView()
        self.layer_list = LayerListView()
        self.layer_table = LayerTableView()
        self.predictions = PredictionPanel()
        self.draw_panel = DrawPanel()
        for view in (self.input_view.graphics, self.feature_view.graphics):
            view.setAcceptDrops(False)

        splitter = QSplitter(Qt.Orientation.Horizontal)
        splitter.addWidget(self.input_view)
        splitter.addWidget(self.feature_view)
        splitter.setStretchFactor(0, 2)
        splitter.setStretchFactor(1, 3)
        splitter.setChildrenCollapsible(False)
        self.splitter = splitter
        self.setCentralWidget(splitter)

        self.layers_dock = self._dock(
            "Layers", self.layer_list, Qt.DockWidgetArea.LeftDockWidgetArea
        )
        self.predictions_dock = self._dock(
            "Prediction", self.predictions, Qt.DockWidgetArea.RightDockWidgetArea
        )
        self.draw_dock = self._dock(
            "Draw a digit", self.draw_panel, Qt.DockWidgetArea.RightDockWidgetArea
        )
        self.table_dock = self._dock(
            "Layer table", self.layer_table, Qt.DockWidgetArea.BottomDockWidgetArea
        )
        self._build_tool_docks()
        self.help_dialogs: dict[str, HelpDialog] = {}
        # a status line to show instead of "Loaded …" when the next model is in
        self._after_load = ""
        self.unit_hint = UnitHint(self.feature_view)
        self.unit_hint.dismissed.connect(self._hint_dismissed)

        self._message_timer = QTimer(self)
        self._message_timer.setSingleShot(True)
        build_status_bar(self)
        self._message_timer.timeout.connect(lambda: self.message_label.setText(""))
        build_actions(self)
        build_menus(self)
        build_toolbar(self)
        self._connect()
        # What Reset Layout returns to: the docks as built, before any saved state is restored.
        self._default_state = bytes(self.saveState().data())
        self._restore_settings()

    # ------------------------------------------------------------------------------------------------------------
    # Construction

    def _dock(self, title: str, widget: QWidget, area: Qt.DockWidgetArea) -> QDockWidget:
        dock = QDockWidget(title, self)
        dock.setObjectName(title.replace(" ", "_").lower() + "_dock")
        dock.setWidget(widget)
        dock.setFeatures(
            QDockWidget.DockWidgetFeature.DockWidgetClosable
            | QDockWidget.DockWidgetFeature.DockWidgetMovable
            | QDockWidget.DockWidgetFeature.DockWidgetFloatable
        )
        self.addDockWidget(area, dock)
        return dock

    def _build_tool_docks(self) -> None:
        """The layer editor and training docks, tabbed with the table (hidden until asked for), and the
        convolution lab's own window (its pictures need more room than a dock has)."""
        from cnnviz.gui.lab import LabWindow
        from cnnviz.gui.tools.editor import LayerEditorDock
        from cnnviz.gui.tools.training import TrainingDock

        self.editor_dock = LayerEditorDock(self)
        self.training_dock = TrainingDock(self)
        for dock in (self.editor_dock, self.training_dock):
            # Their forms scroll rather than raise the window's minimum height past a small screen.
            layout.scrollable(dock)
            self.addDockWidget(Qt.DockWidgetArea.BottomDockWidgetArea, dock)
            self.tabifyDockWidget(self.table_dock, dock)
            dock.hide()
            dock.visibilityChanged.connect(partial(self._tool_dock_shown, dock))
        self.top_pictures_dock = install_top_pictures(self, TopPicturesView())
        self.table_dock.raise_()
        # Without a parent: a window of its own that the main window can cover (one with a parent stays on top).
        self.lab_window = LabWindow()
        self.destroyed.connect(self.lab_window.deleteLater)
        self.lab = self.lab_window.lab

    def _tool_dock_shown(self, dock: QDockWidget, visible: bool) -> None:
        # These tools need room: the first time one opens, give the bottom area about half the window.
        if visible and not dock.property("sized"):
            dock.setProperty("sized", True)
            layout.tool_sized(self, dock)

    def show_tool(self, tool: QWidget) -> None:
        """Show a tool (a tool dock or the lab's window) in front, with the keyboard focus; never hide it."""
        if tool is self.lab_window:
            self.show_lab()
            return
        tool.show()
        tool.raise_()
        tool.activateWindow()
        tool.setFocus(Qt.FocusReason.ShortcutFocusReason)

    def show_lab(self) -> None:
        """Open the convolution lab's window (where it was last time) with the current picture."""
        self.lab_window.open(self.prefs.get("labGeometry"), near=self)
        self._feed_lab()

    def reset_layout(self) -> None:
        """View › Reset Layout: the docks of a first start at their default sizes, saved at once."""
        layout.reset_layout(self, self._default_state)
        self.prefs.set("labGeometry", None)
        if self.lab_window.isVisible():
            self.lab_window.setGeometry(self.lab_window.default_geometry(near=self))
        self.save_settings()
        self.message("The window layout is back to its defaults.", 5000)

    def showEvent(self, event: QShowEvent) -> None:  # noqa: N802 - Qt override
        super().showEvent(event)
        if event.spontaneous() or self.property("laidOut"):
            return  # shown again (after minimising, say): the user's layout stays as it is
        self.setProperty("laidOut", True)
        if not self.prefs.get("windowState"):
            QTimer.singleShot(0, partial(layout.apply_defaults, self))  # a first start
        # A layout saved while the window was small: squeezed docks get their share back once laid out.
        QTimer.singleShot(0, partial(layout.restore_proportions, self))

    def resizeEvent(self, event: QResizeEvent) -> None:  # noqa: N802 - Qt override
        super().resizeEvent(event)
        old, new = event.oldSize(), event.size()
        if old.isValid() and (new.width() > old.width() or new.height() > old.height()):
            # Growing back after a shrink: squeezed docks get their share again (after the layout settles).
            QTimer.singleShot(0, partial(layout.restore_proportions, self))

    # -- the first-launch hint -------------------------------------------------------------------------------
    def _offer_hint(self) -> None:
        if not self.prefs.get("unitHintDone", False, bool):
            self.unit_hint.offer(self.feature_view)

    def _hint_dismissed(self) -> None:
        self.prefs.set("unitHintDone", True)
        self.prefs.sync()

    def _connect(self) -> None:
        s = self.session
        s.modelLoading.connect(self._model_loading)
        s.modelChanged.connect(self._model_changed)
        s.summaryChanged.connect(self.layer_table.set_summary)
        s.imageChanged.connect(self._image_changed)
        s.activationsChanged.connect(self._activations_changed)
        s.predictionsChanged.connect(self.predictions.set_predictions)
        s.layerChanged.connect(self._layer_changed)
        s.unitChanged.connect(self._unit_changed)
        s.erfChanged.connect(self.input_view.set_erf)
        s.erfEnabledChanged.connect(self._erf_toggled)
        s.errorOccurred.connect(self.show_error)
        s.statusMessage.connect(lambda text: self.message(text, 10000))
        s.trustRequested.connect(self._trust_requested)
        s.architectureNeeded.connect(self._architecture_needed)
        for runner in (s.runner, self.io_runner):
            runner.busyChanged.connect(self._busy_changed)
            runner.progressChanged.connect(self._progress)
            runner.failed.connect(lambda kind, msg: self.show_error(f"{kind} failed", msg))

        self.layer_list.layerSelected.connect(s.select_layer)
        self.layer_table.layerSelected.connect(s.select_layer)
        self.feature_view.unitClicked.connect(lambda ch, y, x: s.select_unit(y, x, channel=ch))
        self.feature_view.unitMoved.connect(s.move_unit)
        self.feature_view.settingsChanged.connect(self._view_settings_changed)
        self.feature_view.exportRequested.connect(self.choose_export)
        self.input_view.pointClicked.connect(s.select_unit_at_input)
        self.input_view.exportRequested.connect(self.choose_export)
        self.input_view.modeChanged.connect(
            lambda mode: self.act_model_input.setChecked(mode == "model")
        )
        self.draw_panel.drawn.connect(lambda arr: s.set_image_array(arr, "drawing"))
        for dock in (self.editor_dock, self.training_dock):
            s.modelChanged.connect(dock.set_model)
            dock.status.connect(lambda text: self.message(text, 10000))
        # The editor's own summary of what Apply kept is the status line once the edited model is in.
        editor = self.editor_dock
        editor.applied.connect(lambda _m: self._say_after_load(editor.notice.text()))
        self.editor_dock.applied.connect(s.set_model)
        self.training_dock.trained.connect(s.set_model)
        s.summaryChanged.connect(self.lab.set_model_summary)
        s.imageChanged.connect(lambda _image: self._feed_lab())
        self.lab_window.closed.connect(self._save_lab_geometry)
        self.feature_view.painted.connect(self._offer_hint)
        s.unitChanged.connect(lambda sel: self.unit_hint.dismiss() if sel is not None else None)

    # ------------------------------------------------------------------------------------------------------------
    # Settings

    def _restore_settings(self) -> None:
        p = self.prefs
        geometry = p.get("geometry")
        # restoreGeometry refuses (False) bytes that are not a saved geometry: then start as on a first run.
        if not (
            isinstance(geometry, (QByteArray, bytes)) and self.restoreGeometry(QByteArray(geometry))
        ):
            # first start: a generous window that still fits small screens
            screen = QGuiApplication.primaryScreen()
            room = screen.availableGeometry() if screen is not None else None
            width = min(1440, int(room.width() * 0.95)) if room else 1440
            height = min(900, int(room.height() * 0.92)) if room else 900
            self.resize(max(width, 800), max(height, 600))
        state = p.get("windowState")
        if isinstance(state, (QByteArray, bytes)):
            self.restoreState(QByteArray(state))
        cmap = p.get("cmap", "viridis", str)
        norm = p.get("norm", "channel", str)
        self.feature_view.set_cmap(cmap if cmap in COLORMAPS else "viridis")
        self.feature_view.set_norm(norm if norm in NORMALIZATIONS else "channel")
        self.feature_view.set_sorted(p.get("sort", False, bool))
        self.act_erf.setChecked(p.get("erf", False, bool))
        self._view_settings_changed(save=False)
        if not p.writable:
            self.message("Preferences cannot be saved here (settings location not writable).", 8000)

    def _view_settings_changed(self, save: bool = True) -> None:
        fv = self.feature_view
        for act in self.cmap_group.actions():
            act.setChecked(act.text() == fv.cmap)
        for act in self.norm_group.actions():
            act.setChecked(act.data() == fv.norm)
        self.act_sort.blockSignals(True)
        self.act_sort.setChecked(fv.sorted)
        self.act_sort.blockSignals(False)
        if save:
            self.prefs.set("cmap", fv.cmap)
            self.prefs.set("norm", fv.norm)
            self.prefs.set("sort", fv.sorted)

    def _save_lab_geometry(self) -> None:
        self.prefs.set("labGeometry", self.lab_window.saveGeometry())

    def save_settings(self) -> None:
        if self.lab_window.isVisible():
            self._save_lab_geometry()
        self.prefs.set("geometry", self.saveGeometry())
        self.prefs.set("windowState", self.saveState())
        self.prefs.set("erf", self.session.erf_enabled)
        self.prefs.sync()

    # ------------------------------------------------------------------------------------------------------------
    # Session -> views

    def _model_loading(self, name: str) -> None:
        self.message(f"Loading {name}…")

    def _model_changed(self, model: Any) -> None:
        self._update_title()
        one_channel = model.input_shape[0] == 1
        if self.prefs.get("drawDockAuto", True, bool):
            self.draw_dock.setVisible(one_channel)
        source = getattr(model, "source", "")
        weights = (getattr(model, "metadata", {}) or {}).get("weights")
        details = [
            d
            for d in (
                source if source not in model.name else "",
                f"weights {weights}" if weights else "",
            )
            if d
        ]
        loaded = f"Loaded {model.name}" + (f" ({', '.join(details)})." if details else ".")
        self.message(self._after_load or loaded, 8000 if self._after_load else 6000)
        self._after_load = ""

    def _say_after_load(self, text: str) -> None:
        self._after_load = text

    def _feed_lab(self) -> None:
        """Give the convolution lab the current picture (only while it is shown: its lessons recompute)."""
        image = self.session.image
        if image is not None and self.lab_window.isVisible():
            self.lab.set_image(image.display)

    def _update_title(self) -> None:
        parts = ["cnnviz"]
        if self.session.model is not None:
            parts.append(self.session.model.name)
        if self.session.image_name:
            parts.append(self.session.image_name)
        self.setWindowTitle(" — ".join(parts))

    def _image_changed(self, image: Any) -> None:
        self.input_view.set_image(image, self.session.image_name)
        self._update_title()

    def _activations_changed(self) -> None:
        s = self.session
        shapes = s.activation_shapes()
        signature = (id(s.summary), tuple(shapes.items()))
        if signature != getattr(
            self, "_layers_signature", None
        ):  # a new picture alone changes nothing here
            self._layers_signature = signature
            self.layer_list.set_layers(list(s.activations), s.rows, shapes)
        self._show_layer()

    def _layer_changed(self, name: str) -> None:
        self._show_layer()

    def _show_layer(self) -> None:
        s = self.session
        name = s.layer
        act = s.activation()
        model = s.model
        labels = getattr(model, "labels", None)
        # Class names label the values of the output layer only (the last one captured).
        output = next(reversed(list(s.activations)), None)
        channels = act.shape[1] if act is not None and act.ndim >= 2 and name == output else None
        self.feature_view.value_labels = (
            labels if labels is not None and channels == len(labels) else None
        )
        self.feature_view.set_layer(name, act, s.row(name))
        self.layer_list.set_current(name)
        self.layer_table.set_current(name)

    def _unit_changed(self, selection: UnitSelection | None) -> None:
        self.feature_view.set_selection(selection)
        self.input_view.set_selection(selection)
        row = self.session.row(selection.layer) if selection is not None else None
        self.unit_label.setText(unit_status(selection, row))

    def _erf_toggled(self, on: bool) -> None:
        if self.act_erf.isChecked() != on:
            self.act_erf.setChecked(on)

    def _busy_changed(self, _busy: bool, _label: str) -> None:
        jobs = [r for r in (self.session.runner, self.io_runner) if r.busy]
        busy = bool(jobs)
        self.progress.setVisible(busy)
        self.cancel_button.setVisible(busy)
        if busy:
            labels = [r.label for r in jobs]
            self.busy_label.setText(labels[-1] + "…")
            self.progress.setRange(0, 0)
        else:
            self.busy_label.setText("")

    def _progress(self, done: int, total: int, text: str) -> None:
        if total > 0:
            self.progress.setRange(0, 1000)
            self.progress.setValue(int(1000 * min(done, total) / total))
        else:
            self.progress.setRange(0, 0)
        if text:
            self.busy_label.setText(text + "…")

    def message(self, text: str, timeout_ms: int = 0) -> None:
        """A transient message in the status bar (kept until replaced when ``timeout_ms`` is 0)."""
        self.message_label.setText(text)  # elided to fit, with the whole text as its tooltip
        if timeout_ms > 0:
            self._message_timer.start(timeout_ms)
        else:
            self._message_timer.stop()

    def cancel_work(self) -> None:
        """Cancel everything in flight (downloads, loading, exports)."""
        self.session.runner.cancel_all()
        self.io_runner.cancel_all()
        self.message("Cancelled.", 4000)

    def show_error(self, title: str, message: str) -> None:
        """Errors the user can fix: a dialog (or the status bar while tests run without dialogs)."""
        self.last_error = (title, message)
        self.message(f"{title}: {message}", 15000)
        if os.environ.get("CNNVIZ_NO_DIALOGS"):
            return
        box = QMessageBox(
            QMessageBox.Icon.Warning, title, message, QMessageBox.StandardButton.Ok, self
        )
        box.setWindowModality(Qt.WindowModality.WindowModal)
        box.open()

    def _trust_requested(self, spec: str, weights: Any, message: str) -> None:
        if os.environ.get("CNNVIZ_NO_DIALOGS"):
            self.show_error("Untrusted file", message)
            return
        if dialogs.confirm_trust(self, spec, message):
            self.session.load_model(spec, weights, trust=True)

    def _architecture_needed(self, weights_path: str, message: str) -> None:
        if os.environ.get("CNNVIZ_NO_DIALOGS"):
            self.show_error("Which architecture?", message)
            return
        self.message("That file holds only weights: name the architecture they belong to.", 10000)
        self.choose_model_and_weights("", weights_path)

    # ------------------------------------------------------------------------------------------------------------
    # Opening things

    def start(
        self,
        model: str | None = None,
        weights: Any = "default",
        image: str | None = None,
        trust: bool = False,
    ) -> None:
        """Load the start-up model (the bundled default unless given) and picture (a sample unless given)."""
        if image:
            self.session.queue_image(str(image))
            self.prefs.add_recent("recentImages", recent_path(image))
        self.load_model(model or "default", weights, trust)

    def load_model(self, spec: str, weights: Any = "default", trust: bool = False) -> None:
        if spec == "default":
            # The core falls back to the architecture with fresh weights and says so in the model's note.
            self.session.load_model("default", weights, trust, label="the digits model")
            return
        if os.sep in spec or Path(spec).suffix:
            self.prefs.add_recent("recentModels", recent_path(spec))
        self.session.load_model(spec, weights, trust)

    def open_image_path(self, path: str) -> None:
        self.prefs.add_recent("recentImages", recent_path(path))
        self.session.open_image(str(path))

    def choose_image(self) -> None:
        start = self.prefs.get("imageDir", "", str)
        path, _ = QFileDialog.getOpenFileName(self, "Open picture", start, dialogs.image_filter())
        if path:
            self.prefs.set("imageDir", str(Path(path).parent))
            self.open_image_path(path)

    def choose_model(self) -> None:
        start = self.prefs.get("modelDir", "", str)
        path, _ = QFileDialog.getOpenFileName(self, "Open model", start, dialogs.model_filter())
        if path:
            self.prefs.set("modelDir", str(Path(path).parent))
            self.load_model(path)

    def choose_model_and_weights(self, model: str = "", weights: str = "default") -> None:
        dialog = dialogs.OpenModelDialog(self, model, weights)
        if dialog.exec():
            choice = dialog.choice()
            if choice is not None:
                self.load_model(*choice)

    def choose_zoo_model(self) -> None:
        dialog = dialogs.ZooDialog(self)
        if dialog.exec():
            choice = dialog.choice()
            if choice is not None:
                self.load_zoo_model(*choice)

    def load_zoo_model(self, name: str, weights: str = "default") -> None:
        """A torchvision model; pretrained weights are downloaded in the background (progress, Cancel)."""
        kind = "random weights" if weights == "none" else f"{weights} weights"
        self.session.load_model(name, weights, label=f"{name} ({kind})")

    def paste_image(self) -> bool:
        """Use the clipboard's picture (or image file). Returns False if it holds neither."""
        return self._open_mime(QGuiApplication.clipboard().mimeData(), "pasted picture")

    def _open_mime(self, mime: QMimeData | None, name: str) -> bool:
        if mime is None:
            return False
        from cnnviz.core.models import MODEL_FILE_SUFFIXES

        for url in mime.urls() if mime.hasUrls() else []:
            if url.isLocalFile():
                path = url.toLocalFile()
                if Path(path).suffix.lower() in MODEL_FILE_SUFFIXES:
                    self.load_model(path)
                else:
                    self.open_image_path(path)
                return True
        if mime.hasImage():
            image = mime.imageData()
            if isinstance(image, QImage) and not image.isNull():
                problem = _pasted_image_problem(image)
                if problem is not None:
                    self.show_error(f"Could not use the {name}", problem)
                    return True
                self.session.set_image_array(qimage_to_array(image), name)
                return True
        self.message("The clipboard holds no picture.", 5000)
        return False

    def _fill_samples(self) -> None:
        from cnnviz.core.resources import sample_images

        menu = self.samples_menu
        menu.clear()
        samples = sample_images()
        if not samples:
            menu.addAction("(no samples installed)").setEnabled(False)
            return
        groups: dict[str, list[Path]] = {}
        for p in samples:
            groups.setdefault(p.parent.name, []).append(p)
        for group, paths in groups.items():
            sub = menu.addMenu(group.capitalize()) if len(groups) > 1 else menu
            for p in paths:
                sub.addAction(p.stem, partial(self.open_image_path, str(p)))

    def _fill_recent(self, menu: QMenu, key: str) -> None:
        menu.clear()
        items = self.prefs.recent(key)
        if not items:
            menu.addAction("(none yet)").setEnabled(False)
            return
        for path in items:
            opener = self.open_image_path if key == "recentImages" else self.load_model
            act = menu.addAction(Path(path).name, partial(self._open_recent, key, path, opener))
            act.setToolTip(path)
        menu.addSeparator()
        menu.addAction("Clear list", lambda: self.prefs.set(key, []))

    def _open_recent(self, key: str, path: str, opener: Any) -> None:
        problem = recent_problem(path)
        if problem is not None:
            self.prefs.remove_recent(key, path)
            self.show_error(
                "File not found", f"{path} {problem}; it was removed from the recent files"
            )
            return
        opener(path)

    # -- drag and drop -------------------------------------------------------------------------------------------
    def dragEnterEvent(self, ev: Any) -> None:  # noqa: N802 - Qt override
        mime = ev.mimeData()
        if mime.hasUrls() or mime.hasImage():
            ev.acceptProposedAction()
        else:
            ev.ignore()

    def dragMoveEvent(self, ev: Any) -> None:  # noqa: N802 - Qt override
        self.dragEnterEvent(ev)

    def dropEvent(self, ev: Any) -> None:  # noqa: N802 - Qt override
        if self._open_mime(ev.mimeData(), "dropped picture"):
            ev.acceptProposedAction()
        else:
            ev.ignore()

    # ------------------------------------------------------------------------------------------------------------
    # Export

    def _snapshot(self) -> Any:
        """What an export of the current view needs, taken now (the export runs in the background)."""
        return self.session.snapshot(self.feature_view.view_state())

    def choose_export(self, kind: str) -> None:
        """Ask where to save, then export (``kind``: grid_png, grid_svg, channel_png, rf_png, rf_svg, table_csv,
        table_md)."""
        from cnnviz.core.present.export import default_file_name, export_problem

        snapshot = self._snapshot()
        problem = export_problem(kind, snapshot)
        if problem:
            self.show_error("Nothing to export", problem)
            return
        folder = self.prefs.get("exportDir", str(Path.home()), str)
        suffix = kind[-3:] if not kind.endswith("md") else "md"
        path, _ = QFileDialog.getSaveFileName(
            self,
            "Export",
            str(Path(folder) / default_file_name(kind, snapshot)),
            f"{suffix.upper()} (*.{suffix})",
        )
        if path:
            self.prefs.set("exportDir", str(Path(path).parent))
            self.export(kind, path)

    def export(self, kind: str, path: str) -> None:
        """Write one export in the background; ``exported(path)`` fires when it is on disk."""
        from cnnviz.core.present.export import export_problem, export_view

        snapshot = self._snapshot()
        problem = export_problem(kind, snapshot)
        if problem:
            self.show_error("Nothing to export", problem)
            return

        def job(_token: CancelToken) -> str:
            export_view(kind, path, snapshot)
            return path

        self.io_runner.submit(
            f"export:{path}",
            job,
            on_done=self._exported,
            on_error=lambda exc: self.show_error("Export failed", describe_error(exc)),
            label=f"Exporting {Path(path).name}",
        )

    def _exported(self, path: str) -> None:
        self.message(f"Wrote {path}", 8000)
        self.exported.emit(path)

    def choose_export_all(self) -> None:
        if self.session.model is None or self.session.image is None:
            self.show_error("Nothing to export", "no model and picture are loaded yet")
            return
        folder = QFileDialog.getExistingDirectory(
            self, "Export all layers into folder", self.prefs.get("exportDir", "", str)
        )
        if folder:
            self.prefs.set("exportDir", folder)
            self.export_all_layers(folder)

    def export_all_layers(self, folder: str) -> None:
        """Every layer's maps (and the selected unit's overlays) into ``folder``, with progress and cancel."""
        from cnnviz.core.present.export import export_layers, unit_point

        s = self.session
        model, image = s.model, s.image
        fv = self.feature_view
        point = unit_point(s.selection.box if s.selection is not None else None, image.geometry)
        cmap, norm, sort = fv.cmap, fv.norm, fv.sorted

        def job(token: CancelToken) -> str:
            result = export_layers(model, image, folder, point=point, cmap=cmap, norm=norm, sort=sort,
                                   effective_rf=False, progress=lambda d, t, name: token.progress(d, t, f"Exporting {name}"),
                                   cancel=token)  # fmt: skip
            if result.cancelled:
                return f"{folder} (cancelled after {len(result.manifest['layers'])} layers)"
            return folder

        # It runs the model, so it queues behind inference on the model thread.
        s.runner.submit(
            "export-all",
            job,
            on_done=self._exported,
            on_error=lambda exc: self.show_error("Export failed", describe_error(exc)),
            label="Exporting all layers",
        )

    # ------------------------------------------------------------------------------------------------------------
    def closeEvent(self, ev: QCloseEvent) -> None:  # noqa: N802 - Qt override
        self.save_settings()
        self.lab_window.close()
        self.training_dock.shutdown()
        self.editor_dock.shutdown()
        self.session.shutdown()
        self.io_runner.shutdown()
        super().closeEvent(ev)
