"""Lesson 6: 1×1 convolutions mix channels and make bottlenecks cheap."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pyqtgraph as pg
from PySide6 import QtCore, QtWidgets

from cnnviz.core import lab as core
from cnnviz.core.errors import CnnvizError
from cnnviz.core.text import num
from cnnviz.gui.lab.base import _Lesson
from cnnviz.gui.lab.widgets import (
    ImagePanel,
    NumberGrid,
    _caption,
    _headline,
    _mono_font,
    _note,
    _spin,
    _still_plot,
    signed_rgb,
    signed_scale,
)

if TYPE_CHECKING:
    from cnnviz.gui.lab.window import ConvolutionLab


# Predictable mixes: brightness, the two colour-opponent pairs and one channel alone (rows of C_out x RGB).
_MIXES = np.vstack(
    [
        core.RGB_FILTERS[name].weights[:, 1, 1]
        for name in ("luminance", "red_minus_green", "blue_minus_yellow")
    ]
    + [np.array([0.0, 1.0, 0.0])]
)


class OneByOneLesson(_Lesson):
    key = "one_by_one"
    title = "1\u00d71 convolutions"
    summary = (
        "A 1\u00d71 convolution mixes the channels of each pixel without looking at its neighbours; squeezing "
        "C channels down to C\u2032 before a K\u00d7K convolution saves most parameters and multiply-adds."
    )

    def __init__(self, owner: ConvolutionLab) -> None:
        super().__init__(owner)
        self.comparison: core.BottleneckComparison | None = None
        self.mix: core.ChannelMix | None = None
        self.mix_input = np.zeros((1, 1, 3))
        self._build_mixing()
        self.body.addWidget(_caption("What the squeeze saves"))
        controls = QtWidgets.QGridLayout()
        self.body.addLayout(controls)
        self.cin_spin = _spin(1, 4096, 256, "Channels coming in")
        self.cmid_spin = _spin(1, 4096, 64, "Channels after the 1\u00d71 squeeze")
        self.cout_spin = _spin(1, 4096, 256, "Channels going out")
        self.k_spin = _spin(1, 7, 3, "Size of the spatial kernel")
        self.h_spin = _spin(1, 1024, 56, "Map height")
        self.w_spin = _spin(1, 1024, 56, "Map width")
        self.bias_check = QtWidgets.QCheckBox("with bias")
        self.bias_check.setChecked(True)
        items = [
            ("C_in", self.cin_spin),
            ("C\u2032 (squeezed)", self.cmid_spin),
            ("C_out", self.cout_spin),
            ("K", self.k_spin),
            ("H", self.h_spin),
            ("W", self.w_spin),
        ]
        for n, (label, spin) in enumerate(items):
            controls.addWidget(QtWidgets.QLabel(label), 0, 2 * n)
            controls.addWidget(spin, 0, 2 * n + 1)
        controls.addWidget(self.bias_check, 0, 12)
        controls.setColumnStretch(13, 1)
        self.table = QtWidgets.QTableWidget(4, 3)
        self.table.setHorizontalHeaderLabels(["Layer", "Parameters", "Multiply-adds (MACs)"])
        self.table.verticalHeader().hide()
        self.table.setEditTriggers(QtWidgets.QAbstractItemView.EditTrigger.NoEditTriggers)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(0, QtWidgets.QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(1, QtWidgets.QHeaderView.ResizeMode.Stretch)
        header.setSectionResizeMode(2, QtWidgets.QHeaderView.ResizeMode.Stretch)
        self.body.addWidget(self.table)
        self.ratio_label = _headline(1.2)
        self.body.addWidget(self.ratio_label)
        self.formula_label = QtWidgets.QLabel()
        self.formula_label.setFont(_mono_font())
        self.formula_label.setWordWrap(True)
        self.formula_label.setTextInteractionFlags(
            QtCore.Qt.TextInteractionFlag.TextSelectableByMouse
        )
        self.body.addWidget(self.formula_label)
        self.plot = _still_plot(self)
        self.plot.setLabel("left", "% of the direct K\u00d7K convolution")
        self.plot.getAxis("bottom").setTicks([[(0, "parameters"), (1, "multiply-adds")]])
        self.plot.setMinimumHeight(150)
        self.plot.setMaximumHeight(320)
        self.body.addWidget(self.plot, 1)
        self.body.addWidget(
            _note(
                "Each output pixel of a 1\u00d71 convolution is a weighted sum of the C_in values at the same "
                "pixel: a tiny dense layer applied at every position. ResNet\u2019s bottleneck blocks and "
                "Inception use it exactly like this."
            )
        )
        for spin in (
            self.cin_spin,
            self.cmid_spin,
            self.cout_spin,
            self.k_spin,
            self.h_spin,
            self.w_spin,
        ):
            spin.valueChanged.connect(self.refresh)
        self.bias_check.toggled.connect(self.refresh)
        self.refresh()

    # -- mixing the channels of the picture

    def _build_mixing(self) -> None:
        self.body.addWidget(
            _caption("Mixing channels: each output channel is a weighted sum of the inputs")
        )
        row = QtWidgets.QHBoxLayout()
        self.body.addLayout(row)
        self.mix_out_spin = _spin(1, len(_MIXES), 3, "Output channels = rows of the weight matrix")
        self.mix_reset = QtWidgets.QPushButton("Named mixes")
        self.mix_reset.setToolTip("Brightness, red \u2212 green, blue \u2212 yellow, green only")
        row.addWidget(QtWidgets.QLabel("Output channels"))
        row.addWidget(self.mix_out_spin)
        row.addWidget(self.mix_reset)
        row.addStretch(1)
        grid = QtWidgets.QGridLayout()
        grid.setHorizontalSpacing(6)
        self.body.addLayout(grid)
        size = 84
        self.mix_in_panels = [ImagePanel(f"{n}", fixed=size) for n in ("R", "G", "B")]
        inputs = QtWidgets.QVBoxLayout()
        inputs.addWidget(_caption("Input channels"))
        in_row = QtWidgets.QHBoxLayout()
        for panel in self.mix_in_panels:
            in_row.addWidget(panel)
        inputs.addLayout(in_row)
        grid.addLayout(inputs, 0, 0)
        matrix = QtWidgets.QVBoxLayout()
        self.matrix_caption = _caption("")
        matrix.addWidget(self.matrix_caption)
        self.mix_grid = NumberGrid(editable=True, cell=(52, 26), decimals=3)
        matrix.addWidget(self.mix_grid, 0, QtCore.Qt.AlignmentFlag.AlignHCenter)
        matrix.addStretch(1)
        grid.addLayout(matrix, 0, 1)
        outputs = QtWidgets.QVBoxLayout()
        self.mix_out_caption = _caption("")
        outputs.addWidget(self.mix_out_caption)
        self.mix_out_row = QtWidgets.QHBoxLayout()
        outputs.addLayout(self.mix_out_row)
        self.mix_out_panels: list[ImagePanel] = []
        for _ in range(len(_MIXES)):
            panel = ImagePanel("", fixed=size)
            self.mix_out_panels.append(panel)
            self.mix_out_row.addWidget(panel)
        grid.addLayout(outputs, 0, 2)
        grid.setColumnStretch(3, 1)
        self.mix_formula = QtWidgets.QLabel()
        self.mix_formula.setFont(_mono_font())
        self.mix_formula.setWordWrap(True)
        self.mix_formula.setTextInteractionFlags(
            QtCore.Qt.TextInteractionFlag.TextSelectableByMouse
        )
        self.body.addWidget(self.mix_formula)
        self.body.addWidget(
            _note(
                "Double-click a weight to change it. Outputs are red above 0, light grey at 0 and blue below, "
                "each on its own scale. Every output keeps the input's height and width: a 1\u00d71 kernel "
                "looks at one pixel, so nothing moves or blurs \u2014 only the channels are mixed."
            )
        )
        self.mix_grid.set_array(_MIXES[:3])
        self.mix_out_spin.valueChanged.connect(self._on_mix_outputs)
        self.mix_reset.clicked.connect(self._reset_mix)
        self.mix_grid.edited.connect(self.refresh_mix)
        self.refresh_mix()

    def image_changed(self) -> None:
        self.refresh_mix()

    def mix_weights(self) -> np.ndarray:
        """The C_out x C_in weight matrix as shown."""
        return self.mix_grid.values()

    def _on_mix_outputs(self, n: int) -> None:
        old = self.mix_grid.values()
        new = np.array(_MIXES[:n], dtype=np.float64)
        keep = min(n, old.shape[0])
        new[:keep] = old[:keep]
        self.mix_grid.set_array(new)
        self.refresh_mix()

    def _reset_mix(self) -> None:
        self.mix_grid.set_array(_MIXES[: self.mix_out_spin.value()])
        self.refresh_mix()

    def refresh_mix(self) -> None:
        picture = self.owner.picture(48)
        self.mix_input = picture if picture.ndim == 3 else np.repeat(picture[..., None], 3, axis=2)
        w = self.mix_weights()
        try:
            self.mix = core.mix_channels(self.mix_input, w)
        except CnnvizError as exc:
            self.mix = None
            self.show_error(str(exc))
            return
        self.clear_error()
        h, wd, cin = self.mix_input.shape
        cout = w.shape[0]
        self.matrix_caption.setText(
            f"<b>1\u00d71 weights, C_out\u00d7C_in = {cout}\u00d7{cin}</b><br>columns R, G, B; row k makes "
            "out k"
        )
        for c, panel in enumerate(self.mix_in_panels):
            panel.set_image(core.to_uint8(self.mix_input[..., c], "clip"))
            panel.set_title(f"{'RGB'[c]}  {wd}\u00d7{h}")
        self.mix_out_caption.setText(f"<b>Output channels ({cout}), each {wd}\u00d7{h}</b>")
        lines = []
        for k, panel in enumerate(self.mix_out_panels):
            panel.setVisible(k < cout)
            if k >= cout:
                continue
            out = self.mix.outputs[..., k]
            panel.set_image(signed_rgb(out, signed_scale(out)))
            panel.set_title(f"out {k + 1}")
            lines.append(f"out {k + 1} = {self.mix_terms(k)}")
        y, x = h // 2, wd // 2
        pixel = ", ".join(num(float(v)) for v in self.mix_input[y, x])
        mixed = ", ".join(num(float(v)) for v in self.mix.outputs[y, x])
        lines.append(f"at pixel [{y}, {x}]: (R, G, B) = ({pixel}) \u2192 outputs ({mixed})")
        self.mix_formula.setText("\n".join(lines))

    def mix_terms(self, k: int) -> str:
        """Output channel ``k`` as the weighted sum shown, e.g. ``0.299\u00b7R + 0.587\u00b7G + 0.114\u00b7B``."""
        w = self.mix_weights()[k]
        terms = []
        for c, weight in enumerate(w):
            sign = "\u2212" if weight < 0 else "+"
            terms.append((sign, f"{num(abs(float(weight)))}\u00b7{'RGB'[c]}"))
        text = ("\u2212" if terms[0][0] == "\u2212" else "") + terms[0][1]
        for sign, term in terms[1:]:
            text += f" {sign} {term}"
        return text

    # -- what the squeeze saves

    def refresh(self) -> None:
        cin, cmid, cout = self.cin_spin.value(), self.cmid_spin.value(), self.cout_spin.value()
        k, h, w = self.k_spin.value(), self.h_spin.value(), self.w_spin.value()
        try:
            cmp = core.bottleneck_comparison(
                cin, cmid, cout, k, h, w, bias=self.bias_check.isChecked()
            )
        except CnnvizError as exc:
            self.comparison = None
            self.show_error(str(exc))
            return
        self.clear_error()
        self.comparison = cmp
        rows = [
            (f"Direct {k}\u00d7{k} conv, {cin} \u2192 {cout}", cmp.direct_params, cmp.direct_macs),
            (f"1\u00d71 conv, {cin} \u2192 {cmid}", cmp.reduce_params, cmp.reduce_macs),
            (f"{k}\u00d7{k} conv, {cmid} \u2192 {cout}", cmp.conv_params, cmp.conv_macs),
        ]
        for r, (name, params, macs) in enumerate(rows):
            self._set_row(r, name, params.value, macs.value, params.formula, macs.formula)
        self._set_row(
            3, "1\u00d71 then K\u00d7K (total)", cmp.after_params, cmp.after_macs, "", "", bold=True
        )
        self.table.setFixedHeight(
            self.table.horizontalHeader().height()
            + sum(self.table.rowHeight(i) for i in range(4))
            + 4
        )

        def times(ratio: float) -> str:
            return f"{ratio:.1f}\u00d7 fewer" if ratio >= 1 else f"{1 / ratio:.1f}\u00d7 more"

        self.ratio_label.setText(
            f"The 1\u00d71 squeeze needs {times(cmp.params_ratio)} parameters and "
            f"{times(cmp.macs_ratio)} multiply-adds than the direct {k}\u00d7{k} convolution."
        )
        self.formula_label.setText(
            "direct params: "
            + cmp.direct_params.formula
            + "\ndirect MACs:   "
            + cmp.direct_macs.formula
        )
        self.plot.clear()
        before = pg.BarGraphItem(
            x=[-0.18, 0.82], height=[100, 100], width=0.34, brush="#9db9d9", name="direct"
        )
        after = [100 * cmp.after_params / cmp.before_params, 100 * cmp.after_macs / cmp.before_macs]
        bars = pg.BarGraphItem(x=[0.18, 1.18], height=after, width=0.34, brush="#ffb347")
        self.plot.addItem(before)
        self.plot.addItem(bars)
        for x, v in zip((0.18, 1.18), after, strict=True):
            text = pg.TextItem(f"{v:.0f}%", anchor=(0.5, 1.0), color="k")
            text.setPos(x, v)
            self.plot.addItem(text)
        for x, label in ((-0.18, "direct"), (0.18, "1\u00d71 + K\u00d7K")):
            t = pg.TextItem(label, anchor=(0.5, 0.0), color="k")
            t.setPos(x, 0)
            self.plot.addItem(t)
        self.plot.setYRange(0, max(110, *after) * 1.08)
        self.plot.setXRange(-0.6, 1.6)

    def _set_row(
        self, r: int, name: str, params: int, macs: int, pf: str, mf: str, bold: bool = False
    ) -> None:
        for c, text in enumerate((name, f"{params:,}", f"{macs:,}")):
            item = QtWidgets.QTableWidgetItem(text)
            if c:
                item.setTextAlignment(
                    QtCore.Qt.AlignmentFlag.AlignRight | QtCore.Qt.AlignmentFlag.AlignVCenter
                )
            item.setToolTip({1: pf, 2: mf}.get(c, ""))
            if bold:
                font = item.font()
                font.setBold(True)
                item.setFont(font)
            self.table.setItem(r, c, item)
