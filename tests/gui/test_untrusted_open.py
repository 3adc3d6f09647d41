"""Opening a hostile torch.export archive in the app asks for trust first and runs nothing until then."""

from __future__ import annotations

from gui_helpers import wait_idle
from hostile import hostile_archive, tiny_program


def test_hostile_archive_asks_before_running_anything(gui_window, tmp_path):
    program = tmp_path / "ok.pt2"
    tiny_program(program)
    marker = tmp_path / "marker"
    path = hostile_archive("sample_inputs", program, tmp_path / "evil.pt2", marker)
    asked: list[str] = []
    gui_window.session.trustRequested.connect(lambda spec, weights, message: asked.append(message))
    gui_window.load_model(str(path))
    wait_idle(gui_window)
    assert asked and "arbitrary code" in asked[0] and "sample_inputs" in asked[0]
    assert gui_window.session.model is None
    assert not marker.exists()


def test_plain_archive_opens_in_the_app_without_asking(gui_window, tmp_path):
    program = tmp_path / "ok.pt2"
    tiny_program(program)
    asked: list[str] = []
    gui_window.session.trustRequested.connect(lambda spec, weights, message: asked.append(message))
    gui_window.load_model(str(program))
    wait_idle(gui_window)
    assert not asked
    assert gui_window.session.model is not None and gui_window.session.model.source == "export"
