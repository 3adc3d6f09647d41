"""The "Top pictures" dock: what a channel responds to across a whole folder of pictures.

For the selected layer, every picture of the chosen folder (with its sub-folders) runs through the model once and
the core (:func:`cnnviz.core.analysis.dataset.top_units`) keeps the k strongest units of every channel. Any channel
of that layer then shows at once from the kept result; only a change of model, layer, folder (or a larger k) runs
the folder again. Results of the last few layers are kept, so going back to one is instant too.

Where the work runs: a folder of thousands of pictures takes minutes, so it must not hold up the model thread
(which runs the picture the user opens). The model is copied on the model thread (between two captures, so no
capture hook travels with the copy) and the copy runs the folder on the window's I/O thread, whose progress and
Cancel the status bar already shows. Crops are cut on a thread of the dock's own.
"""

from __future__ import annotations

import copy
import os
from collections import OrderedDict
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QDockWidget, QFileDialog, QMenu, QWidget

from cnnviz.core.errors import describe_error
from cnnviz.core.text import num
from cnnviz.gui.settings import recent_path, recent_problem
from cnnviz.gui.workers import CancelToken, JobRunner

if TYPE_CHECKING:
    from cnnviz.gui.main_window import MainWindow

__all__ = ["FOLDER_KEY", "RECENT_KEY", "TopPicturesDock", "install_top_pictures"]

FOLDER_KEY = "topPicturesFolder"
RECENT_KEY = "recentFolders"
JOB = "top-pictures"
COPY_JOB = "top-pictures-model"
CROP_JOB = "top-pictures-crops"
SAVE_JOB = "top-pictures-save"
KEPT_RESULTS = 6  # layers whose results stay at hand
KEPT_CROPS = 160  # about 16 channels of 9 crops: at most 192×192 RGBA each, some 24 MiB in all
CROP_SIDE = 192  # pixels of a crop's longer side (a tile is drawn at most this large)
DEBOUNCE_MS = 350  # stepping through layers with the keyboard runs only the layer stopped at


@dataclass(frozen=True)
class _Key:
    model: int  # id() of the LoadedModel; the entry holds the model, so the id cannot be reused meanwhile
    layer: str
    folder: str


@dataclass
class _Entry:
    model: Any
    result: Any


def _inner(unit: Any) -> tuple[tuple[float, float, float, float], float]:
    """Where the picture part lies in a unit's whole field (top, left, bottom, right as fractions of it; empty
    when the field is all padding) and the field's width / height, from the unit's edges and picture size."""
    y0, x0, y1, x1 = (float(v) for v in unit.edges)
    height, width = (float(v) for v in unit.size)
    fh, fw = max(y1 - y0, 1e-9), max(x1 - x0, 1e-9)
    top, left = (min(max(y0, 0.0), height) - y0) / fh, (min(max(x0, 0.0), width) - x0) / fw
    bottom, right = (max(min(y1, height), 0.0) - y0) / fh, (max(min(x1, width), 0.0) - x0) / fw
    return (top, left, max(bottom, top), max(right, left)), fw / fh


