"""Lesson 3: how kernel size, stride, padding and dilation set the output size."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from PySide6 import QtCore, QtWidgets

from cnnviz.core import lab as core
from cnnviz.core.errors import CnnvizError
from cnnviz.gui.lab.base import _Lesson
from cnnviz.gui.lab.widgets import (
    _RGB,
    ImagePanel,
    _cells_picture,
    _mono_font,
    _note,
    _spin,
    _swatch,
)

if TYPE_CHECKING:
    from cnnviz.gui.lab.window import ConvolutionLab


class GeometryLesson(_Lesson):
    key = "geometry"
    title = "Stride, padding and dilation"
    summary = (
        "Stride is the step between kernel positions, padding adds a border of zeros, dilation spreads the "
        "kernel's taps apart; together with the kernel size they set the output size."
    )

    def __init__(self, owner: ConvolutionLab) -> None:
        super().__init__(owner)
        self.out_shape: tuple[int, int] | None = None
        self.torch_shape: tuple[int, int] | None = None
        controls = QtWidgets.QGridLayout()
        self.body.addLayout(controls)
        self.h_spin = _spin(1, 16, 7, "Input height")
        self.w_spin = _spin(1, 16, 9, "Input width")
        self.k_spin = _spin(1, 7, 3, "Kernel size (square)")
        self.s_spin = _spin(1, 4, 2, "Stride")
        self.p_spin = _spin(0, 3, 1, "Padding on every side")
        self.d_spin = _spin(1, 3, 1, "Dilation: distance between kernel taps")
        self.row_spin = _spin(0, 0, 0, "Output row whose window is drawn")
        self.col_spin = _spin(0, 0, 1, "Output column whose window is drawn")
        items = [
            ("Input height", self.h_spin),
            ("Input width", self.w_spin),
            ("Kernel", self.k_spin),
            ("Stride", self.s_spin),
            ("Padding", self.p_spin),
            ("Dilation", self.d_spin),
            ("Window of output row", self.row_spin),
            ("column", self.col_spin),
        ]
        for n, (label, spin) in enumerate(items):
            controls.addWidget(QtWidgets.QLabel(label), n // 4, 2 * (n % 4))
            controls.addWidget(spin, n // 4, 2 * (n % 4) + 1)
        controls.setColumnStretch(8, 1)

        self.formula_label = QtWidgets.QLabel()
        font = _mono_font()
        font.setPointSizeF(font.pointSizeF() * 1.15)
        self.formula_label.setFont(font)
        self.formula_label.setTextInteractionFlags(
            QtCore.Qt.TextInteractionFlag.TextSelectableByMouse
        )
        self.body.addWidget(self.formula_label)
        self.check_label = _note("")
        self.body.addWidget(self.check_label)
        pictures = QtWidgets.QHBoxLayout()
        self.body.addLayout(pictures, 1)
        self.input_panel = ImagePanel("Padded input", min_size=220)
        self.output_panel = ImagePanel("Output", min_size=160)
        pictures.addWidget(self.input_panel, 3)
        pictures.addWidget(self.output_panel, 2)
        legend = QtWidgets.QLabel(
            "&nbsp;&nbsp;".join(
                [
                    _swatch(_RGB["input"], "input pixel"),
                    _swatch(_RGB["pad"], "zero padding"),
                    _swatch(_RGB["tap"], "kernel taps of the chosen output cell"),
                    _swatch(_RGB["out"], "output cell"),
                ]
            )
        )
        self.body.addWidget(legend)
        for spin in (self.h_spin, self.w_spin, self.k_spin, self.s_spin, self.p_spin, self.d_spin):
            spin.valueChanged.connect(self.refresh)
        self.row_spin.valueChanged.connect(self._draw)
        self.col_spin.valueChanged.connect(self._draw)
        self.refresh()

    def settings(self) -> dict[str, int]:
        return {
            "h": self.h_spin.value(),
            "w": self.w_spin.value(),
            "k": self.k_spin.value(),
            "s": self.s_spin.value(),
            "p": self.p_spin.value(),
            "d": self.d_spin.value(),
        }

    def refresh(self) -> None:
        c = self.settings()
        try:
            self.formula_label.setText(
                core.output_size_formula((c["h"], c["w"]), c["k"], c["s"], c["p"], c["d"])
            )
            result = core.convolve(
                np.zeros((c["h"], c["w"])),
                np.zeros((c["k"], c["k"])),
                stride=c["s"],
                padding=c["p"],
                dilation=c["d"],
            )
        except CnnvizError as exc:
            self.out_shape = self.torch_shape = None
            self.formula_label.setText("")
            self.check_label.setText("")
            self.input_panel.set_image(np.full((1, 1, 3), 255, np.uint8))
            self.output_panel.set_image(np.full((1, 1, 3), 255, np.uint8))
            self.show_error(str(exc))
            return
        self.clear_error()
        ho = core.output_size(c["h"], c["k"], c["s"], c["p"], c["d"])
        wo = core.output_size(c["w"], c["k"], c["s"], c["p"], c["d"])
        self.out_shape = (ho, wo)
        self.torch_shape = (int(result.shape[0]), int(result.shape[1]))
        span = c["d"] * (c["k"] - 1) + 1
        self.check_label.setText(
            f"torch's conv2d on a {c['h']}\u00d7{c['w']} input gives {self.torch_shape[0]}\u00d7"
            f"{self.torch_shape[1]}, as the formula says. The kernel spans {span} pixels "
            f"(d\u00b7(k\u22121)+1); floor() drops positions where it would stick out of the padded input."
        )
        for spin, top in ((self.row_spin, ho - 1), (self.col_spin, wo - 1)):
            spin.blockSignals(True)
            spin.setMaximum(top)
            spin.blockSignals(False)
        self._draw()

    def _draw(self) -> None:
        if self.out_shape is None:
            return
        c = self.settings()
        p = c["p"]
        hp, wp = c["h"] + 2 * p, c["w"] + 2 * p
        codes = np.full((hp, wp), "pad", dtype=object)
        codes[p : p + c["h"], p : p + c["w"]] = "input"
        r, q = self.row_spin.value(), self.col_spin.value()
        for u in range(c["k"]):
            for v in range(c["k"]):
                y, x = r * c["s"] + u * c["d"], q * c["s"] + v * c["d"]
                codes[y, x] = "tap" if codes[y, x] == "input" else "tap_pad"
        self.input_panel.set_image(_cells_picture(codes))
        out_codes = np.full(self.out_shape, "out", dtype=object)
        out_codes[r, q] = "out_sel"
        self.output_panel.set_image(_cells_picture(out_codes))
        self.input_panel.set_title(f"Input {c['h']}\u00d7{c['w']} padded to {hp}\u00d7{wp}")
        self.output_panel.set_title(
            f"Output {self.out_shape[0]}\u00d7{self.out_shape[1]} \u2014 cell ({r}, {q}) in orange"
        )
