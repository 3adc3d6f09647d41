"""The input picture with the selected unit's receptive field drawn on it.

Coordinates of the view are original-picture pixel edges (pixel ``(i, j)`` covers ``[j, j+1) x [i, i+1)``), so
boxes computed on the model input are mapped through the preprocessing (resize, crop, letterbox) with the image's
:class:`~cnnviz.core.images.ImageGeometry` and land on the right place of the picture the user opened. In "model
input" mode the view shows what the network receives instead, in model-input pixels.
"""

from __future__ import annotations

from functools import partial
from typing import Any

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QPointF, QRectF, Qt, Signal
from PySide6.QtGui import QBrush, QColor, QImage, QPainterPath, QPen, QPixmap
from PySide6.QtWidgets import (
    QBoxLayout,
    QComboBox,
    QGraphicsPathItem,
    QGraphicsRectItem,
    QHBoxLayout,
    QLabel,
    QMenu,
    QVBoxLayout,
    QWidget,
)

from cnnviz.core.present.colormaps import apply_colormap, heatmap_rgba
from cnnviz.core.present.figures import RF_COLOR
from cnnviz.core.present.view import Edges, padding_region
from cnnviz.gui.views.elided import ElidedLabel

RF_QCOLOR = QColor(*RF_COLOR)
BACKGROUND = "#262626"
ERF_CMAP = "inferno"

__all__ = ["InputView"]


def _cosmetic(color: QColor, width: float, style: Qt.PenStyle = Qt.PenStyle.SolidLine) -> QPen:
    pen = QPen(color, width)
    pen.setCosmetic(True)
    pen.setStyle(style)
    return pen


def _rect(edges: tuple[float, float, float, float]) -> QRectF:
    y0, x0, y1, x1 = edges
    return QRectF(x0, y0, x1 - x0, y1 - y0)


