"""Lesson 5: max and average pooling shrink each channel on its own."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from PySide6 import QtCore, QtGui, QtWidgets

from cnnviz.core import lab as core
from cnnviz.core.errors import CnnvizError
from cnnviz.gui.lab.base import _Lesson
from cnnviz.gui.lab.widgets import (
    C_CHOSEN,
    C_COVERED,
    C_TINT,
    ImagePanel,
    NumberGrid,
    _caption,
    _note,
    _spin,
    _swatch,
)

if TYPE_CHECKING:
    from cnnviz.gui.lab.window import ConvolutionLab


class PoolingLesson(_Lesson):
    key = "pooling"
    title = "Pooling"
    summary = (
        "Pooling slides a window over each channel on its own and keeps the largest value (max) or the mean "
        "(average): the map gets smaller, the number of channels stays the same, and nothing is learned."
    )

    def __init__(self, owner: ConvolutionLab) -> None:
        super().__init__(owner)
        self._seed = 1
        self.fmap = self._numbers()
        self.output = np.zeros((1, 1, 3))
        self.pool_mask = np.zeros((1, 1, 3), bool)
        self.image_output = np.zeros((1, 1, 3))
        controls = QtWidgets.QHBoxLayout()
        self.body.addLayout(controls)
        self.kind_combo = QtWidgets.QComboBox()
        self.kind_combo.addItem("Max pooling", "max")
        self.kind_combo.addItem("Average pooling", "avg")
        self.k_spin = _spin(1, 4, 2, "Window size")
        self.s_spin = _spin(1, 4, 2, "Stride")
        self.p_spin = _spin(0, 2, 0, "Padding (at most half the window)")
        self.channel_combo = QtWidgets.QComboBox()
        self.channel_combo.addItems(["channel 1", "channel 2", "channel 3"])
        self.new_button = QtWidgets.QPushButton("New numbers")
        for label, w in (
            ("", self.kind_combo),
            ("Window", self.k_spin),
            ("Stride", self.s_spin),
            ("Padding", self.p_spin),
            ("Show", self.channel_combo),
        ):
            if label:
                controls.addWidget(QtWidgets.QLabel(label))
            controls.addWidget(w)
        controls.addWidget(self.new_button)
        controls.addStretch(1)
        self.shape_label = QtWidgets.QLabel()
        self.shape_label.setWordWrap(True)
        font = self.shape_label.font()
        font.setBold(True)
        self.shape_label.setFont(font)
        self.body.addWidget(self.shape_label)
        row = QtWidgets.QHBoxLayout()
        self.body.addLayout(row)
        grids = QtWidgets.QGridLayout()
        row.addLayout(grids)
        self.grid_in = NumberGrid(cell=(34, 28))
        self.grid_out = NumberGrid(cell=(46, 28))
        self.in_caption = _caption("Input")
        grids.addWidget(self.in_caption, 0, 0)
        grids.addWidget(_caption("Output"), 0, 1)
        grids.addWidget(self.grid_in, 1, 0, QtCore.Qt.AlignmentFlag.AlignTop)
        grids.addWidget(self.grid_out, 1, 1, QtCore.Qt.AlignmentFlag.AlignTop)
        self.legend = QtWidgets.QLabel()
        grids.addWidget(self.legend, 2, 0, 1, 3)
        grids.setRowStretch(3, 1)
        row.addStretch(1)
        # The pictures go below the numbers, so the page fits a 1024-pixel-wide screen.
        pictures = QtWidgets.QHBoxLayout()
        self.body.addLayout(pictures)
        self.picture_panel = ImagePanel("Picture", fixed=self.PICTURE)
        self.pooled_panel = ImagePanel("Pooled picture", fixed=self.PICTURE)
        for panel in (self.picture_panel, self.pooled_panel):
            panel.title.setFixedWidth(self.PICTURE + 40)
            pictures.addWidget(panel, 0, QtCore.Qt.AlignmentFlag.AlignTop)
        pictures.addStretch(1)
        self.body.addWidget(
            _note(
                "Tinted blocks show the windows (when they do not overlap). The pooled picture is drawn to "
                "scale: one value per window and per colour channel."
            )
        )
        self.body.addStretch(1)
        for w in (self.k_spin, self.s_spin, self.p_spin):
            w.valueChanged.connect(self.refresh)
        self.kind_combo.currentIndexChanged.connect(self.refresh)
        self.channel_combo.currentIndexChanged.connect(self._draw_grids)
        self.new_button.clicked.connect(self._new_numbers)
        self.refresh()

    PICTURE = 170

    def _numbers(self) -> np.ndarray:
        return np.random.default_rng(self._seed).integers(0, 10, (8, 8, 3)).astype(np.float64)

    def _new_numbers(self) -> None:
        self._seed += 1
        self.fmap = self._numbers()
        self.refresh()

    @property
    def kind(self) -> str:
        return str(self.kind_combo.currentData())

    def image_changed(self) -> None:
        self.refresh()

    def refresh(self) -> None:
        k, s, p = self.k_spin.value(), self.s_spin.value(), self.p_spin.value()
        picture = self.owner.picture(128)
        try:
            self.output, self.pool_mask = core.pool(self.fmap, self.kind, k, s, p)  # type: ignore[arg-type]
            self.image_output, _ = core.pool(picture, self.kind, k, s, p)  # type: ignore[arg-type]
        except CnnvizError as exc:
            self.show_error(str(exc))
            return
        self.clear_error()
        h, w, c = self.fmap.shape
        ho, wo, co = self.output.shape
        self.shape_label.setText(
            f"Input {c} \u00d7 {h} \u00d7 {w}  \u2192  output {co} \u00d7 {ho} \u00d7 {wo}: each of the {c} "
            f"channels is pooled on its own, so there are still {co} channels."
        )
        self.picture_panel.set_image(core.to_uint8(picture, "clip"))
        self.pooled_panel.set_image(core.to_uint8(self.image_output, "clip"))
        ph, pw = picture.shape[:2]
        oh, ow = self.image_output.shape[:2]
        scale = self.PICTURE / max(ph, pw)
        self.pooled_panel.view.setFixedSize(max(8, round(ow * scale)), max(8, round(oh * scale)))
        pc = 1 if picture.ndim == 2 else picture.shape[2]
        self.picture_panel.set_title(f"Picture {pw}\u00d7{ph}, {pc} channel{'s' if pc > 1 else ''}")
        self.pooled_panel.set_title(
            f"{self.kind_combo.currentText()}: {ow}\u00d7{oh}, still {pc} channel{'s' if pc > 1 else ''}"
        )
        self._draw_grids()

    def _draw_grids(self) -> None:
        ch = self.channel_combo.currentIndex()
        self.grid_in.set_array(self.fmap[..., ch])
        self.grid_out.set_array(self.output[..., ch])
        color = C_CHOSEN if self.kind == "max" else C_COVERED
        cells: dict[tuple[int, int], QtGui.QColor] = {}
        k, s, p = self.k_spin.value(), self.s_spin.value(), self.p_spin.value()
        if s >= k:  # non-overlapping windows can be told apart by alternating tints
            for y in range(self.fmap.shape[0]):
                for x in range(self.fmap.shape[1]):
                    (wy, ry), (wx, rx) = divmod(y + p, s), divmod(x + p, s)
                    if ry < k and rx < k and (wy + wx) % 2 == 0:
                        cells[(y, x)] = C_TINT
        chosen = [
            (int(i), int(j)) for i, j in zip(*np.nonzero(self.pool_mask[..., ch]), strict=True)
        ]
        if self.kind == "max":
            cells.update(dict.fromkeys(chosen, color))
        else:  # every read cell is averaged: only the skipped ones stay white
            for cell in chosen:
                cells.setdefault(cell, color)
        self.grid_in.paint(cells)
        self.in_caption.setText(f"<b>Input, channel {ch + 1}</b>")
        if self.kind == "max":
            self.legend.setText(_swatch(C_CHOSEN, "the value each window keeps (the largest)"))
        else:
            self.legend.setText(
                _swatch(
                    C_COVERED,
                    "cells that some window averages (white cells are skipped by the stride)",
                )
            )
