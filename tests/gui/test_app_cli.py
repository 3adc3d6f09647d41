"""Starting the app from the command line: help, missing display, bad arguments."""

from __future__ import annotations

import pytest

from cnnviz.cli import main


def test_gui_help(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["gui", "--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    for option in ("--model", "--weights", "--image", "--trust"):
        assert option in out


def test_no_display_is_a_sentence_not_a_crash(monkeypatch, capsys):
    for name in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr("sys.platform", "linux")
    assert main([]) == 2  # no command: the window, which cannot open here
    err = capsys.readouterr().err
    assert err.startswith("cnnviz: error: no display found") and err.count("\n") == 1


def test_missing_image_is_reported_before_the_window_opens(capsys, tmp_path):
    assert main(["gui", "--image", str(tmp_path / "nope.png")]) == 2
    assert "nope.png does not exist" in capsys.readouterr().err
