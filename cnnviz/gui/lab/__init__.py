"""The convolution lab: eight short, playable lessons on what a convolutional layer computes.

Every number shown comes from :mod:`cnnviz.core.lab` (torch's own operators); this package only lays out
controls and draws, one module per lesson, on the shared page of ``base`` and the widgets of ``widgets``. The
widget is self-contained: give it a picture with :meth:`ConvolutionLab.set_image` and the current model's table
with :meth:`ConvolutionLab.set_model_summary`; without them it uses a built-in sample picture and demo networks.
"""

from cnnviz.gui.lab.playground import DEFAULT_GRID
from cnnviz.gui.lab.widgets import C_CHOSEN, C_COVERED, C_CURRENT, C_DONE, C_TINT, C_WINDOW
from cnnviz.gui.lab.window import ConvolutionLab, LabWindow

__all__ = [
    "C_CHOSEN",
    "C_COVERED",
    "C_CURRENT",
    "C_DONE",
    "C_TINT",
    "C_WINDOW",
    "DEFAULT_GRID",
    "ConvolutionLab",
    "LabWindow",
]