class InputView(QWidget):
    """Shows a :class:`~cnnviz.core.images.LoadedImage` and a :class:`~cnnviz.gui.state.UnitSelection`.

    ``pointClicked(y, x)`` reports a click on the picture in model-input pixel coordinates.
    """

    pointClicked = Signal(float, float)
    modeChanged = Signal(str)
    exportRequested = Signal(str)  # "rf_png" or "rf_svg"

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.loaded: Any = None
        self.selection: Any = None
        self.erf: Any = None
        self.mode = "original"
        self._geometry: Any = None  # model input -> view coordinates
        self._display_geometry: Any = None  # shown array -> view coordinates
        self._shown: np.ndarray | None = None
        self._bounds = (0.0, 0.0, 0.0, 0.0)  # picture edges in view coordinates
        self._content: Edges = (0.0, 0.0, 0.0, 0.0)  # where the model input holds picture pixels
        self._padding: list[Edges] = []  # the hatched rectangles, in view coordinates

        self.title = ElidedLabel("No picture", bold=True)
        self.mode_box = QComboBox()
        self.mode_box.addItem("Original picture", "original")
        self.mode_box.addItem("Model input", "model")
        self.mode_box.setToolTip(
            "Original picture: the file as you opened it, boxes mapped back through the preprocessing.\n"
            "Model input: the resized, cropped and normalised picture the network actually receives."
        )
        self.mode_box.currentIndexChanged.connect(
            lambda _i: self.set_mode(self.mode_box.currentData())
        )

        self.graphics = pg.GraphicsLayoutWidget()
        self.graphics.setBackground(BACKGROUND)
        self.graphics.ci.setContentsMargins(2, 2, 2, 2)
        self.vb = self.graphics.addViewBox(lockAspect=True, invertY=True, enableMenu=False)
        self.image_item = pg.ImageItem()
        self.vb.addItem(self.image_item)
        self.erf_item = pg.ImageItem()
        self.erf_item.setZValue(5)
        self.vb.addItem(self.erf_item)

        self.area_item = QGraphicsRectItem()
        self.area_item.setPen(_cosmetic(QColor(235, 235, 235, 200), 1, Qt.PenStyle.DotLine))
        self.area_item.setZValue(6)
        self.area_item.setToolTip("The part of the picture the model sees")
        self.padding_item = QGraphicsPathItem()
        self.padding_item.setPen(QPen(Qt.PenStyle.NoPen))
        hatch = QBrush(
            QColor(RF_QCOLOR.red(), RF_QCOLOR.green(), RF_QCOLOR.blue(), 150),
            Qt.BrushStyle.BDiagPattern,
        )
        self.padding_item.setBrush(hatch)
        self.padding_item.setZValue(7)
        self.padding_item.setToolTip(
            "Part of the receptive field that lies in padding: outside the model input, or in its "
            "letterbox border"
        )
        self.box_item = QGraphicsRectItem()
        self.box_item.setPen(_cosmetic(RF_QCOLOR, 2, Qt.PenStyle.DashLine))
        self.box_item.setZValue(8)
        self.box_item.setToolTip("Theoretical receptive field (size r, stride S, padding P)")
        self.inside_item = QGraphicsRectItem()
        self.inside_item.setPen(_cosmetic(RF_QCOLOR, 2.5))
        self.inside_item.setBrush(QColor(RF_QCOLOR.red(), RF_QCOLOR.green(), RF_QCOLOR.blue(), 40))
        self.inside_item.setZValue(9)
        self.inside_item.setToolTip("Part of the receptive field inside the picture")
        self.centre_item = QGraphicsPathItem()
        self.centre_item.setPen(_cosmetic(RF_QCOLOR, 2))
        self.centre_item.setZValue(10)
        for item in (
            self.area_item,
            self.padding_item,
            self.box_item,
            self.inside_item,
            self.centre_item,
        ):
            self.vb.addItem(item)
            item.setVisible(False)

        self.readout = ElidedLabel(" ")
        self.graphics.scene().sigMouseMoved.connect(self._hover)
        self.graphics.scene().sigMouseClicked.connect(self._clicked)
        self.vb.sigRangeChanged.connect(lambda *_a: self._draw_padding())

        self.subtitle = ElidedLabel(" ")
        # The effective field's colour scale: what it shows (one channel or all summed) and its range.
        self.erf_caption = ElidedLabel(" ")
        self.erf_bar = QLabel()
        self.erf_bar.setFixedSize(90, 10)
        ramp = np.ascontiguousarray(
            np.repeat(
                apply_colormap(np.linspace(0, 1, 90, dtype=np.float32)[None, :], ERF_CMAP),
                10,
                axis=0,
            )
        )
        image = QImage(ramp.data, 90, 10, 90 * 4, QImage.Format.Format_RGBA8888).copy()
        self.erf_bar.setPixmap(QPixmap.fromImage(image))
        self.erf_bar.setToolTip(
            "Colour scale of the effective receptive field: 0 (clear) to the largest gradient"
        )
        self.erf_low = QLabel("0")
        self.erf_high = QLabel("")
        self.erf_legend = QWidget()
        legend = QHBoxLayout(self.erf_legend)
        legend.setContentsMargins(6, 0, 6, 0)
        legend.setSpacing(4)
        legend.addWidget(self.erf_caption, 1)
        legend.addWidget(self.erf_low)
        legend.addWidget(self.erf_bar)
        legend.addWidget(self.erf_high)
        self.erf_legend.setVisible(False)
        head = QVBoxLayout()
        head.setContentsMargins(6, 4, 6, 0)
        head.setSpacing(2)
        # The name gets a line of its own: beside the mode box a narrow view would leave it no room.
        head.addWidget(self.title)
        self._head_row = row = QBoxLayout(QBoxLayout.Direction.LeftToRight)
        row.addWidget(self.subtitle, 1)
        row.addWidget(self.mode_box)
        head.addLayout(row)
        box = QVBoxLayout(self)
        box.setContentsMargins(0, 0, 0, 0)
        box.setSpacing(2)
        box.addLayout(head)
        box.addWidget(self.graphics, 1)
        box.addWidget(self.erf_legend)
        box.addWidget(self.readout)
        self.readout.setContentsMargins(6, 0, 6, 2)

    def resizeEvent(self, ev: Any) -> None:  # noqa: N802 - Qt override
        super().resizeEvent(ev)
        # A narrow view puts the mode box under the sizes instead of squeezing them out.
        narrow = self.width() < self.mode_box.sizeHint().width() * 2 + 40
        direction = QBoxLayout.Direction.TopToBottom if narrow else QBoxLayout.Direction.LeftToRight
        if self._head_row.direction() != direction:
            self._head_row.setDirection(direction)

    # -- input ---------------------------------------------------------------------------------------------------

    @property
    def shown_image(self) -> np.ndarray | None:
        """The picture drawn now (original or model input, RGB uint8), or None before the first."""
        return self._shown

    def set_image(self, loaded: Any, name: str | None = None) -> None:
        """Show a LoadedImage (keeps the unit overlay; call set_selection to update it)."""
        key = (
            name,
            getattr(loaded, "path", None),
            tuple(loaded.original_size),
            tuple(loaded.geometry.input_size),
        )
        refit = key != getattr(self, "_key", None)
        self._key = key
        if refit:
            self.readout.setText(" ")  # the last read-out was of another picture
        self.loaded = loaded
        self._name = name
        self._apply_mode()
        if refit:
            self.fit()

    def set_mode(self, mode: str) -> None:
        """``"original"`` (the opened picture) or ``"model"`` (what the network receives)."""
        if mode not in ("original", "model") or mode == self.mode:
            return
        self.mode = mode
        self.mode_box.blockSignals(True)
        self.mode_box.setCurrentIndex(0 if mode == "original" else 1)
        self.mode_box.blockSignals(False)
        self._apply_mode()
        self.fit()
        self.modeChanged.emit(mode)

    def _apply_mode(self) -> None:
        from cnnviz.core.images import ImageGeometry

        loaded = self.loaded
        if loaded is None:
            return
        if self.mode == "model":
            shown = loaded.model_input_image
            if shown.ndim == 3 and shown.shape[2] == 1:
                shown = shown[:, :, 0]
            h, w = shown.shape[:2]
            self._geometry = ImageGeometry.identity(h, w)
            self._display_geometry = ImageGeometry.identity(h, w)
            self._bounds = (0.0, 0.0, float(h), float(w))
        else:
            shown = loaded.display
            self._geometry = loaded.geometry
            self._display_geometry = loaded.display_geometry
            oh, ow = loaded.original_size
            self._bounds = (0.0, 0.0, float(oh), float(ow))
        self._shown = np.ascontiguousarray(shown)
        self.image_item.setImage(self._shown, autoLevels=False, levels=(0, 255))
        dh, dw = self._shown.shape[:2]
        self.image_item.setRect(
            _rect(self._display_geometry.box_edges_to_original((0, 0, dh - 1, dw - 1)))
        )
        ih, iw = self._geometry.input_size
        self._area = self._geometry.box_edges_to_original((0, 0, ih - 1, iw - 1))
        self.area_item.setRect(_rect(self._area))
        self.area_item.setVisible(self.mode == "original")
        # Picture pixels in the model input: the input tensor less any letterbox border.
        if self.mode == "model":
            oh, ow = loaded.original_size
            picture = loaded.geometry.box_edges_from_original((0.0, 0.0, float(oh), float(ow)))
        else:
            picture = self._bounds
        a = self._area
        self._content = (max(a[0], picture[0]), max(a[1], picture[1]),
                         min(a[2], picture[2]), min(a[3], picture[3]))  # fmt: skip
        self._update_title()
        self._draw_selection()
        self._draw_erf()

    def _update_title(self) -> None:
        loaded = self.loaded
        if loaded is None:
            self.title.setText("No picture")
            self.subtitle.setText(" ")
            return
        oh, ow = loaded.original_size
        ih, iw = loaded.geometry.input_size
        name = self._name or (loaded.path and str(loaded.path).rsplit("/", 1)[-1]) or "picture"
        extra = ", inverted" if loaded.inverted else ""
        mode = loaded.preprocess.mode.replace("_", " + ")
        self.title.setText(name)
        self.subtitle.set_texts(
            f"{ow}×{oh} px  →  model input {iw}×{ih}  ({mode}{extra})",
            f"{ow}×{oh} → {iw}×{ih}  ({mode}{extra})",
            f"{ow}×{oh} → {iw}×{ih}",
        )

    def fit(self) -> None:
        """Zoom to show the picture and the area the model sees."""
        if self.loaded is None:
            return
        y0, x0, y1, x1 = self._bounds
        if self.mode == "original":
            a = self._area
            y0, x0, y1, x1 = min(y0, a[0]), min(x0, a[1]), max(y1, a[2]), max(x1, a[3])
        self.vb.setRange(QRectF(x0, y0, x1 - x0, y1 - y0), padding=0.02)

    # -- receptive field -----------------------------------------------------------------------------------------
    def set_selection(self, selection: Any) -> None:
        """Draw a UnitSelection's box (None hides it)."""
        self.selection = selection
        self._draw_selection()
        self._draw_erf()

    def set_erf(self, erf: Any) -> None:
        """Show an EffectiveRF heatmap (None hides it)."""
        self.erf = erf
        self._draw_erf()

    def _draw_selection(self) -> None:
        box = getattr(self.selection, "box", None)
        items = (self.padding_item, self.box_item, self.inside_item, self.centre_item)
        if box is None or self._geometry is None:
            for item in items:
                item.setVisible(False)
            self._padding = []
            return
        full = self._geometry.box_edges_to_original(tuple(box.box))
        b, c = self._bounds, self._content
        inside = (max(full[0], c[0]), max(full[1], c[1]), min(full[2], c[2]), min(full[3], c[3]))
        self.box_item.setRect(_rect(full))
        self._full = full
        has_inside = inside[0] < inside[2] and inside[1] < inside[3]
        self.inside_item.setRect(_rect(inside) if has_inside else QRectF())
        self._draw_padding()
        cy = (box.box[0] + box.box[2]) / 2
        cx = (box.box[1] + box.box[3]) / 2
        py, px = self._geometry.point_to_original(cy, cx)
        py, px = py + 0.5, px + 0.5  # pixel-index centre -> edge coordinates
        arm = 0.035 * max(b[2] - b[0], b[3] - b[1], 1.0)
        cross = QPainterPath()
        cross.moveTo(QPointF(px - arm, py))
        cross.lineTo(QPointF(px + arm, py))
        cross.moveTo(QPointF(px, py - arm))
        cross.lineTo(QPointF(px, py + arm))
        self.centre_item.setPath(cross)
        self._centre = (py, px)
        for item in items:
            item.setVisible(True)
        self.inside_item.setVisible(has_inside)
        self.padding_item.setVisible(bool(self._padding))

    def _draw_padding(self) -> None:
        """Hatch the part of the box that lies in padding, cut to what the view shows (a corner unit's box can
        reach far outside the picture)."""
        box = getattr(self.selection, "box", None)
        if box is None or self._geometry is None or not hasattr(self, "_full"):
            self._padding = []
            return
        (x0, x1), (y0, y1) = self.vb.viewRange()
        self._padding = padding_region(self._full, self._content, (y0, x0, y1, x1))
        path = QPainterPath()
        for piece in self._padding:
            path.addRect(_rect(piece))
        self.padding_item.setPath(path)
        self.padding_item.setVisible(bool(self._padding) and self.box_item.isVisible())

    def _erf_matches(self) -> bool:
        """The heatmap belongs to the selected unit (a late result for an old unit is not shown)."""
        erf, sel = self.erf, self.selection
        if erf is None or sel is None:
            return False
        return erf.layer == sel.layer and tuple(erf.unit) == tuple(sel.unit)

    def _draw_erf(self) -> None:
        erf = self.erf
        if (
            erf is None
            or self._geometry is None
            or erf.support_box is None
            or not self._erf_matches()
        ):
            self.erf_item.setVisible(False)
            self.erf_legend.setVisible(False)
            return
        rgba = heatmap_rgba(erf.heatmap, ERF_CMAP, alpha=0.85)
        self.erf_item.setImage(rgba, autoLevels=False, levels=(0, 255))
        self.erf_item.setRect(_rect(self._area))
        self.erf_item.setVisible(True)
        peak = float(np.nanmax(np.abs(erf.heatmap))) if erf.heatmap.size else 0.0
        y, x = erf.unit
        what = f"channel {erf.channel}" if erf.channel is not None else "all channels summed"
        self.erf_caption.set_texts(
            f"Effective receptive field of unit ({y}, {x}), {what}: |∂unit/∂input| summed over colours",
            f"Effective RF ({y}, {x}), {what}",
            f"ERF, {what}",
        )
        self.erf_high.setText(f"{peak:.3g}")
        self.erf_high.setToolTip(
            "the largest gradient magnitude (brightest colour; square-root scale)"
        )
        self.erf_legend.setVisible(True)

    # -- what the view shows (used by tests and exports) ---------------------------------------------------------
    def rf_edges(self) -> tuple[float, float, float, float] | None:
        """The drawn theoretical box as (y0, x0, y1, x1) edges in view coordinates, or None."""
        if not self.box_item.isVisible():
            return None
        r = self.box_item.rect()
        return (r.top(), r.left(), r.bottom(), r.right())

    def inside_edges(self) -> tuple[float, float, float, float] | None:
        """The drawn part of the box inside the picture, or None."""
        if not self.inside_item.isVisible():
            return None
        r = self.inside_item.rect()
        return (r.top(), r.left(), r.bottom(), r.right())

    def centre(self) -> tuple[float, float] | None:
        return getattr(self, "_centre", None) if self.centre_item.isVisible() else None

    def erf_visible(self) -> bool:
        return self.erf_item.isVisible()

    def padding_rects(self) -> list[Edges]:
        """The hatched padding as (y0, x0, y1, x1) rectangles in view coordinates ([] when none is drawn)."""
        return list(self._padding) if self.padding_item.isVisible() else []

    def content_edges(self) -> Edges:
        """Where the model input holds picture pixels, in view coordinates."""
        return self._content

    # -- mouse ---------------------------------------------------------------------------------------------------
    def _view_point(self, scene_pos: Any) -> tuple[float, float] | None:
        if self.loaded is None or not self.vb.sceneBoundingRect().contains(scene_pos):
            return None
        p = self.vb.mapSceneToView(scene_pos)
        return (p.y(), p.x())

    def _hover(self, scene_pos: Any) -> None:
        hit = self._view_point(scene_pos)
        if hit is None:
            self.readout.setText(" ")
            return
        y, x = hit
        b = self._bounds
        if not (b[0] <= y < b[2] and b[1] <= x < b[3]):
            self.readout.setText(f"outside the picture (y {y:.0f}, x {x:.0f})")
            return
        iy, ix = int(y), int(x)
        g = self._display_geometry
        dy = int((y - float(g.offset_y)) / float(g.scale_y))
        dx = int((x - float(g.offset_x)) / float(g.scale_x))
        shown = self._shown
        text = f"pixel y {iy}, x {ix}"
        if shown is not None and 0 <= dy < shown.shape[0] and 0 <= dx < shown.shape[1]:
            value = shown[dy, dx]
            text += f"   value {tuple(int(v) for v in value) if np.ndim(value) else int(value)}"
        if self.mode == "original":
            model_px = self._geometry.pixel_from_original(y - 0.5, x - 0.5)
            text += f"   model input pixel {model_px}" if model_px else "   (not seen by the model)"
        self.readout.setText(text)

    def _clicked(self, event: Any) -> None:
        if event.button() == Qt.MouseButton.RightButton:
            self._context_menu(event)
            return
        if event.button() != Qt.MouseButton.LeftButton or self._geometry is None:
            return
        hit = self._view_point(event.scenePos())
        if hit is None:
            return
        y, x = hit
        my, mx = self._geometry.point_from_original(y - 0.5, x - 0.5)
        self.pointClicked.emit(my, mx)

    def _context_menu(self, event: Any) -> None:
        menu = QMenu(self)
        has_box = getattr(self.selection, "box", None) is not None
        for text, kind in (
            ("Export receptive field as PNG…", "rf_png"),
            ("Export receptive field as SVG…", "rf_svg"),
        ):
            action = menu.addAction(text, partial(self.exportRequested.emit, kind))
            action.setEnabled(has_box)
        menu.addSeparator()
        other = "model" if self.mode == "original" else "original"
        menu.addAction(
            "Show model input" if other == "model" else "Show original picture",
            lambda: self.set_mode(other),
        )
        menu.addAction("Fit picture", self.fit)
        menu.popup(event.screenPos().toPoint())
