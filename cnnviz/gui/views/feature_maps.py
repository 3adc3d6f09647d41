"""All channels of one layer as a single mosaic texture, with a colour bar/histogram and a hover read-out;
outputs without a spatial map (C×1×1, vectors, logits) as a bar chart instead.

The mosaic is drawn by :func:`cnnviz.core.present.mosaic.feature_mosaic` (the same code that exports PNGs) and shown as
ONE ``ImageItem``, so a layer with 2048 channels costs one texture upload, not 2048 items. Mosaic coordinates are
pixels: unit ``(y, x)`` of a channel whose tile starts at ``(oy, ox)`` covers ``[ox + x, ox + x + 1) x
[oy + y, oy + y + 1)``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QPointF, QRectF, Qt, QTimer, Signal
from PySide6.QtGui import QColor, QPainterPath, QPen
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QGraphicsPathItem,
    QGraphicsRectItem,
    QHBoxLayout,
    QMenu,
    QSizePolicy,
    QSpinBox,
    QStackedWidget,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from cnnviz.core.present.colormaps import apply_colormap
from cnnviz.core.present.figures import HIGHLIGHT as HIGHLIGHT_RGBA
from cnnviz.core.present.mosaic import FeatureMosaic, feature_mosaic, to_maps
from cnnviz.core.present.vectors import ORDERS, vector_values
from cnnviz.core.present.view import (
    COLORMAPS,
    NORMALIZATIONS,
    ViewState,
    layer_caption,
    layer_label,
)
from cnnviz.core.text import shape as shape_text
from cnnviz.gui.views.elided import ElidedLabel
from cnnviz.gui.views.vector_plot import VISIBLE_ROWS, VectorPlot
from cnnviz.gui.workers import JobRunner

__all__ = ["FeatureMapView"]

BACKGROUND = (38, 38, 38, 255)
HIGHLIGHT = QColor(*HIGHLIGHT_RGBA)
HINT = "Click a unit: its receptive field · double-click: enlarge the channel · arrow keys: move the unit"
HINTS = (HINT, "Click: receptive field · double-click: enlarge · arrows: move", "Click a unit")
VECTOR_HINT = "Hover a bar: its value · click: select it · wheel: scroll · Ctrl+wheel: zoom"
VECTOR_HINTS = (VECTOR_HINT, "Hover a bar: its value · wheel: scroll", "Hover a bar")
_NORM_LABELS = {"channel": "Per channel", "layer": "Per layer"}


def _cosmetic(color: QColor, width: float) -> QPen:
    pen = QPen(color, width)
    pen.setCosmetic(True)
    return pen


class _Canvas(pg.GraphicsLayoutWidget):
    """The mosaic's graphics view: arrow keys move the unit, Escape goes back to all channels."""

    keyMove = Signal(int, int)
    escape = Signal()
    painted = Signal()

    _MOVES = {
        Qt.Key.Key_Left: (0, -1),
        Qt.Key.Key_Right: (0, 1),
        Qt.Key.Key_Up: (-1, 0),
        Qt.Key.Key_Down: (1, 0),
    }

    def keyPressEvent(self, ev: Any) -> None:  # noqa: N802 - Qt override
        move = self._MOVES.get(ev.key())
        if move is not None:
            step = 5 if ev.modifiers() & Qt.KeyboardModifier.ShiftModifier else 1
            self.keyMove.emit(move[0] * step, move[1] * step)
            ev.accept()
            return
        if ev.key() == Qt.Key.Key_Escape:
            self.escape.emit()
            ev.accept()
            return
        super().keyPressEvent(ev)

    def paintEvent(self, ev: Any) -> None:  # noqa: N802 - Qt override
        super().paintEvent(ev)
        self.painted.emit()


def _make_mosaic(
    act: np.ndarray, cmap: str, norm: str, sort: bool, channel: int | None, aspect: float
) -> Any:
    return feature_mosaic(
        act, cmap=cmap, norm=norm, sort=sort, channel=channel, background=BACKGROUND, aspect=aspect
    )


