"""JobRunner: results on the GUI thread, supersede (no stale result), cancel, progress, errors."""

from __future__ import annotations

import threading
import time

import pytest
from PySide6.QtCore import QThread

from cnnviz.core.errors import CnnvizError
from cnnviz.gui.workers import Cancelled, JobRunner, describe_error


@pytest.fixture
def runner(qapp):
    r = JobRunner(threads=1)
    yield r
    r.shutdown()


def test_result_arrives_on_the_gui_thread(runner):
    seen = []
    runner.submit("a", lambda token: QThread.currentThread(), on_done=seen.append)
    assert runner.wait(5000)
    assert seen and seen[0] is not QThread.currentThread()  # computed elsewhere...
    got = []
    runner.submit("a", lambda token: 1, on_done=lambda v: got.append(QThread.currentThread()))
    runner.wait(5000)
    assert got == [QThread.currentThread()]  # ...delivered here


def test_newer_job_supersedes_older(runner):
    release = threading.Event()
    results = []

    def slow(token):
        release.wait(5)
        return "old"

    runner.submit("run", slow, on_done=results.append)
    time.sleep(0.05)  # let it start
    queued = runner.submit("run", lambda token: "queued", on_done=results.append)
    newest = runner.submit("run", lambda token: "new", on_done=results.append)
    assert queued.token.cancelled and not newest.token.cancelled
    release.set()
    assert runner.wait(5000)
    assert results == ["new"]
    assert not runner.busy


def test_other_kinds_are_not_superseded(runner):
    results = []
    runner.submit("a", lambda token: "a", on_done=results.append)
    runner.submit("b", lambda token: "b", on_done=results.append)
    runner.wait(5000)
    assert sorted(results) == ["a", "b"]


def test_cancel_stops_a_running_job_through_its_token(runner):
    started = threading.Event()
    cancelled = []

    def loop(token):
        started.set()
        while True:
            token.check()
            time.sleep(0.005)

    runner.submit(
        "dl",
        loop,
        on_done=lambda v: pytest.fail("no result expected"),
        on_cancel=lambda: cancelled.append(1),
    )
    assert started.wait(5)
    runner.cancel("dl")
    assert runner.wait(5000)
    assert not runner.busy


def test_progress_and_busy_signals(runner, qtbot):
    busy, progress = [], []
    runner.busyChanged.connect(lambda b, label: busy.append((b, label)))
    runner.progressChanged.connect(lambda d, t, text: progress.append((d, t, text)))

    def work(token):
        for i in range(3):
            token.progress(i + 1, 3, "step")
        return "done"

    runner.submit("p", work, label="Working")
    runner.wait(5000)
    assert busy[0] == (True, "Working") and busy[-1][0] is False
    assert progress == [(1, 3, "step"), (2, 3, "step"), (3, 3, "step")]


def test_errors_come_back_as_one_line(runner, capsys):
    errors = []
    runner.submit(
        "e",
        lambda token: (_ for _ in ()).throw(CnnvizError("the file is\n broken")),
        on_error=errors.append,
    )
    runner.wait(5000)
    assert describe_error(errors[0]) == "the file is broken"
    reported = []
    runner.failed.connect(lambda kind, msg: reported.append((kind, msg)))
    runner.submit("bug", lambda token: 1 / 0)
    runner.wait(5000)
    assert reported == [("bug", "unexpected ZeroDivisionError: division by zero")]
    assert "Traceback" in capsys.readouterr().err  # bugs keep their traceback for developers


def test_cancelled_is_not_an_exception_subclass():
    # So `except Exception` in core code (download loops) lets a cancel through.
    assert not issubclass(Cancelled, Exception)
