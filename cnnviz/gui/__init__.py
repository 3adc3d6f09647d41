"""The desktop app (PySide6 + pyqtgraph). Start it with ``cnnviz`` or :func:`cnnviz.gui.app.main`."""
