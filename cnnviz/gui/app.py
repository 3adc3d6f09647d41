"""Start the desktop app: QApplication set-up, pyqtgraph options, the main window."""

from __future__ import annotations

import argparse
import os
import signal
import sys
from collections.abc import Sequence
from typing import Any

from cnnviz.core.errors import CnnvizError

__all__ = ["create_app", "create_window", "main", "run"]


def check_display() -> None:
    """Fail with a sentence, not a Qt abort, when there is no screen to open a window on."""
    if not sys.platform.startswith("linux"):
        return
    if (
        os.environ.get("QT_QPA_PLATFORM")
        or os.environ.get("DISPLAY")
        or os.environ.get("WAYLAND_DISPLAY")
    ):
        return
    raise CnnvizError(
        "no display found (neither DISPLAY nor WAYLAND_DISPLAY is set), so the window cannot open; run cnnviz "
        "on a desktop, or use the command-line tools (cnnviz summary, rf, export ...)"
    )


_collector: Any = None


def collect_garbage_on_gui_thread() -> None:
    """Run Python's cyclic garbage collection on a GUI-thread timer only (once per process).

    An automatic collection runs on whichever thread happens to allocate; on a worker thread it may free a widget
    left in a reference cycle, and Qt then deadlocks against the GUI thread. pyqtgraph's collector disables the
    automatic one and collects from a one-second timer instead.
    """
    global _collector
    if _collector is None:
        from pyqtgraph.util.garbage_collector import GarbageCollector

        _collector = GarbageCollector(interval=1.0)


def create_app(argv: Sequence[str] | None = None) -> Any:
    """The QApplication (created once), with cnnviz's names and pyqtgraph's row-major image order."""
    import pyqtgraph as pg
    from PySide6.QtGui import QGuiApplication
    from PySide6.QtWidgets import QApplication

    pg.setConfigOptions(imageAxisOrder="row-major", antialias=False)
    app = QApplication.instance()
    if app is None:
        app = QApplication([sys.argv[0] if sys.argv else "cnnviz", *(argv or [])])
    app.setApplicationName("cnnviz")
    app.setOrganizationName("cnnviz")
    collect_garbage_on_gui_thread()
    if isinstance(app, QGuiApplication):
        from cnnviz.gui.icons import app_icon

        app.setDesktopFileName("cnnviz")
        icon = app_icon()
        if icon is not None:
            app.setWindowIcon(
                icon
            )  # every window and dialog, from the same source as the desktop entry
    return app


def configure_threads() -> int:
    """Leave one core to the interface: torch's intra-op threads = cores - 1 (at least 1). Returns the count."""
    import torch

    threads = max(1, (os.cpu_count() or 2) - 1)
    torch.set_num_threads(threads)
    return threads


def create_window(preferences: Any = None) -> Any:
    """A new main window (call :func:`create_app` first)."""
    from cnnviz.gui.main_window import MainWindow

    return MainWindow(preferences=preferences)


def run(
    model: str | None = None,
    weights: Any = "default",
    image: str | None = None,
    trust: bool = False,
    quit_after_ms: int | None = None,
) -> int:
    """Open the window with ``model`` (default: the bundled digits model) and ``image``; returns the exit code.

    ``quit_after_ms`` closes the window that long after it is shown (start-up timing, smoke tests).
    """
    check_display()
    if image is not None and not os.path.exists(image):
        raise CnnvizError(f"image {image} does not exist: check the path")
    app = create_app()
    configure_threads()
    window = create_window()
    window.show()
    window.start(model, weights, image, trust)
    # Ctrl+C in the terminal closes the window cleanly instead of being swallowed by Qt's event loop.
    signal.signal(signal.SIGINT, lambda *_: window.close())
    from PySide6.QtCore import QTimer

    timer = QTimer()
    timer.start(250)
    timer.timeout.connect(lambda: None)
    if quit_after_ms is not None:
        QTimer.singleShot(max(0, int(quit_after_ms)), window.close)
    code = app.exec()
    return int(code)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="cnnviz gui", description="Open the cnnviz window.")
    add_arguments(parser)
    return parser


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", default=None, metavar="SPEC",
                        help="'default' (bundled digits model), a torchvision name (resnet18 ...) or a model file")  # fmt: skip
    parser.add_argument("--weights", default="default", metavar="W",
                        help="'default' (pretrained, downloaded when online), 'none' (random) or a state_dict file")  # fmt: skip
    parser.add_argument(
        "--image", default=None, metavar="PATH", help="picture to open (default: a sample)"
    )
    parser.add_argument(
        "image_file",
        nargs="?",
        default=None,
        metavar="IMAGE",
        help="picture to open (same as --image)",
    )
    parser.add_argument("--quit-after", type=int, default=None, metavar="MS",
                        help="close the window MS milliseconds after it opens (start-up timing)")  # fmt: skip
    parser.add_argument("--trust", action="store_true",
                        help="allow model files that need full unpickling (they can run arbitrary code)")  # fmt: skip


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m cnnviz.gui.app [--model ...]``: the same as ``cnnviz gui``."""
    args = build_parser().parse_args(argv)
    try:
        return run(
            args.model, args.weights, args.image or args.image_file, args.trust, args.quit_after
        )
    except CnnvizError as exc:
        print(f"cnnviz: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
