"""Helpers shared by the app's tests (a module with a unique name, so it never collides with other conftests)."""

from __future__ import annotations


def wait_idle(window, timeout_ms: int = 120_000) -> None:
    """Wait until the window's background work is done and its results are shown."""
    assert window.session.runner.wait(timeout_ms), "background work did not finish"
    assert window.io_runner.wait(timeout_ms), "background export did not finish"
    assert window.feature_view.wait_rendered(timeout_ms), "the feature maps were not drawn"
