"""Help pages: Getting started, and the keyboard shortcuts read from the window's own actions (never a copy)."""

from __future__ import annotations

import html
from typing import TYPE_CHECKING

from PySide6.QtCore import QObject
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QDockWidget,
    QTextBrowser,
    QVBoxLayout,
    QWidget,
)

if TYPE_CHECKING:
    from cnnviz.gui.main_window import MainWindow

__all__ = ["GETTING_STARTED", "HelpDialog", "shortcut_rows", "shortcuts_html", "show_help"]

GETTING_STARTED = """
<h2>Getting started</h2>
<p>cnnviz shows what each layer of a convolutional network computes, and which pixels of your picture
each of its units sees.</p>
<ol>
<li><b>Open a picture</b>: File › Open Image (Ctrl+O), drop a file on the window, paste one (Ctrl+V) or
pick one of File › Samples. The left pane shows it as you gave it; <i>Show Model Input</i> (I) shows it as
the network receives it.</li>
<li><b>Pick a layer</b> in the <i>Layers</i> list on the left. The middle pane shows that layer's feature
maps, one tile per channel.</li>
<li><b>Click a unit</b> in a feature map. Its receptive field is drawn on the picture: the pixels that
unit can see. The arrow keys move the unit; the status bar gives the field's size <i>r</i>, stride
<i>S</i> and padding <i>P</i>. <i>Effective Receptive Field</i> (E) shows which of those pixels matter
most.</li>
<li><b>Read the table</b> at the bottom: every layer's output shape, parameters, MACs and receptive
field. Click a row to show that layer.</li>
<li><b>Try the tools</b>: Tools › Layer Editor (Ctrl+E) changes the network and shows what each change
does to the shapes; Training (Ctrl+T) trains it on digits or your own folder of pictures; the Convolution
Lab (Ctrl+L) explains convolution, stride, padding, pooling and receptive fields step by step.</li>
<li><b>Look over a folder</b>: File › Open Folder… (Ctrl+Shift+F) runs every picture of a folder through
the model up to the selected layer, and the <i>Top pictures</i> panel (Tools › Top Pictures, Ctrl+P) shows,
per channel, the crops where it responds most, each the receptive field of its unit in its picture. Click a
crop to open that picture with the unit selected.</li>
</ol>
<p>Other models: Model › Model Zoo (Ctrl+M) for torchvision networks, File › Open Model for your own
files. File › Export saves the maps, the overlays and the table.</p>
"""


def _label(action: QAction) -> str:
    # "&Open Image…" is shown as "Open Image…"; "&&" is a literal ampersand.
    return action.text().replace("&&", "\0").replace("&", "").replace("\0", "&")


def _section(window: QWidget, action: QAction) -> str:
    """Where an action's keys work: the panel or window that owns it, else the main window."""
    node = action.parent()
    while isinstance(node, QObject) and node is not window:
        if isinstance(node, QWidget) and (node.isWindow() or isinstance(node, QDockWidget)):
            return node.windowTitle().split(" — ")[0] or "Main window"
        node = node.parent()
    return "Main window"


def shortcut_rows(window: QWidget, *others: QWidget) -> list[tuple[str, str, str]]:
    """(where, what, keys) for every action with a shortcut of ``window``, the other windows given (such as
    the lab's) and their children; the main window's first, then each panel's, by name."""
    rows: set[tuple[str, str, str]] = set()
    actions = [
        a for root in (window, *others) for a in (*root.actions(), *root.findChildren(QAction))
    ]
    for action in actions:
        keys: list[str] = []
        for key in action.shortcuts():
            text = key.toString(QKeySequence.SequenceFormat.NativeText)
            if text and text not in keys:
                keys.append(text)
        label = _label(action)
        if keys and label:
            rows.add((_section(window, action), label, ", ".join(keys)))
    return sorted(rows, key=lambda r: (r[0] != "Main window", r[0].lower(), r[1].lower(), r[2]))


def shortcuts_html(window: QWidget, *others: QWidget) -> str:
    """The keyboard shortcuts page as HTML: a two-column table per panel."""
    parts = ["<h2>Keyboard shortcuts</h2>"]
    section = None
    for where, what, keys in shortcut_rows(window, *others):
        if where != section:
            if section is not None:
                parts.append("</table>")
            parts.append(f"<h3>{html.escape(where)}</h3><table cellspacing='3'>")
            section = where
        parts.append(
            f"<tr><td width='220'>{html.escape(what)}</td><td><b>{html.escape(keys)}</b></td></tr>"
        )
    if section is not None:
        parts.append("</table>")
    parts.append("<p>In the feature maps, the arrow keys move the selected unit.</p>")
    return "".join(parts)


class HelpDialog(QDialog):
    """A non-modal page of help (rich text, links open in the browser)."""

    def __init__(self, parent: QWidget, title: str, page: str) -> None:
        super().__init__(parent)
        self.setWindowTitle(title)
        self.browser = QTextBrowser()
        self.browser.setOpenExternalLinks(True)
        self.browser.setHtml(page)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(self.close)
        layout = QVBoxLayout(self)
        layout.addWidget(self.browser)
        layout.addWidget(buttons)
        self.resize(580, 640)


def show_help(window: MainWindow, page: str) -> HelpDialog:
    """Show ``page`` ("getting_started" or "shortcuts") in a non-modal dialog, reusing one already open."""
    title, text = (
        ("Getting started", GETTING_STARTED)
        if page == "getting_started"
        else ("Keyboard shortcuts", shortcuts_html(window, window.lab_window))
    )
    dialog = window.help_dialogs.get(page)
    if dialog is None:
        dialog = window.help_dialogs[page] = HelpDialog(window, title, text)
    else:
        dialog.browser.setHtml(text)
    dialog.show()
    dialog.raise_()
    dialog.activateWindow()
    return dialog