class TopPicturesDock(QDockWidget):
    """The dock: a :class:`TopPicturesView` and the work behind it, for the window's session."""

    opened = Signal(str)  # the picture a click opened (tests, scripts)
    saved = Signal(str)  # the folder Save wrote into

    def __init__(self, window: MainWindow, view: QWidget):
        super().__init__("Top pictures", window)
        self.setObjectName("top_pictures_dock")
        self.window_ = window
        self.session = window.session
        # The window builds the view (tools never import views): a cnnviz.gui.views.top_pictures.TopPicturesView.
        self.view: Any = cast(Any, view)
        self.setWidget(self.view)
        self.folder: str | None = window.prefs.get(FOLDER_KEY, "", str) or None
        self.channel = 0
        self.results: OrderedDict[_Key, _Entry] = OrderedDict()
        self.shown: tuple[_Key, Any] | None = None  # the key and result on screen
        # A unit's crop (uint8 RGBA, the padding hatched) or why its picture cannot be read any more.
        self.crops: OrderedDict[tuple[Any, ...], Any] = OrderedDict()

        self.crop_runner = JobRunner(self, threads=1)
        # The key of the run in flight (its model copy or its folder run).
        self._running: _Key | None = None
        self._channel_error = False  # the error line says a channel was out of range
        self._declined: _Key | None = None  # cancelled by the user: not run again until asked
        self._pending_unit: tuple[str, str, tuple[int, int], int] | None = None
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(DEBOUNCE_MS)
        self._timer.timeout.connect(self.refresh)

        v = self.view
        v.folderRequested.connect(self.choose_folder)
        v.saveRequested.connect(self.choose_save)
        v.runRequested.connect(lambda: self.run(force=True))
        v.cancelRequested.connect(self.cancel)
        v.channelChosen.connect(self.show_channel)
        v.kChanged.connect(self._k_changed)
        v.tileClicked.connect(self.open_tile)
        s = self.session
        s.modelChanged.connect(self._model_changed)
        s.activationsChanged.connect(self._activations_changed)
        s.layerChanged.connect(lambda _name: self._schedule())
        s.unitChanged.connect(self._unit_changed)
        window.feature_view.channelShown.connect(self._channel_shown)
        # After the slot that hands a copied model on to the folder run, never between the two jobs.
        self._sync_timer = QTimer(self)
        self._sync_timer.setSingleShot(True)
        self._sync_timer.setInterval(0)
        self._sync_timer.timeout.connect(self._sync_running)
        for runner in (s.runner, window.io_runner):
            runner.busyChanged.connect(lambda _b, _l: self._sync_timer.start())
        self.visibilityChanged.connect(lambda on: self._schedule() if on else None)

        self.act_open_folder = QAction("Open &Folder…", window)
        self.act_open_folder.setStatusTip(
            "Choose a folder of pictures for the top pictures of each channel"
        )
        self.act_open_folder.setShortcut(QKeySequence("Ctrl+Shift+F"))
        self.act_open_folder.triggered.connect(lambda _c=False: self.choose_folder())
        self.act_show = QAction("Top &Pictures", window)
        self.act_show.setShortcut(QKeySequence("Ctrl+P"))
        self.act_show.setStatusTip("The pictures of a folder that each channel responds to most")
        self.act_show.triggered.connect(lambda _c=False: window.show_tool(self))
        self.recent_menu = QMenu("Recent &Folders", window)
        self.recent_menu.aboutToShow.connect(self._fill_recent)
        self._update_header()
        self._show()

    # ------------------------------------------------------------------------------------------------------------
    # Folder

    def choose_folder(self) -> None:
        """File › Open Folder…: pick the folder (starting where the last one was) and show the dock."""
        start = self.folder or self.window_.prefs.get("imageDir", "", str)
        folder = QFileDialog.getExistingDirectory(self.window_, "Open folder of pictures", start)
        if folder:
            self.set_folder(folder)

    def set_folder(self, folder: str) -> None:
        """Use ``folder`` (remembered, listed in the recent folders) and show the dock; runs when it is shown."""
        path = recent_path(folder)
        self.folder = path
        prefs = self.window_.prefs
        prefs.set(FOLDER_KEY, path)
        prefs.add_recent(RECENT_KEY, path)
        self._declined = None
        self._update_header()
        self.window_.show_tool(self)
        self.refresh()

    def _fill_recent(self) -> None:
        menu, prefs = self.recent_menu, self.window_.prefs
        menu.clear()
        items = prefs.recent(RECENT_KEY)
        if not items:
            menu.addAction("(none yet)").setEnabled(False)
            return
        for path in items:
            menu.addAction(Path(path).name or path, partial(self._open_recent, path)).setToolTip(
                path
            )
        menu.addSeparator()
        menu.addAction("Clear list", lambda: prefs.set(RECENT_KEY, []))

    def _open_recent(self, path: str) -> None:
        problem = recent_problem(path)
        if problem is None and not os.path.isdir(path):
            problem = "is not a folder any more"
        if problem is not None:
            self.window_.prefs.remove_recent(RECENT_KEY, path)
            self.window_.show_error(
                "Folder not found", f"{path} {problem}; it was removed from the recent folders"
            )
            return
        self.set_folder(path)

    # ------------------------------------------------------------------------------------------------------------
    # Running

    def _key(self) -> _Key | None:
        s = self.session
        if (
            self.folder is None
            or s.model is None
            or s.layer is None
            or s.layer not in s.activations
        ):
            return None
        return _Key(id(s.model), s.layer, self.folder)

    def _model_changed(self, model: Any) -> None:
        # Results of other models answer nothing now, and each would keep its model in memory.
        self.results = OrderedDict((k, e) for k, e in self.results.items() if e.model is model)
        if self.shown is not None and self.shown[0].model != id(model):
            self.shown = None
        self._schedule()

    def _schedule(self) -> None:
        self._update_header()
        self._timer.start()

    def refresh(self) -> None:
        """Show the kept result of the current model, layer and folder, or run the folder for it."""
        self._timer.stop()
        self._update_header()
        key = self._key()
        if key is None:
            self._show()
            return
        entry = self.results.get(key)
        if entry is not None and entry.result.k >= self.view.k_spin.value():
            self.results.move_to_end(key)
            self.view.set_error(None)
            self.shown = (key, entry.result)
            self._show()
            return
        shown = self.shown[0] if self.shown is not None else None
        if shown is not None and (shown.model, shown.layer) != (key.model, key.layer):
            # Another layer's pictures say nothing about this one; another folder's do (kept until replaced).
            self.shown = None
        self._show()
        if key == self._declined or not self.isVisible():
            return
        self.run()

    def run(self, force: bool = False) -> None:
        """Run the folder for the current model and layer (``force``: even when a result is kept)."""
        key = self._key()
        if key is None:
            if self.folder is None:
                self.view.set_error(
                    "Choose a folder of pictures first (Folder… or File › Open Folder…)."
                )
            return
        if key == self._running and not force:
            return
        if force:
            self.results.pop(key, None)
        self._declined = None
        self._running = key
        self.view.set_error(None)
        model, layer, folder = self.session.model, key.layer, key.folder
        k = int(self.view.k_spin.value())

        def snapshot(_token: CancelToken) -> Any:
            try:
                return copy.deepcopy(model)
            except Exception:  # noqa: BLE001 - a module that cannot be copied runs here, on the model thread
                return None

        def copied(clone: Any) -> None:
            if clone is None:
                self.session.runner.submit(
                    JOB, partial(self._job, model, layer, folder, k), **self._handlers(key, model)
                )
                return
            self.window_.io_runner.submit(
                JOB, partial(self._job, clone, layer, folder, k), **self._handlers(key, model)
            )

        self.window_.io_runner.cancel(JOB)
        self.session.runner.cancel(JOB)
        self.session.runner.submit(COPY_JOB, snapshot, on_done=copied,
                                   label="Preparing the top pictures")  # fmt: skip
        self._sync_running()

    def _handlers(self, key: _Key, model: Any) -> dict[str, Any]:
        name = Path(key.folder).name or key.folder
        return {
            "on_done": lambda result: self._done(key, model, result),
            "on_error": lambda exc: self._failed(key, exc),
            "on_progress": lambda done, total, _text: self.view.set_progress(done, total),
            "label": f"Top pictures of {name}",
        }

    @staticmethod
    def _job(model: Any, layer: str, folder: str, k: int, token: CancelToken) -> Any:
        from cnnviz.core.analysis.dataset import top_units
        from cnnviz.core.images.folder import list_pictures

        token.progress(0, 0, "Listing the pictures")
        pictures = list_pictures(folder)

        def progress(done: int, total: int) -> None:
            # Stopping is should_stop's answer, never an exception raised inside the core.
            if not token.cancelled:
                token.progress(done, total, f"Top pictures: {done} of {total} pictures")

        return top_units(model, pictures, layer, k=k, progress=progress, should_stop=token.is_set)

    def _k_changed(self, _k: int) -> None:
        # A new k is a new question: a run declined or failed for the old one may succeed now.
        self._declined = None
        self._timer.start()

    def cancel(self) -> None:
        """Stop the run in flight; the result shown stays."""
        self._declined = self._running
        for runner in (self.session.runner, self.window_.io_runner):
            runner.cancel(COPY_JOB)
            runner.cancel(JOB)
        self._sync_running()

    def _sync_running(self) -> None:
        s, io = self.session.runner, self.window_.io_runner
        running = any(r.current(kind) is not None for r in (s, io) for kind in (COPY_JOB, JOB))
        if not running and self._running is not None:
            # Stopped without a result: cancelled here or by the window's Cancel.
            self._declined = self._running
            self._running = None
            self.view.set_error("Cancelled; the result shown is kept. Run to compute again.")
            self._update_header()
        self.view.set_running(running)

    def _done(self, key: _Key, model: Any, result: Any) -> None:
        self._running = None
        if getattr(result, "cancelled", False):
            self._declined = key
            self.view.set_error("Cancelled; the result shown is kept. Run to compute again.")
            self._sync_running()
            return
        self.results[key] = _Entry(model, result)
        self.results.move_to_end(key)
        while len(self.results) > KEPT_RESULTS:
            self.results.popitem(last=False)
        self._sync_running()
        if key == self._key():
            self.shown = (key, result)
            self.view.set_error(None)
            self._show()

    def _failed(self, key: _Key, exc: BaseException) -> None:
        self._running = None
        self._declined = key  # the same folder would fail the same way: run again when asked
        self._sync_running()
        self.view.set_error(describe_error(exc))

    # ------------------------------------------------------------------------------------------------------------
    # Channel and unit

    def _activations_changed(self) -> None:
        self._update_header()
        pending = self._pending_unit
        if pending is not None and self.session.image_source == pending[0]:
            self._pending_unit = None
            # After the window has shown the new picture's maps (it hears this signal after the dock).
            QTimer.singleShot(0, partial(self._select, *pending[1:]))
        if self._key() != (self.shown[0] if self.shown else None):
            self._schedule()

    def _select(self, layer: str, unit: tuple[int, int], channel: int) -> None:
        s = self.session
        if s.layer != layer:
            s.select_layer(layer)
        if s.layer == layer:
            s.select_unit(*unit, channel=channel)
            self.window_.feature_view.show_channel(channel)

    def _unit_changed(self, selection: Any) -> None:
        if selection is not None and selection.channel is not None:
            self.show_channel(int(selection.channel))
        if self.shown is not None:
            key, result = self.shown
            units = result.channels.get(self.channel, [])[: int(self.view.k_spin.value())]
            self.view.grid.set_selected(self._selected_index(key, units))

    def _selected_index(self, key: _Key, units: list[Any]) -> int | None:
        """The tile of the unit selected in the window (its picture, layer, channel and unit), if shown."""
        s, sel = self.session, self.session.selection
        if sel is None or sel.layer != key.layer or sel.channel != self.channel:
            return None
        for i, unit in enumerate(units):
            at = tuple(unit.unit) if len(unit.unit) == 2 else (0, 0)
            if str(unit.image) == s.image_source and at == tuple(sel.unit):
                return i
        return None

    def _channel_shown(self, channel: Any) -> None:
        if channel is not None:
            self.show_channel(int(channel))

    def show_channel(self, channel: int) -> None:
        """Show ``channel``'s top pictures from the kept result (nothing runs again)."""
        count = self.session.channels()
        if not 0 <= channel < max(count, 1):
            last = f" (0–{count - 1})" if count > 0 else ""
            self._channel_error = True
            self.view.set_error(
                f"Channel {channel} is out of range: the layer has {count} channels{last}."
            )
            return
        if self._channel_error:
            self._channel_error = False
            self.view.set_error(None)
        if channel == self.channel:
            return
        self.channel = channel
        self.view.set_channel(channel)
        self._show()

    # ------------------------------------------------------------------------------------------------------------
    # Drawing

    def _update_header(self) -> None:
        v = self.view
        count = self.session.channels()
        v.set_channels(count)
        if self.channel >= max(count, 1):
            self.channel = 0
        v.set_channel(self.channel)
        if self.folder is None:
            v.set_title("Top pictures: no folder chosen")
            v.title.set_base_tooltip("")
            v.set_counts("Choose a folder of pictures (Folder…)")
            return
        name = Path(self.folder).name or self.folder
        v.set_title(f"Top pictures of {name}")
        v.title.set_base_tooltip(self.folder)

    def _show(self) -> None:
        v = self.view
        shown = self.shown
        v.save_button.setEnabled(shown is not None)
        if shown is None:
            if self.folder is None:
                text = ("Choose a folder of pictures (File › Open Folder…): every picture runs through the "
                        "model and each channel shows the crops where it responds most.")  # fmt: skip
            elif self._running is not None:
                text = "Running the folder…"
            else:
                text = "Run the folder to see the pictures each channel responds to most."
            v.set_counts(" ")
            v.set_tiles([], text)
            return
        key, result = shown
        v.set_counts(*self._counts(key, result))
        units = result.channels.get(self.channel, [])[: int(v.k_spin.value())]
        if not units:
            v.set_tiles([], f"Channel {self.channel} has no units in this result.")
            return
        tiles = [self._tile(key, u) for u in units]
        v.set_tiles(tiles, selected=self._selected_index(key, units))
        missing = [u for u in units if self._crop_key(u) not in self.crops]
        if missing:
            self._cut(missing)

    def _counts(self, key: _Key, result: Any) -> tuple[str, ...]:
        """The line above the grid, longest wording first: pictures read and skipped, the layer, a note."""
        read, skipped = int(result.images), len(result.skipped)
        what = f"{read} picture{'s' * (read != 1)}, {skipped} skipped"
        if key.folder != self.folder:
            what += f" in {Path(key.folder).name or key.folder}"
        whole = "" if result.spatial else " · whole pictures (no spatial map)"
        return (f"{what} · layer {key.layer}{whole}", f"{what}{whole}", what)

    @staticmethod
    def _crop_key(unit: Any) -> tuple[Any, ...]:
        return (str(unit.image), tuple(unit.edges), tuple(unit.image_box or ()))

    def _tile(self, key: _Key, unit: Any) -> dict[str, Any]:
        """What the view needs of one unit's tile (the fields of its Tile; ``pixels``: the crop)."""
        from cnnviz.core.present.captions import box_text

        path = Path(unit.image)
        where = f"unit (y {unit.unit[0]}, x {unit.unit[1]})" if len(unit.unit) == 2 else "its value"
        if unit.field in ("global", "unknown"):
            field = "the whole picture"
        elif unit.image_box is None:
            field = "entirely in the padding around the picture"
        else:
            field = box_text(unit.image_box) + (
                " (hatched: padding beyond the picture)" if unit.padding else ""
            )
        tip = (f"{path}\nlayer {key.layer}, channel {self.channel}, {where}: {unit.value:.5g}\n"
               f"receptive field in the picture: {field}\nClick to open the picture with this unit selected.")  # fmt: skip
        inner, aspect = _inner(unit)
        tile: dict[str, Any] = {"name": path.name, "caption": num(float(unit.value)), "tooltip": tip,
                                "path": str(path), "inner": inner, "aspect": aspect}  # fmt: skip
        cut = self.crops.get(self._crop_key(unit))
        if isinstance(cut, str):
            tile["problem"] = cut
            tile["tooltip"] += f"\n{cut}"
        elif cut is not None:
            tile["pixels"] = cut
        return tile

    def _cut(self, units: list[Any]) -> None:
        items = [(self._crop_key(u), u) for u in units]

        def job(token: CancelToken) -> list[tuple[Any, Any]]:
            from cnnviz.core.present.topunits import picture_crop

            out: list[tuple[Any, Any]] = []
            for key, unit in items:
                token.check()
                try:
                    out.append((key, picture_crop(unit, CROP_SIDE)[0]))
                except Exception as exc:  # noqa: BLE001 - a picture changed or removed since the run
                    out.append((key, describe_error(exc)))
            return out

        def done(cuts: list[tuple[Any, Any]]) -> None:
            for key, cut in cuts:
                self.crops[key] = cut
                self.crops.move_to_end(key)
            while len(self.crops) > KEPT_CROPS:
                self.crops.popitem(last=False)
            self._show()

        self.crop_runner.submit(CROP_JOB, job, on_done=done, label="Cutting the crops")

    # ------------------------------------------------------------------------------------------------------------
    def choose_save(self) -> None:
        """Save…: ask for a folder, then write the shown result's mosaics and JSON there."""
        if self.shown is None:
            return
        start = self.window_.prefs.get("exportDir", str(Path.home()), str)
        folder = QFileDialog.getExistingDirectory(
            self.window_, "Save top pictures into folder", start
        )
        if folder:
            self.window_.prefs.set("exportDir", folder)
            self.save(folder)

    def save(self, folder: str) -> None:
        """Write a PNG mosaic per channel and ``top_units.json`` of the shown result into ``folder`` (in the
        background, with the window's progress and Cancel; nothing half-written stays when cancelled)."""
        if self.shown is None:
            return
        result = self.shown[1]

        def job(token: CancelToken) -> str:
            from cnnviz.core.present.topunits import write_top_units

            def progress(done: int, total: int) -> None:
                if not token.cancelled:
                    token.progress(done, total, f"Saving the mosaics: {done} of {total}")

            write_top_units(result, folder, progress=progress, should_stop=token.is_set)
            return folder

        def done(path: str) -> None:
            self.window_.message(
                f"Wrote the top pictures of layer {result.layer} into {path}", 8000
            )
            self.saved.emit(path)

        self.window_.io_runner.submit(
            SAVE_JOB,
            job,
            on_done=done,
            on_error=lambda exc: self.view.set_error(f"Could not save: {describe_error(exc)}"),
            label="Saving the top pictures",
        )

    def open_tile(self, index: int) -> None:
        """Open the tile's picture with its unit selected in its layer and channel (once the picture is in)."""
        if self.shown is None:
            return
        key, result = self.shown
        units = result.channels.get(self.channel, [])
        if not 0 <= index < len(units):
            return
        unit = units[index]
        path = str(unit.image)
        if key.model != id(self.session.model):
            self.view.set_error(
                "These top pictures belong to another model; Run to compute them for this one."
            )
            return
        y, x = unit.unit if len(unit.unit) == 2 else (0, 0)  # a vector layer's unit is its channel
        self._pending_unit = (path, key.layer, (int(y), int(x)), self.channel)
        self.window_.open_image_path(path)
        self.opened.emit(path)

    def wait(self, timeout_ms: int = 120_000) -> bool:
        """Wait until the run, its model copy and the crops are done and shown (tests, scripts)."""
        from PySide6.QtCore import QCoreApplication, QDeadlineTimer

        deadline = QDeadlineTimer(timeout_ms)
        while True:
            ok = all(r.wait(max(1, deadline.remainingTime())) for r in (self.session.runner, self.window_.io_runner, self.crop_runner))  # fmt: skip
            QCoreApplication.processEvents()
            idle = not (
                self.session.runner.busy or self.window_.io_runner.busy or self.crop_runner.busy
            )
            if not ok or deadline.hasExpired():
                return False
            if idle and not self._timer.isActive():
                return True

    def shutdown(self) -> None:
        self.crop_runner.shutdown()


def install_top_pictures(window: MainWindow, view: QWidget) -> TopPicturesDock:
    """Build the dock around ``view`` (tabbed with the bottom tools, hidden until asked for) on ``window``."""
    dock = TopPicturesDock(window, view)
    window.addDockWidget(Qt.DockWidgetArea.BottomDockWidgetArea, dock)
    window.tabifyDockWidget(window.table_dock, dock)
    dock.hide()
    dock.visibilityChanged.connect(partial(window._tool_dock_shown, dock))
    return dock
