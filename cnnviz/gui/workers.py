"""Work off the GUI thread: loading, inference, effective receptive fields, export, downloads.

A :class:`JobRunner` runs callables on a private ``QThreadPool`` and hands results back on the GUI thread through
queued signals. Jobs have a *kind* ("model", "run", "erf", ...): submitting a job supersedes the previous job of
the same kind -- it is taken off the queue if it has not started, asked to stop through its
:class:`CancelToken` if it has, and its result is dropped if it arrives anyway. So a slow, stale answer never
flashes over a newer one.

The default runner has a single thread for everything that touches a model: torch work on one module must not run
concurrently (capture switches modules to eval mode and back), and one worker keeps the GUI thread free on a
two-core machine. Downloads and file writes can use a second runner.
"""

from __future__ import annotations

import itertools
import sys
import threading
import time
import traceback
from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QCoreApplication, QDeadlineTimer, QObject, QRunnable, QThreadPool, Signal

from cnnviz.core.errors import CnnvizError, describe_error

# How long after a job's run() returned its pool thread has surely dropped its last reference to it.
RELEASE_AFTER_S = 1.0

__all__ = ["Cancelled", "CancelToken", "Job", "JobRunner", "describe_error"]


class Cancelled(BaseException):  # noqa: N818 - reads as "the job was cancelled"
    """Raised inside a job to stop it.

    A BaseException (like KeyboardInterrupt), so that ``except Exception`` handlers inside the core -- a download
    loop that turns network errors into a friendly message, for one -- let it through.
    """


class CancelToken:
    """Handed to every job: ``cancelled``/``check()`` to stop early, ``progress()`` to report.

    It also quacks like a ``threading.Event`` (``is_set``), so it can be passed straight to core functions that
    accept a cancel event.
    """

    def __init__(self) -> None:
        self._event = threading.Event()
        self._report: Callable[[int, int, str], None] | None = None

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()

    def is_set(self) -> bool:
        return self._event.is_set()

    def cancel(self) -> None:
        self._event.set()

    def check(self) -> None:
        """Raise :class:`Cancelled` if the job was cancelled."""
        if self._event.is_set():
            raise Cancelled

    def progress(self, done: int, total: int, text: str = "") -> None:
        """Report progress (thread-safe; delivered on the GUI thread) and stop here if cancelled."""
        self.check()
        if self._report is not None:
            self._report(int(done), int(total), text)


class _Signals(QObject):
    finished = Signal(object, object)  # job, result
    failed = Signal(object, object, str)  # job, exception, formatted traceback
    cancelled = Signal(object)  # job
    progressed = Signal(object, int, int, str)  # job, done, total, text


class Job(QRunnable):
    """One callable ``fn(token)`` run on a pool thread."""

    _ids = itertools.count(1)

    def __init__(self, kind: str, fn: Callable[[CancelToken], Any], label: str, signals: _Signals):
        super().__init__()
        self.setAutoDelete(False)
        self.id = next(self._ids)
        self.kind = kind
        self.fn = fn
        self.label = label
        self.token = CancelToken()
        self.signals = signals
        self.started = threading.Event()
        self.exited_at: float | None = (
            None  # when run() returned (monotonic), set on the pool thread
        )
        self.on_done: Callable[[Any], None] | None = None
        self.on_error: Callable[[BaseException], None] | None = None
        self.on_progress: Callable[[int, int, str], None] | None = None
        self.on_cancel: Callable[[], None] | None = None
        self.token._report = lambda done, total, text: self.signals.progressed.emit(
            self, done, total, text
        )

    def run(self) -> None:
        try:
            self._run()
        finally:
            self.exited_at = time.monotonic()

    def _run(self) -> None:
        self.started.set()
        if self.token.cancelled:
            self.signals.cancelled.emit(self)
            return
        try:
            result = self.fn(self.token)
        except Cancelled:
            self.signals.cancelled.emit(self)
        except BaseException as exc:  # noqa: BLE001 - every failure goes back to the GUI thread
            self.signals.failed.emit(self, exc, traceback.format_exc())
        else:
            self.signals.finished.emit(self, result)

    def __repr__(self) -> str:
        return f"<Job {self.id} {self.kind}: {self.label}>"


