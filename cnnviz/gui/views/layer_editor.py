"""Temporary: the old path of the layer editor dock; imports move to cnnviz.gui.tools.editor."""

from cnnviz.gui.tools.editor import ERROR_BG, NEW_BG, LayerEditorDock, LiveTableModel, PairEdit

__all__ = ["ERROR_BG", "NEW_BG", "LayerEditorDock", "LiveTableModel", "PairEdit"]