class FeatureMapView(QWidget):
    """Feature maps of the selected layer. Emits ``unitClicked(channel, y, x)`` and ``unitMoved(dy, dx)``."""

    ASYNC_VALUES = 300_000  # layers with more values are drawn off the GUI thread
    HIST_SAMPLE = 65_536  # the histogram of larger layers uses an evenly strided sample

    unitClicked = Signal(int, int, int)
    unitMoved = Signal(int, int)
    channelShown = Signal(object)
    settingsChanged = Signal()
    exportRequested = Signal(str)
    painted = Signal()

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.layer: str | None = None
        self.row: Any = None
        self.activation: np.ndarray | None = None
        self.mosaic: FeatureMosaic | None = None
        self.selection: Any = None
        self.channel: int | None = None
        self.cmap = "viridis"
        self.norm = "channel"
        self.sorted = False
        self._pending_paint = False
        self._aspect = 1.0
        # Names of the values of a vector output (the class labels of the last layer).
        self.value_labels: list[str] | None = None
        self.mosaic_layer: str | None = None  # the layer the shown mosaic belongs to
        self._render_serial = 0
        self._render_runner = JobRunner(self, threads=1)
        self._hist_key: Any = None

        self.vector: np.ndarray | None = None  # the values of an output without a spatial map
        self._hover_pos: Any = (
            None  # the last mouse position over the maps, to refresh the read-out
        )
        self.title = ElidedLabel("No layer selected", bold=True)

        self.cmap_box = QComboBox()
        self.cmap_box.addItems(list(COLORMAPS))
        self.cmap_box.setToolTip("Colormap (coolwarm is centred on zero)")
        self.cmap_box.currentTextChanged.connect(self.set_cmap)
        self.norm_box = QComboBox()
        for key, text in _NORM_LABELS.items():
            self.norm_box.addItem(text, key)
        self.norm_box.setToolTip(
            "Per channel: every map uses the full colour range (shows patterns in weak channels).\n"
            "Per layer: one range for all maps (shows which channels are strongest)."
        )
        self.norm_box.currentIndexChanged.connect(
            lambda _i: self.set_norm(self.norm_box.currentData())
        )
        self.sort_box = QCheckBox("Sort by mean")
        self.sort_box.setToolTip("Order the maps by mean activation, highest first")
        self.sort_box.toggled.connect(self.set_sorted)
        self.channel_spin = QSpinBox()
        self.channel_spin.setMinimum(-1)
        self.channel_spin.setSpecialValueText("all")
        self.channel_spin.setPrefix("ch ")
        self.channel_spin.setValue(-1)
        self.channel_spin.setToolTip("Show one channel enlarged (or all channels)")
        self.channel_spin.valueChanged.connect(lambda v: self.show_channel(None if v < 0 else v))
        self.back_button = QToolButton()
        self.back_button.setText("All channels")
        self.back_button.setToolTip("Back to the grid of all channels (Esc)")
        self.back_button.clicked.connect(lambda: self.show_channel(None))
        self.back_button.setVisible(False)
        self.order_box = QComboBox()
        for key, text in ORDERS.items():
            self.order_box.addItem(text, key)
        self.order_box.setToolTip("Order of the bars")
        self._order_chosen = False  # until the user picks an order, long vectors open largest first
        self.order_box.activated.connect(lambda _i: setattr(self, "_order_chosen", True))
        self.order_box.currentIndexChanged.connect(
            lambda _i: self.bars.set_order(self.order_box.currentData())
        )
        self.order_box.setVisible(False)

        self.graphics = _Canvas()
        self.graphics.setBackground(QColor(*BACKGROUND))
        self.graphics.ci.setContentsMargins(2, 2, 2, 2)
        self.graphics.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.vb = self.graphics.addViewBox(lockAspect=True, invertY=True, enableMenu=False)
        self.image_item = pg.ImageItem()
        self.vb.addItem(self.image_item)
        self.others_item = QGraphicsPathItem()
        self.others_item.setPen(
            _cosmetic(QColor(HIGHLIGHT.red(), HIGHLIGHT.green(), HIGHLIGHT.blue(), 170), 1)
        )
        self.others_item.setZValue(5)
        self.chosen_item = QGraphicsRectItem()
        self.chosen_item.setPen(_cosmetic(HIGHLIGHT, 3))
        self.chosen_item.setZValue(6)
        self.tile_item = QGraphicsRectItem()
        self.tile_item.setPen(_cosmetic(QColor(255, 255, 255, 200), 1.5))
        self.tile_item.setZValue(4)
        for item in (self.others_item, self.chosen_item, self.tile_item):
            self.vb.addItem(item)
            item.setVisible(False)
        self.graphics.scene().sigMouseMoved.connect(self.readout_at)
        self.graphics.scene().sigMouseClicked.connect(self._clicked)
        self.graphics.keyMove.connect(self.unitMoved)
        self.graphics.escape.connect(lambda: self.show_channel(None))
        self.graphics.painted.connect(self._after_paint)
        self.bars: VectorPlot = VectorPlot()
        self.bars.setBackground(QColor(*BACKGROUND))
        self.bars.hovered.connect(self._bar_hovered)
        self.bars.clicked.connect(lambda index: self.unitClicked.emit(index, 0, 0))
        self.bars.scene().sigMouseClicked.connect(self._bars_clicked)
        self.bars.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.stack = QStackedWidget()
        self.stack.addWidget(self.graphics)
        self.stack.addWidget(self.bars)

        self.hist = pg.PlotWidget()
        self.hist.setBackground(None)
        self.hist.setFixedHeight(96)
        self.hist.setMenuEnabled(False)
        self.hist.setMouseEnabled(x=False, y=False)
        self.hist.hideButtons()
        self.hist.getPlotItem().hideAxis("left")
        self.hist.getPlotItem().getAxis("bottom").setHeight(22)
        self.hist.setToolTip(
            "Distribution of the values (log counts) and the colour scale they map to"
        )
        self.hist_curve = pg.PlotDataItem(
            stepMode="center", fillLevel=0, brush=(150, 150, 150, 120), pen=(110, 110, 110)
        )
        self.hist.addItem(self.hist_curve)
        self.bar_item = pg.ImageItem()
        self.hist.addItem(self.bar_item)
        self.hist_label = ElidedLabel(" ")
        self.readout = ElidedLabel()
        self.readout.set_texts(*HINTS)
        self.subtitle = ElidedLabel(" ")
        self.channel_spin.setMaximumWidth(96)
        head = QHBoxLayout()
        head.setContentsMargins(6, 4, 6, 0)
        # The shape and channel count share the title's line: beside the controls they had no room.
        for label in (self.title, self.subtitle):
            label.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Preferred)
        head.addWidget(self.title)
        head.addSpacing(8)
        head.addWidget(self.subtitle)
        head.addStretch(1)
        head.addWidget(self.back_button)
        controls = QHBoxLayout()
        controls.setContentsMargins(6, 0, 6, 0)
        controls.addStretch(1)
        controls.addWidget(self.channel_spin)
        controls.addWidget(self.order_box)
        controls.addWidget(self.sort_box)
        controls.addWidget(self.norm_box)
        controls.addWidget(self.cmap_box)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(2)
        layout.addLayout(head)
        layout.addLayout(controls)
        layout.addWidget(self.stack, 1)
        layout.addWidget(self.readout)
        layout.addWidget(self.hist)
        layout.addWidget(self.hist_label)
        for label in (self.readout, self.hist_label):
            label.setContentsMargins(6, 0, 6, 0)

        self._relayout_timer = QTimer(self)
        self._relayout_timer.setSingleShot(True)
        self._relayout_timer.setInterval(150)
        self._relayout_timer.timeout.connect(self._maybe_relayout)
        self.graphics.installEventFilter(self)

    # -- settings ------------------------------------------------------------------------------------------------
    def set_cmap(self, name: str) -> None:
        if name not in COLORMAPS or name == self.cmap:
            return
        self.cmap = name
        self._sync_controls()
        self._render(keep_range=True)
        self.settingsChanged.emit()

    def set_norm(self, mode: str) -> None:
        if mode not in NORMALIZATIONS or mode == self.norm:
            return
        self.norm = mode
        self._sync_controls()
        self._render(keep_range=True)
        self.settingsChanged.emit()

    def set_sorted(self, on: bool) -> None:
        on = bool(on)
        if on == self.sorted:
            return
        self.sorted = on
        self._sync_controls()
        self._render(keep_range=True)
        self.settingsChanged.emit()

    def show_channel(self, channel: int | None) -> None:
        """Enlarge one channel (None: back to all channels)."""
        if channel is not None:
            count = self._channels()
            if not 0 <= channel < count:
                return
        if channel == self.channel:
            return
        self.channel = channel
        self._sync_controls()
        self._render()
        self.channelShown.emit(channel)

    def view_state(self) -> ViewState:
        """What the view shows now (layer, channel, colormap, normalisation, order) as a checked ViewState."""
        channel = (
            int(self.channel) if self.channel is not None else None
        )  # clicks may give NumPy ints
        return ViewState(
            layer=self.layer,
            channel=channel,
            cmap=self.cmap,
            norm=self.norm,
            sort=bool(self.sorted),
        )

    def _sync_controls(self) -> None:
        for widget, setter in (
            (self.cmap_box, lambda: self.cmap_box.setCurrentText(self.cmap)),
            (
                self.norm_box,
                lambda: self.norm_box.setCurrentIndex(list(_NORM_LABELS).index(self.norm)),
            ),
            (self.sort_box, lambda: self.sort_box.setChecked(self.sorted)),
            (
                self.channel_spin,
                lambda: self.channel_spin.setValue(-1 if self.channel is None else self.channel),
            ),
        ):
            widget.blockSignals(True)
            setter()
            widget.blockSignals(False)
        self.back_button.setVisible(self.channel is not None)

    def _channels(self) -> int:
        if self.activation is None:
            return 0
        return to_maps(self.activation).shape[0]

    # -- data ----------------------------------------------------------------------------------------------------
    def set_layer(self, name: str | None, activation: np.ndarray | None, row: Any = None) -> None:
        """Show ``activation`` (a layer output, batch axis included) of layer ``name``."""
        same_layer = name == self.layer
        self.layer = name
        self.row = row
        self.activation = activation
        if not same_layer:
            self.channel = None
        count = self._channels()
        if self.channel is not None and self.channel >= count:
            self.channel = None
        self.channel_spin.blockSignals(True)
        self.channel_spin.setMaximum(max(count - 1, -1))
        self.channel_spin.blockSignals(False)
        self.vector = vector = vector_values(activation)
        is_vector = vector is not None
        if vector is not None:
            self.channel = None
            if not self._order_chosen:
                order = "largest" if vector.size > VISIBLE_ROWS else "index"
                self.order_box.blockSignals(True)
                self.order_box.setCurrentIndex(self.order_box.findData(order))
                self.order_box.blockSignals(False)
                self.bars.order_mode = order
            self.bars.set_values(vector, self.value_labels, keep_range=same_layer)
        self.stack.setCurrentWidget(self.bars if is_vector else self.graphics)
        for widget in (self.channel_spin, self.sort_box, self.norm_box, self.cmap_box, self.hist):
            widget.setVisible(not is_vector)
        self.order_box.setVisible(is_vector)
        self._sync_controls()
        self._render(keep_range=same_layer)

    def set_selection(self, selection: Any) -> None:
        """Highlight a UnitSelection's unit (None clears)."""
        self.selection = selection
        self._update_highlight()

    def _render(self, keep_range: bool = False) -> None:
        act = self.activation
        self._render_serial += 1
        serial = self._render_serial
        if act is None:
            self._render_runner.cancel("mosaic")
            self.mosaic = None
            self.mosaic_layer = None
            self.image_item.clear()
            self.title.setText(
                f"{self.layer}: no output captured" if self.layer else "No layer selected"
            )
            self.subtitle.setText(" ")
            self.vector = None
            self._update_highlight()
            self.hist_curve.setData([], [])
            self.bar_item.clear()
            self.hist_label.setText(" ")
            self._refresh_readout()
            return
        self._aspect = self._view_aspect()
        args = (act, self.cmap, self.norm, self.sorted, self.channel, self._aspect)
        layer = self.layer
        if act.size > self.ASYNC_VALUES and self.channel is None:
            # Big layers (e.g. 64x112x112) are drawn on a helper thread so the window stays responsive.
            self._render_runner.submit(
                "mosaic",
                lambda _token: _make_mosaic(*args),
                on_done=lambda mosaic: self._show_mosaic(mosaic, layer, keep_range, serial),
                label="Drawing feature maps",
            )
            return
        self._render_runner.cancel("mosaic")
        self._show_mosaic(_make_mosaic(*args), layer, keep_range, serial)

    def _show_mosaic(
        self, mosaic: FeatureMosaic, layer: str | None, keep_range: bool, serial: int
    ) -> None:
        if serial != self._render_serial:
            return  # a newer request was made meanwhile
        old = self.mosaic.layout if self.mosaic is not None else None
        self.mosaic = mosaic
        self.mosaic_layer = layer
        self.image_item.setImage(mosaic.rgba, autoLevels=False, levels=(0, 255))
        layout = mosaic.layout
        dims_changed = old is None or (old.height, old.width) != (layout.height, layout.width)
        if dims_changed or not keep_range:
            self.vb.setRange(QRectF(0, 0, layout.width, layout.height), padding=0.01)
        self._update_title()
        self._update_highlight()
        self._refresh_readout()
        self._pending_paint = True

    def wait_rendered(self, timeout_ms: int = 30000) -> bool:
        """Block until a mosaic drawn in the background is shown (tests, benchmarks)."""
        return self._render_runner.wait(timeout_ms)

    def _update_title(self) -> None:
        maps = self.mosaic.maps if self.mosaic is not None else None
        if maps is None:
            return
        shape = shape_text(self.activation.shape if self.activation is not None else None)
        c = maps.shape[0]
        if self.channel is not None:
            what = f"channel {self.channel} of {c}"
        elif self.vector is not None:
            what = "one bar per value" + (", labelled by class" if self.bars.labels else "")
        else:
            what = f"{c} channels"
        name = self.layer or ""
        label = layer_label(name, self.row)
        caption = layer_caption(self.row)
        if label == name and caption:
            label = f"{name} ({caption})"
        self.title.setText(label)
        self.subtitle.set_texts(f"output {shape}   ·   {what}", f"{shape} · {what}", shape)

    def _update_histogram(self) -> None:
        mosaic = self.mosaic
        if mosaic is None:
            return
        chosen = (
            self.channel if self.channel is not None else getattr(self.selection, "channel", None)
        )
        if chosen is not None and not (0 <= chosen < mosaic.maps.shape[0]):
            chosen = None
        key = (id(mosaic), chosen, self.cmap, self.norm)
        if key == self._hist_key:
            return
        self._hist_key = key
        values = mosaic.maps[chosen] if chosen is not None else mosaic.maps
        flat = values.reshape(-1)
        if flat.size > self.HIST_SAMPLE:
            flat = flat[:: flat.size // self.HIST_SAMPLE + 1]
        finite = np.isfinite(flat)
        if not finite.all():
            flat = flat[finite]
            values = values[np.isfinite(values)]
        if flat.size == 0:
            self.hist_curve.setData([], [])
            self.bar_item.clear()
            return
        vmin, vmax = float(values.min()), float(values.max())
        if self.norm == "layer" or chosen is not None or mosaic.maps.shape[0] == 1:
            ch = chosen if chosen is not None else 0
            lo, hi = float(mosaic.lo[ch]), float(mosaic.hi[ch])
        else:
            lo, hi = vmin, vmax
        left, right = min(lo, vmin), max(hi, vmax)
        if right <= left:
            right = left + 1.0
        counts, edges = np.histogram(flat, bins=64, range=(left, right))
        heights = np.log1p(counts)
        self.hist_curve.setData(edges, heights)
        top = float(heights.max()) or 1.0
        bar = apply_colormap(np.linspace(0, 1, 256, dtype=np.float32)[None, :], self.cmap)
        self.bar_item.setImage(bar, autoLevels=False, levels=(0, 255))
        self.bar_item.setRect(QRectF(lo, -0.28 * top, max(hi - lo, 1e-12), 0.22 * top))
        self.hist.setXRange(left, right, padding=0.02)
        self.hist.setYRange(-0.3 * top, top, padding=0.02)
        if self.vector is not None:
            # The bars share one axis whatever the colour normalisation says: no colour scale to describe.
            self.bar_item.clear()
            self._vector_stats()
            return
        if self.norm == "channel" and chosen is None and mosaic.maps.shape[0] > 1:
            # No single scale fits every map: show no colour bar under the values, say so instead.
            self.bar_item.clear()
            self.hist_label.set_texts(
                f"values {vmin:.4g} .. {vmax:.4g}   colour scale: per channel, each map from its own "
                "minimum (dark) to its own maximum (bright)",
                f"values {vmin:.4g} .. {vmax:.4g}   colour: per channel (own min..max)",
            )
            return
        else:
            scope = f"channel {chosen}" if chosen is not None else "whole layer"
            text = (
                f"values {vmin:.4g} .. {vmax:.4g}   ({scope})   colour scale {lo:.4g} .. {hi:.4g}"
            )
        self.hist_label.set_texts(text)

    def _update_highlight(self) -> None:
        sel = self.selection
        mosaic = self.mosaic
        if self.vector is not None:
            on_layer = sel is not None and sel.layer == self.layer
            self.bars.set_selected(sel.channel if on_layer else None)
            self._vector_stats()
        items = (self.others_item, self.chosen_item, self.tile_item)
        if (
            sel is None
            or mosaic is None
            or sel.layer != self.layer
            or self.mosaic_layer != self.layer
        ):
            for item in items:
                item.setVisible(False)
            self._update_histogram()
            return
        layout = mosaic.layout
        y, x = sel.unit
        h, w = layout.tile_h, layout.tile_w
        if not (0 <= y < h and 0 <= x < w):
            # Non-spatial layers: the "unit" is a value index; mark its square.
            index = y * w + x if h * w > 1 else None
            for item in items:
                item.setVisible(False)
            if index is None and sel.channel is not None and self.channel is None:
                oy, ox = layout.tile_origin(sel.channel)
                self.chosen_item.setRect(QRectF(ox, oy, w, h))
                self.chosen_item.setVisible(True)
            self._update_histogram()
            return
        visible = [self.channel] if self.channel is not None else list(layout.order)
        path = QPainterPath()
        if len(visible) > 1:
            for ch in visible:
                y0, x0, y1, x1 = layout.unit_rect(ch, y, x)
                path.addRect(QRectF(x0, y0, 1, 1))
        self.others_item.setPath(path)
        self.others_item.setVisible(len(visible) > 1)
        chosen = self.channel if self.channel is not None else sel.channel
        if chosen is not None and 0 <= chosen < layout.channels:
            y0, x0, _y1, _x1 = layout.unit_rect(chosen, y, x)
            self.chosen_item.setRect(QRectF(x0, y0, 1, 1))
            self.chosen_item.setVisible(True)
            if self.channel is None:
                oy, ox = layout.tile_origin(chosen)
                self.tile_item.setRect(QRectF(ox, oy, w, h))
                self.tile_item.setVisible(True)
            else:
                self.tile_item.setVisible(False)
        else:
            self.chosen_item.setVisible(False)
            self.tile_item.setVisible(False)
        self._update_histogram()

    # -- geometry helpers (tests, benchmarks) --------------------------------------------------------------------
    def unit_center(self, channel: int, y: int, x: int) -> QPointF:
        """Centre of a unit in mosaic (view) coordinates."""
        assert self.mosaic is not None
        y0, x0, _y1, _x1 = self.mosaic.layout.unit_rect(channel, y, x)
        return QPointF(x0 + 0.5, y0 + 0.5)

    def widget_point(self, channel: int, y: int, x: int) -> Any:
        """Where unit (channel, y, x) is on screen, in the coordinates of ``self.graphics`` (for clicks)."""
        scene = self.vb.mapViewToScene(self.unit_center(channel, y, x))
        return self.graphics.mapFromScene(scene)

    def chosen_rect(self) -> tuple[float, float, float, float] | None:
        """The highlighted unit of the chosen channel as (y0, x0, y1, x1) mosaic edges, or None."""
        if not self.chosen_item.isVisible():
            return None
        r = self.chosen_item.rect()
        return (r.top(), r.left(), r.bottom(), r.right())

    # -- events --------------------------------------------------------------------------------------------------
    def _view_aspect(self) -> float:
        w, h = self.graphics.width(), self.graphics.height()
        return w / h if w > 50 and h > 50 else 1.0

    def eventFilter(self, obj: Any, ev: Any) -> bool:  # noqa: N802 - Qt override
        if obj is self.graphics and ev.type() == ev.Type.Resize:
            self._relayout_timer.start()
        return False

    def _maybe_relayout(self) -> None:
        aspect = self._view_aspect()
        if (
            self.mosaic is not None
            and self.channel is None
            and abs(np.log(aspect / self._aspect)) > 0.3
        ):
            self._render()

    def _after_paint(self) -> None:
        if self._pending_paint:
            self._pending_paint = False
            self.painted.emit()

    def _locate(self, scene_pos: Any) -> tuple[int, int, int] | None:
        if (
            self.mosaic is None
            or self.mosaic_layer != self.layer
            or not self.vb.sceneBoundingRect().contains(scene_pos)
        ):
            return None
        p = self.vb.mapSceneToView(scene_pos)
        return self.mosaic.layout.locate(p.y(), p.x())

    def _vector_stats(self) -> None:
        v = self.vector
        if v is None or v.size == 0:
            return
        finite = v[np.isfinite(v)]
        if finite.size == 0:
            self.hist_label.set_texts("no finite values")
            return
        top = int(np.nanargmax(np.where(np.isfinite(v), v, -np.inf)))
        name = self.bars.row_name(top)
        self.hist_label.set_texts(
            f"{v.size} values from {finite.min():.4g} to {finite.max():.4g}, mean {finite.mean():.4g};"
            f" largest: {name} ({v[top]:.4g})",
            f"{v.size} values, {finite.min():.4g} .. {finite.max():.4g}",
        )

    def _bar_hovered(self, index: int) -> None:
        v = self.vector
        if index < 0 or v is None or index >= v.size:
            self.readout.set_texts(*VECTOR_HINTS)
            self.bars.setToolTip("")
            return
        name = self.bars.label(index)
        label = f"   ({name})" if name is not None else ""
        rank = int(np.sum(v > v[index])) + 1
        self.readout.set_texts(
            f"index {index}   value {v[index]:.5g}{label}   rank {rank} of {v.size}",
            f"index {index}   value {v[index]:.5g}{label}",
        )
        # Also beside the pointer: the read-out line is far from a bar at the top of a tall chart.
        self.bars.setToolTip(
            f"{self.bars.row_name(index)}: {v[index]:.5g} (rank {rank} of {v.size})"
        )

    def _refresh_readout(self) -> None:
        """Read the mouse position again after the layer changed: an old read-out must not outlive its map."""
        if self.vector is not None:
            self.readout.set_texts(*VECTOR_HINTS)
            return
        if self._hover_pos is not None and self.graphics.underMouse():
            self.readout_at(self._hover_pos)
        else:
            self.readout.set_texts(*HINTS)

    def readout_at(self, scene_pos: Any) -> None:
        """Show the channel, unit and value under ``scene_pos`` (the mouse) in the read-out line."""
        self._hover_pos = scene_pos
        hit = self._locate(scene_pos)
        if hit is None or self.mosaic is None:
            self.readout.set_texts(*HINTS)
            return
        ch, y, x = hit
        value = float(self.mosaic.maps[ch, y, x])
        maps = self.mosaic.maps
        if maps.shape[1] * maps.shape[2] == 1:
            labels = self.value_labels
            label = labels[ch] if labels is not None and ch < len(labels) else None
            self.readout.setText(
                f"index {ch}   value {value:.5g}" + (f"   ({label})" if label else "")
            )
            return
        mean = float(np.mean(maps[ch]))
        self.readout.setText(
            f"channel {ch}   y {y}   x {x}   value {value:.5g}   (channel mean {mean:.4g})"
        )

    def _clicked(self, ev: Any) -> None:
        if ev.button() == Qt.MouseButton.RightButton:
            self._context_menu(ev)
            return
        if ev.button() != Qt.MouseButton.LeftButton:
            return
        hit = self._locate(ev.scenePos())
        self.graphics.setFocus()
        if hit is None:
            return
        ch, y, x = hit
        if ev.double():
            self.show_channel(ch if self.channel is None else None)
            return
        self.unitClicked.emit(ch, y, x)

    def _bars_clicked(self, ev: Any) -> None:
        if ev.button() != Qt.MouseButton.RightButton:
            return
        menu = QMenu(self)
        menu.addAction("Export feature maps as PNG…", lambda: self.exportRequested.emit("grid_png"))
        menu.addAction("Export feature maps as SVG…", lambda: self.exportRequested.emit("grid_svg"))
        menu.addSeparator()
        menu.addAction(
            "Reset zoom", lambda: self.bars.set_values(self.bars.values, self.bars.labels)
        )
        menu.popup(ev.screenPos().toPoint())

    def _context_menu(self, ev: Any) -> None:
        hit = self._locate(ev.scenePos())
        menu = QMenu(self)
        if hit is not None and self.channel is None:
            ch = hit[0]
            menu.addAction(f"Enlarge channel {ch}", lambda: self.show_channel(ch))
        if self.channel is not None:
            menu.addAction("Show all channels", lambda: self.show_channel(None))
        menu.addSeparator()
        menu.addAction("Export feature maps as PNG…", lambda: self.exportRequested.emit("grid_png"))
        menu.addAction("Export feature maps as SVG…", lambda: self.exportRequested.emit("grid_svg"))
        if self.channel is not None or (
            self.selection is not None and self.selection.channel is not None
        ):
            menu.addAction(
                "Export enlarged channel as PNG…", lambda: self.exportRequested.emit("channel_png")
            )
        menu.addAction("Reset zoom", lambda: self._render())
        menu.popup(ev.screenPos().toPoint())
