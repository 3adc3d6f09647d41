"""The top-5 predictions as labelled probability bars."""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QGridLayout, QLabel, QProgressBar, QSizePolicy, QVBoxLayout, QWidget

__all__ = ["PredictionPanel"]


class PredictionPanel(QWidget):
    """Shows a list of :class:`cnnviz.core.analysis.predict.Prediction` (label, index, probability), best first."""

    ROWS = 5

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.predictions: list[Any] = []
        self.note = QLabel("No prediction yet")
        self.note.setWordWrap(True)
        self.note.setTextFormat(Qt.TextFormat.PlainText)
        grid = QGridLayout()
        grid.setContentsMargins(0, 0, 0, 0)
        grid.setHorizontalSpacing(8)
        grid.setVerticalSpacing(4)
        self.labels: list[QLabel] = []
        self.bars: list[QProgressBar] = []
        for i in range(self.ROWS):
            label = QLabel()
            label.setTextFormat(Qt.TextFormat.PlainText)
            label.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
            label.setMinimumWidth(90)
            bar = QProgressBar()
            bar.setRange(0, 1000)
            bar.setTextVisible(True)
            bar.setFixedHeight(18)
            if i == 0:
                font = label.font()
                font.setBold(True)
                label.setFont(font)
            grid.addWidget(label, i, 0)
            grid.addWidget(bar, i, 1)
            self.labels.append(label)
            self.bars.append(bar)
        grid.setColumnStretch(0, 3)
        grid.setColumnStretch(1, 2)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(6, 4, 6, 4)
        layout.addWidget(self.note)
        layout.addLayout(grid)
        layout.addStretch(1)
        self.set_predictions(None, "No prediction yet")

    def set_predictions(self, predictions: list[Any] | None, note: str | None = None) -> None:
        self.predictions = list(predictions or [])
        for i in range(self.ROWS):
            visible = i < len(self.predictions)
            self.labels[i].setVisible(visible)
            self.bars[i].setVisible(visible)
            if visible:
                p = self.predictions[i]
                self.labels[i].setText(p.label)
                self.labels[i].setToolTip(f"{p.label} (output {p.index})")
                self.bars[i].setValue(int(round(p.probability * 1000)))
                self.bars[i].setFormat(f"{p.probability * 100:.1f} %")
        if self.predictions:
            self.note.setText(note or "Most likely classes")
        else:
            self.note.setText(note or "No prediction yet")

    def texts(self) -> list[tuple[str, str]]:
        """(label, percentage) of the visible rows, for tests."""
        return [
            (self.labels[i].text(), self.bars[i].format())
            for i in range(len(self.predictions[: self.ROWS]))
        ]
