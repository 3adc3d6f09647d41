"""Lesson 4: several filters make several output channels."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from PySide6 import QtCore, QtWidgets

from cnnviz.core import lab as core
from cnnviz.core.errors import CnnvizError
from cnnviz.gui.lab.base import _Lesson
from cnnviz.gui.lab.widgets import (
    ImagePanel,
    NumberGrid,
    _mono_font,
    _note,
    _spin,
)

if TYPE_CHECKING:
    from cnnviz.gui.lab.window import ConvolutionLab


class ChannelsLesson(_Lesson):
    key = "channels"
    title = "RGB kernels and many filters"
    summary = (
        "On a colour image each filter has one K\u00d7K slice per channel (R, G, B); the three filtered channels "
        "are added into ONE output map \u2014 so the number of filters sets the number of output channels."
    )

    def __init__(self, owner: ConvolutionLab) -> None:
        super().__init__(owner)
        self.result: core.MultiFilter | None = None
        self.input = np.zeros((1, 1, 3))
        controls = QtWidgets.QHBoxLayout()
        self.body.addLayout(controls)
        self.n_spin = _spin(1, 8, 4, "Number of filters = number of output channels")
        self.seed_spin = _spin(0, 9999, 0, "Random weights are drawn from this seed")
        self.show_spin = _spin(1, 4, 1, "Which filter to take apart below")
        for label, w in (
            ("Filters", self.n_spin),
            ("Random seed", self.seed_spin),
            ("Take apart filter", self.show_spin),
        ):
            controls.addWidget(QtWidgets.QLabel(label))
            controls.addWidget(w)
        controls.addStretch(1)
        self.params_label = QtWidgets.QLabel()
        self.params_label.setFont(_mono_font())
        self.body.addWidget(self.params_label)

        grid = QtWidgets.QGridLayout()
        grid.setHorizontalSpacing(10)
        self.body.addLayout(grid)
        names = ("Red", "Green", "Blue")
        size = 118
        self.channel_panels = [ImagePanel(f"{n} channel", fixed=size) for n in names]
        self.slice_grids = [NumberGrid(cell=(46, 24), decimals=2) for _ in names]
        self.slice_captions = [QtWidgets.QLabel() for _ in names]
        self.partial_panels = [ImagePanel(f"{n} \u2217 slice", fixed=size) for n in names]

        def sign(text: str) -> QtWidgets.QLabel:
            label = QtWidgets.QLabel(text)
            font = label.font()
            font.setPointSizeF(font.pointSizeF() * 2)
            label.setFont(font)
            label.setAlignment(QtCore.Qt.AlignmentFlag.AlignCenter)
            return label

        for c in range(3):
            grid.addWidget(self.channel_panels[c], c, 0)
            grid.addWidget(sign("\u2217"), c, 1)
            box = QtWidgets.QVBoxLayout()
            box.addStretch(1)
            box.addWidget(self.slice_captions[c], 0, QtCore.Qt.AlignmentFlag.AlignHCenter)
            box.addWidget(self.slice_grids[c], 0, QtCore.Qt.AlignmentFlag.AlignHCenter)
            box.addStretch(1)
            grid.addLayout(box, c, 2)
            grid.addWidget(sign("="), c, 3)
            grid.addWidget(self.partial_panels[c], c, 4)
        brace = sign("\u2211 + bias\n\u2192")
        grid.addWidget(brace, 0, 5, 3, 1)
        self.sum_panel = ImagePanel("Output channel", fixed=170)
        grid.addWidget(self.sum_panel, 0, 6, 3, 1, QtCore.Qt.AlignmentFlag.AlignVCenter)
        grid.setColumnStretch(7, 1)
        self.outputs_panel = ImagePanel("All output channels", min_size=90)
        self.outputs_panel.view.setFixedHeight(110)
        self.body.addWidget(self.outputs_panel)
        self.body.addWidget(
            _note(
                "\u2217 slides the K\u00d7K slice over its channel. Results are drawn grey = 0, brighter = "
                "positive, darker = negative, all on one scale."
            )
        )
        self.body.addStretch(1)
        self.n_spin.valueChanged.connect(self._on_n)
        self.seed_spin.valueChanged.connect(self.refresh)
        self.show_spin.valueChanged.connect(self._draw)
        self.refresh()

    def image_changed(self) -> None:
        self.refresh()

    def _on_n(self, n: int) -> None:
        self.show_spin.setMaximum(n)
        self.refresh()

    def refresh(self) -> None:
        picture = self.owner.picture(72)
        self.input = picture if picture.ndim == 3 else np.repeat(picture[..., None], 3, axis=2)
        try:
            self.result = core.multi_filter(self.input, self.n_spin.value(), self.seed_spin.value())
        except CnnvizError as exc:
            self.show_error(str(exc))
            return
        self.clear_error()
        n = self.n_spin.value()
        c, k = self.input.shape[2], self.result.weights.shape[2]
        self.params_label.setText(
            f"{n} filter{'s' if n > 1 else ''} of {c}\u00d7{k}\u00d7{k} weights + {n} bias \u2192 "
            f"{n} output channel{'s' if n > 1 else ''}.   Parameters: {self.result.params.formula}"
        )
        self._draw()

    def _draw(self) -> None:
        if self.result is None:
            return
        f = self.show_spin.value() - 1
        res = self.result
        scale = max(float(np.abs(res.partials).max()), float(np.abs(res.outputs).max()), 1e-12)
        for c in range(3):
            self.channel_panels[c].set_image(core.to_uint8(self.input[..., c], "clip"))
            self.slice_grids[c].set_array(res.weights[f, c])
            self.slice_captions[c].setText(f"filter {f + 1}, slice {c + 1}")
            self.partial_panels[c].set_image(core.to_uint8(res.partials[f, c], "signed", scale))
        self.sum_panel.set_image(core.to_uint8(res.outputs[..., f], "signed", scale))
        self.sum_panel.set_title(
            f"Output channel {f + 1}\n(sum of the 3 + bias {res.bias[f]:+.2f})"
        )
        h, w, n = res.outputs.shape
        gap = 3
        mosaic = np.full((h, n * w + (n - 1) * gap), 255, np.uint8)
        for i in range(n):
            mosaic[:, i * (w + gap) : i * (w + gap) + w] = core.to_uint8(
                res.outputs[..., i], "signed", scale
            )
        self.outputs_panel.set_image(mosaic)
        self.outputs_panel.set_title(f"All {n} output channels (one per filter), each {w}\u00d7{h}")
