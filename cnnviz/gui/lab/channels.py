"""Lesson 4: several filters make several output channels."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from PySide6 import QtCore, QtWidgets

from cnnviz.core import lab as core
from cnnviz.core.errors import CnnvizError
from cnnviz.gui.lab.base import _Lesson
from cnnviz.gui.lab.widgets import (
    ColorBar,
    ImagePanel,
    NumberGrid,
    _mono_font,
    _note,
    _spin,
    signed_rgb,
    signed_scale,
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
        self.scale = 1.0  # the colour bar's half-range for the filter taken apart
        self.input = np.zeros((1, 1, 3))
        controls = QtWidgets.QHBoxLayout()
        self.body.addLayout(controls)
        self.weights_combo = QtWidgets.QComboBox()
        self.weights_combo.addItem("Named filters", "named")
        self.weights_combo.addItem("Random weights", "random")
        self.weights_combo.setToolTip(
            "Named filters do one thing you can predict; random ones are what training starts from"
        )
        self.n_spin = _spin(
            1, len(core.RGB_FILTERS), 4, "Number of filters = number of output channels"
        )
        self.seed_spin = _spin(0, 9999, 0, "Random weights are drawn from this seed")
        self.seed_spin.setEnabled(False)
        self.show_spin = _spin(1, 4, 1, "Which filter to take apart below")
        for label, w in (
            ("Weights", self.weights_combo),
            ("Filters", self.n_spin),
            ("Random seed", self.seed_spin),
            ("Take apart filter", self.show_spin),
        ):
            controls.addWidget(QtWidgets.QLabel(label))
            controls.addWidget(w)
        controls.addStretch(1)
        self.params_label = QtWidgets.QLabel()
        self.params_label.setFont(_mono_font())
        self.params_label.setWordWrap(True)
        self.body.addWidget(self.params_label)
        self.filter_label = QtWidgets.QLabel()
        self.filter_label.setWordWrap(True)
        self.body.addWidget(self.filter_label)

        grid = QtWidgets.QGridLayout()
        grid.setHorizontalSpacing(6)
        self.body.addLayout(grid)
        names = ("Red", "Green", "Blue")
        size = 104
        self.channel_panels = [ImagePanel(f"{n} channel", fixed=size) for n in names]
        self.slice_grids = [NumberGrid(cell=(50, 24), decimals=3) for _ in names]
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
        brace = sign("\u2211\n\u2192")
        brace.setToolTip("The three results are added, plus the bias")
        grid.addWidget(brace, 0, 5, 3, 1)
        self.sum_panel = ImagePanel("Output channel", fixed=150)
        grid.addWidget(self.sum_panel, 0, 6, 3, 1, QtCore.Qt.AlignmentFlag.AlignVCenter)
        self.colorbar = ColorBar(150)
        grid.addWidget(self.colorbar, 0, 7, 3, 1, QtCore.Qt.AlignmentFlag.AlignVCenter)
        grid.setColumnStretch(8, 1)
        self.outputs_panel = ImagePanel("All output channels", min_size=90)
        self.outputs_panel.view.setFixedHeight(110)
        self.body.addWidget(self.outputs_panel)
        self.body.addWidget(
            _note(
                "\u2217 slides the K\u00d7K slice over its channel. Results are drawn red = positive, light "
                "grey = 0, blue = negative: the three slices and their sum on the scale of the colour bar, "
                "each of the output channels below on its own scale."
            )
        )
        self.body.addStretch(1)
        self.weights_combo.currentIndexChanged.connect(self._on_weights)
        self.n_spin.valueChanged.connect(self._on_n)
        self.seed_spin.valueChanged.connect(self.refresh)
        self.show_spin.valueChanged.connect(self._draw)
        self.refresh()

    def image_changed(self) -> None:
        self.refresh()

    @property
    def named(self) -> bool:
        return self.weights_combo.currentData() == "named"

    def filter_names(self) -> list[str]:
        """The titles of the filters in use, one per output channel."""
        n = self.n_spin.value()
        if self.named:
            return [f.title for f in list(core.RGB_FILTERS.values())[:n]]
        return [f"random filter {i + 1}" for i in range(n)]

    def _on_weights(self) -> None:
        self.seed_spin.setEnabled(not self.named)
        self.n_spin.setMaximum(len(core.RGB_FILTERS) if self.named else 8)
        self.refresh()

    def _on_n(self, n: int) -> None:
        self.show_spin.setMaximum(n)
        self.refresh()

    def refresh(self) -> None:
        picture = self.owner.picture(72)
        self.input = picture if picture.ndim == 3 else np.repeat(picture[..., None], 3, axis=2)
        try:
            if self.named:
                chosen = list(core.RGB_FILTERS.values())[: self.n_spin.value()]
                weights = np.stack([f.weights for f in chosen])
                self.result = core.multi_filter(self.input, len(chosen), weights=weights)
            else:
                self.result = core.multi_filter(
                    self.input, self.n_spin.value(), self.seed_spin.value()
                )
        except CnnvizError as exc:
            self.show_error(str(exc))
            return
        self.clear_error()
        n = self.n_spin.value()
        c, k = self.input.shape[2], self.result.weights.shape[2]
        bias = f" + {n} bias" if not self.named else " (bias 0)"
        self.params_label.setText(
            f"{n} filter{'s' if n > 1 else ''} of {c}\u00d7{k}\u00d7{k} weights{bias} \u2192 "
            f"{n} output channel{'s' if n > 1 else ''}.   Parameters: {self.result.params.formula}"
        )
        self._draw()

    def _draw(self) -> None:
        if self.result is None:
            return
        f = self.show_spin.value() - 1
        res = self.result
        scale = max(signed_scale(res.partials[f]), signed_scale(res.outputs[..., f]))
        self.scale = scale
        self.colorbar.set_scale(scale)
        name = self.filter_names()[f]
        if self.named:
            chosen = list(core.RGB_FILTERS.values())[f]
            self.filter_label.setText(f"<b>Filter {f + 1}: {name}.</b> {chosen.description}")
        else:
            self.filter_label.setText(
                f"<b>Filter {f + 1}: random weights.</b> Nothing to predict: training will shape them."
            )
        for c, channel in enumerate(("R", "G", "B")):
            self.channel_panels[c].set_image(core.to_uint8(self.input[..., c], "clip"))
            self.slice_grids[c].set_array(res.weights[f, c])
            self.slice_captions[c].setText(f"filter {f + 1}, {channel} slice")
            self.partial_panels[c].set_image(signed_rgb(res.partials[f, c], scale))
        self.sum_panel.set_image(signed_rgb(res.outputs[..., f], scale))
        self.sum_panel.set_title(
            f"Output channel {f + 1}: {name}\n(sum of the 3 + bias {res.bias[f]:+.2f})"
        )
        h, w, n = res.outputs.shape
        gap = 3
        mosaic = np.full((h, n * w + (n - 1) * gap, 3), 255, np.uint8)
        for i in range(n):
            out = res.outputs[..., i]
            mosaic[:, i * (w + gap) : i * (w + gap) + w] = signed_rgb(out, signed_scale(out))
        self.outputs_panel.set_image(mosaic)
        names = " \u00b7 ".join(f"{i + 1}: {t}" for i, t in enumerate(self.filter_names()))
        self.outputs_panel.set_title(
            f"All {n} output channels (one per filter), each {w}\u00d7{h} \u2014 {names}"
        )
