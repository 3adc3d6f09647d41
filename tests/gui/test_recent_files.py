"""Recent files survive paths that cannot be resolved: symlink loops, vanished or odd files."""

from __future__ import annotations

import os

from PIL import Image


def _loop(tmp_path):
    first, second = tmp_path / "a.png", tmp_path / "b.png"
    first.symlink_to(second)
    second.symlink_to(first)
    return first


def test_recent_path_keeps_a_symlink_loop_as_given(tmp_path):
    from cnnviz.gui.settings import recent_path, recent_problem

    loop = _loop(tmp_path)
    assert recent_path(loop) == str(loop)
    assert "symlink loop" in (recent_problem(str(loop)) or "")
    real = tmp_path / "real.png"
    Image.new("L", (2, 2)).save(real)
    link = tmp_path / "link.png"
    link.symlink_to(real)
    assert recent_path(link) == str(real)
    assert recent_problem(str(link)) is None
    assert recent_problem(str(tmp_path / "gone.png")) == "does not exist"
    assert recent_path("~") == os.path.expanduser("~")


def test_damaged_recent_entries_are_dropped(gui_prefs):
    gui_prefs.set("recentImages", ["/a.png", "", "/b\0.png", "/c.png"])
    assert gui_prefs.recent("recentImages") == ["/a.png", "/c.png"]


def test_window_survives_a_symlink_loop_and_drops_it_from_recent(gui_window, tmp_path, monkeypatch):
    monkeypatch.setenv("CNNVIZ_NO_DIALOGS", "1")
    loop = _loop(tmp_path)
    gui_window.open_image_path(str(loop))  # Path.resolve() raised RuntimeError here
    assert str(loop) in gui_window.prefs.recent("recentImages")
    gui_window._open_recent("recentImages", str(loop), gui_window.open_image_path)
    assert str(loop) not in gui_window.prefs.recent("recentImages")
    title, message = gui_window.last_error
    assert "symlink loop" in message and str(loop) in message
    gui_window._fill_recent(gui_window.recent_images_menu, "recentImages")
