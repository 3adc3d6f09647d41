"""The layer editor dock: change a model's layers and watch shapes, parameters, MACs and receptive fields follow.

``model`` holds the live table's Qt model and colours, ``widgets`` the argument editors, ``form`` the form of
the selected layer and ``dock`` the dock itself with its toolbar, undo stack and the background Apply.
"""

from cnnviz.gui.tools.editor.dock import LayerEditorDock
from cnnviz.gui.tools.editor.model import ERROR_BG, NEW_BG, LiveTableModel
from cnnviz.gui.tools.editor.widgets import PairEdit

__all__ = ["ERROR_BG", "NEW_BG", "LayerEditorDock", "LiveTableModel", "PairEdit"]