class JobRunner(QObject):
    """Runs jobs on a private thread pool; results come back on the GUI thread.

    ``busyChanged(busy, label)`` follows whether any job is queued or running; ``progressChanged(done, total,
    text)`` forwards the newest progress report (total 0 = unknown); ``failed(kind, message)`` reports errors of
    jobs submitted without an ``on_error`` handler.
    """

    busyChanged = Signal(bool, str)
    progressChanged = Signal(int, int, str)
    failed = Signal(str, str)

    def __init__(self, parent: QObject | None = None, threads: int = 1):
        super().__init__(parent)
        self._pool = QThreadPool(self)
        self._pool.setMaxThreadCount(max(1, threads))
        self._active: dict[int, Job] = {}
        self._latest: dict[str, Job] = {}
        # Retired jobs, kept until their pool thread has surely let go of them: a job's callbacks may hold the
        # last reference to a widget, and a widget freed on a pool thread deadlocks against the GUI thread.
        self._retired: list[Job] = []
        self._busy = False

    # -- submitting ------------------------------------------------------------------------------------------------
    def submit(
        self,
        kind: str,
        fn: Callable[[CancelToken], Any],
        *,
        on_done: Callable[[Any], None] | None = None,
        on_error: Callable[[BaseException], None] | None = None,
        on_progress: Callable[[int, int, str], None] | None = None,
        on_cancel: Callable[[], None] | None = None,
        label: str = "",
    ) -> Job:
        """Queue ``fn(token)``; it supersedes any earlier job of the same ``kind``."""
        self.cancel(kind)
        self._release_retired()
        signals = _Signals()
        signals.finished.connect(self._finished)
        signals.failed.connect(self._failed)
        signals.cancelled.connect(self._cancelled)
        signals.progressed.connect(self._progressed)
        job = Job(kind, fn, label or kind, signals)
        job.on_done, job.on_error, job.on_progress, job.on_cancel = (
            on_done,
            on_error,
            on_progress,
            on_cancel,
        )
        self._active[job.id] = job
        self._latest[kind] = job
        self._update_busy()
        self._pool.start(job)
        return job

    def cancel(self, kind: str) -> None:
        """Cancel the current job of ``kind`` (queued: removed; running: asked to stop; its result is dropped)."""
        job = self._latest.pop(kind, None)
        if job is None:
            return
        job.token.cancel()
        if not job.started.is_set() and self._pool.tryTake(job):
            self._active.pop(job.id, None)
            self._update_busy()

    def cancel_all(self) -> None:
        for kind in list(self._latest):
            self.cancel(kind)

    def current(self, kind: str) -> Job | None:
        """The job of ``kind`` whose result will be delivered, if any."""
        return self._latest.get(kind)

    @property
    def busy(self) -> bool:
        return bool(self._active)

    @property
    def label(self) -> str:
        """The label of the newest job queued or running; "" when idle."""
        if not self._active:
            return ""
        return max(self._active.values(), key=lambda j: j.id).label

    def wait(self, timeout_ms: int = 30000) -> bool:
        """Block until every job has finished and its result was delivered (for tests and shutdown)."""
        deadline = QDeadlineTimer(timeout_ms)
        while self._active:
            if deadline.hasExpired():
                return False
            self._pool.waitForDone(20)
            QCoreApplication.processEvents()
        return True

    def shutdown(self, timeout_ms: int = 5000) -> bool:
        """Cancel everything and wait for running jobs (torch calls cannot be interrupted midway)."""
        self.cancel_all()
        self._pool.clear()
        done = self._pool.waitForDone(timeout_ms)
        self._active.clear()
        if done:
            self._retired.clear()
        self._update_busy()
        return done

    # -- results, on the GUI thread --------------------------------------------------------------------------------
    def _current(self, job: Job) -> bool:
        return self._latest.get(job.kind) is job and not job.token.cancelled

    def _release_retired(self) -> None:
        """Drop the retired jobs whose run() returned a while ago, here on the GUI thread."""
        now = time.monotonic()
        kept: list[Job] = []
        for job in self._retired:
            if job.exited_at is None or now - job.exited_at < RELEASE_AFTER_S:
                kept.append(job)
            else:
                # Free what the callbacks hold here, and break the job <-> token cycle, so that no garbage
                # collection on a pool thread frees a widget later.
                job.fn = job.on_done = job.on_error = job.on_progress = job.on_cancel = None  # type: ignore[assignment]
                job.token._report = None
        self._retired = kept

    def _retire(self, job: Job) -> bool:
        current = self._current(job)
        self._release_retired()
        self._retired.append(job)
        self._active.pop(job.id, None)
        if self._latest.get(job.kind) is job:
            del self._latest[job.kind]
        self._update_busy()
        job.signals.deleteLater()
        return current

    def _finished(self, job: Job, result: Any) -> None:
        if self._retire(job) and job.on_done is not None:
            job.on_done(result)

    def _failed(self, job: Job, exc: BaseException, tb: str) -> None:
        if not self._retire(job):
            return
        if not isinstance(exc, CnnvizError):
            # A bug, not a user error: keep the traceback where a developer will look for it.
            print(f"cnnviz: {job.label} failed:\n{tb}", file=sys.stderr)
        if job.on_error is not None:
            job.on_error(exc)
        else:
            self.failed.emit(job.kind, describe_error(exc))

    def _cancelled(self, job: Job) -> None:
        current = self._latest.get(job.kind) is job
        self._retire(job)
        if current and job.on_cancel is not None:
            job.on_cancel()

    def _progressed(self, job: Job, done: int, total: int, text: str) -> None:
        if not self._current(job):
            return
        if job.on_progress is not None:
            job.on_progress(done, total, text)
        self.progressChanged.emit(done, total, text)

    def _update_busy(self) -> None:
        busy = bool(self._active)
        if busy != self._busy or busy:
            self._busy = busy
            self.busyChanged.emit(busy, self.label)
