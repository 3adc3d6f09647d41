"""Running fuzz cases in a worker process with a deadline and a memory cap, and the property they must keep.

The property (the same for every surface):

* Python API: the call returns, or raises a ``CnnvizError`` whose message is one line of plain words;
* CLI: exit status 0, or 2 with exactly one stderr line starting ``cnnviz: error:`` (``predict`` prints one
  such line per unreadable picture); argparse's own usage errors (status 2, ``usage:`` then
  ``cnnviz CMD: error: ...``) are accepted as they are; never a traceback;
* every case ends within its deadline, inside the worker's address-space cap, and no payload marker file
  appears.
"""

from __future__ import annotations

import os
import pickle
import re
import select
import signal
import struct
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

CHILD = Path(__file__).with_name("fuzz_child.py")
REPO = Path(__file__).resolve().parents[2]
MEMORY_CAP = 3 * 1024**3
"""Address space a case may add on top of what the worker maps after importing torch and cnnviz."""
DEFAULT_DEADLINE = 30.0

# Text that only torch, PIL or the interpreter write: a user-facing message must not carry it.
RAW_TEXT = re.compile(
    r"enforce fail|alloc_cpu\.cpp|\.cpp:\d|DefaultCPUAllocator|Traceback|PytorchStreamReader|"
    r"_pickle\.|UnpicklingError|WeightsUnpickler|File \"/|line \d+, in "
)
ARGPARSE_ERROR = re.compile(r"^cnnviz(?: [a-z]+)?: error: ")


@dataclass
class Outcome:
    """What one case did, as the worker reported it (or as the parent saw it die)."""

    case: str
    status: str  # ok | exit | cnnviz_error | other | hang | died
    rc: int | None = None
    type: str | None = None
    message: str | None = None
    tb: str | None = None
    stdout: str = ""
    stderr: str = ""
    seconds: float = 0.0
    maxrss_kb: int = 0

    def brief(self) -> str:
        parts = [f"{self.case}: {self.status}"]
        if self.rc is not None:
            parts.append(f"rc={self.rc}")
        if self.type:
            parts.append(self.type)
        if self.message:
            parts.append(repr(self.message[:300]))
        if self.stderr:
            parts.append(f"stderr={self.stderr[-600:]!r}")
        if self.tb:
            parts.append("\n" + self.tb)
        return " ".join(parts)


@dataclass
class PeakRecord:
    """Worst resident size seen per category of cases, and the case that first reached it."""

    peaks: dict[str, dict[str, Any]] = field(default_factory=dict)
    cases: dict[str, int] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    slowest: list[tuple[float, str]] = field(default_factory=list)

    def count(self, category: str, seconds: float = 0.0) -> None:
        """Count a case run in the test process itself (no worker, so no memory figure)."""
        self.cases[category] = self.cases.get(category, 0) + 1
        self.seconds[category] = self.seconds.get(category, 0.0) + seconds

    def note(self, category: str, outcome: Outcome, baseline_kb: int) -> None:
        self.count(category, outcome.seconds or 0.0)
        self.slowest = sorted([*self.slowest, (outcome.seconds or 0.0, outcome.case)])[-8:]
        entry = self.peaks.setdefault(
            category, {"peak_rss_kb": 0, "baseline_rss_kb": baseline_kb, "case": None}
        )
        if outcome.maxrss_kb > entry["peak_rss_kb"]:
            entry.update(peak_rss_kb=outcome.maxrss_kb, case=outcome.case)
        entry["baseline_rss_kb"] = max(entry["baseline_rss_kb"], baseline_kb)


PEAKS = PeakRecord()


class Worker:
    """A long-lived worker process for one category of cases; restarted after a hang or a crash."""

    def __init__(self, category: str, log_dir: Path, memory_cap: int = MEMORY_CAP) -> None:
        self.category = category
        self.log_dir = log_dir
        self.memory_cap = memory_cap
        self.proc: subprocess.Popen[bytes] | None = None
        self.baseline_kb = 0
        self.starts = 0

    # -- process ---------------------------------------------------------------------------------
    def _start(self) -> None:
        job_r, job_w = os.pipe()
        res_r, res_w = os.pipe()
        self.starts += 1
        self.log = self.log_dir / f"worker-{self.category}-{self.starts}.log"
        env = dict(os.environ, QT_QPA_PLATFORM="offscreen", PYTHONPATH=str(REPO))
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen(
                [sys.executable, str(CHILD), str(job_r), str(res_w), str(self.memory_cap)],
                pass_fds=(job_r, res_w),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                cwd=str(self.log_dir),
                env=env,
            )
        os.close(job_r)
        os.close(res_w)
        self.job_w, self.res_r = job_w, res_r
        ready = self._receive(120.0)
        if not isinstance(ready, dict) or not ready.get("ready"):
            raise RuntimeError(f"fuzz worker did not start: {self._log_tail()}")
        self.baseline_kb = int(ready["baseline_rss_kb"])

    def close(self) -> None:
        if self.proc is None:
            return
        for fd in (self.job_w, self.res_r):
            try:
                os.close(fd)
            except OSError:
                pass
        try:
            self.proc.wait(timeout=1)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.proc = None

    def _kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.close()

    def _log_tail(self) -> str:
        try:
            return self.log.read_text(errors="replace")[-1500:]
        except OSError:
            return ""

    # -- framing ---------------------------------------------------------------------------------
    def _send(self, obj: Any) -> None:
        body = pickle.dumps(obj)
        data = struct.pack("<Q", len(body)) + body
        while data:
            data = data[os.write(self.job_w, data) :]

    def _receive(self, timeout: float) -> Any:
        deadline = time.monotonic() + timeout
        buf = b""
        need = 8
        size: int | None = None
        while True:
            while len(buf) < need:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError
                ready, _, _ = select.select([self.res_r], [], [], left)
                if not ready:
                    raise TimeoutError
                chunk = os.read(self.res_r, 1 << 20)
                if not chunk:
                    raise EOFError
                buf += chunk
            if size is None:
                (size,) = struct.unpack("<Q", buf[:8])
                buf = buf[8:]
                need = size
                continue
            return pickle.loads(buf[:size])

    # -- cases -----------------------------------------------------------------------------------
    def run(self, case: str, job: dict[str, Any], deadline: float = DEFAULT_DEADLINE) -> Outcome:
        """Run one job; a hang past ``deadline`` seconds or a dead worker becomes an Outcome too."""
        if self.proc is None:
            self._start()
        start = time.monotonic()
        try:
            self._send(job)
            result = self._receive(deadline)
            result["seconds"] = time.monotonic() - start
        except TimeoutError:
            self._kill()
            outcome = Outcome(case, "hang", seconds=time.monotonic() - start)
            outcome.message = f"no result after {deadline:.0f} s"
        except (EOFError, BrokenPipeError):
            assert self.proc is not None
            code = self.proc.wait()
            tail = self._log_tail()
            self.close()
            outcome = Outcome(case, "died", rc=code, seconds=time.monotonic() - start)
            outcome.message = f"worker exited with {code}: {tail[-800:]}"
        else:
            fields = {k: result.get(k) for k in ("rc", "type", "message", "tb", "seconds")}
            outcome = Outcome(
                case,
                result["status"],
                stdout=result.get("stdout") or "",
                stderr=result.get("stderr") or "",
                maxrss_kb=int(result.get("maxrss_kb") or 0),
                **fields,
            )
        PEAKS.note(self.category, outcome, self.baseline_kb)
        return outcome


# ---------------------------------------------------------------------------------------------
# The property


def api_problem(outcome: Outcome) -> str | None:
    """Why an API call broke the property, or None when it kept it."""
    if outcome.status == "ok":
        return None
    if outcome.status != "cnnviz_error":
        return outcome.brief()
    return message_problem(outcome)


def message_problem(outcome: Outcome) -> str | None:
    message = outcome.message or ""
    if not message.strip():
        return f"{outcome.case}: empty error message ({outcome.type})"
    if "\n" in message:
        return f"{outcome.case}: error message has several lines: {message[:300]!r}"
    if RAW_TEXT.search(message):
        return f"{outcome.case}: raw library text in the message: {message[:300]!r}"
    return None


def cli_problem(outcome: Outcome, max_error_lines: int = 1) -> str | None:
    """Why a CLI run broke the property, or None when it kept it."""
    if outcome.status not in ("ok", "exit"):
        return outcome.brief()
    text = outcome.stderr + outcome.stdout
    if "Traceback" in text:
        return f"{outcome.case}: traceback printed: {outcome.brief()}"
    rc = outcome.rc
    lines = [line for line in outcome.stderr.splitlines() if line.strip()]
    if outcome.status == "exit":
        # argparse: status 2, "usage: ..." and a last line "cnnviz CMD: error: ...".
        if rc == 0:
            return None  # --help
        if rc != 2 or not lines or not ARGPARSE_ERROR.match(lines[-1]):
            return f"{outcome.case}: SystemExit({rc}) without a usage error: {outcome.brief()}"
        return None
    if rc == 0:
        return None
    if rc != 2:
        return f"{outcome.case}: exit status {rc!r} (expected 0 or 2): {outcome.brief()}"
    errors = [line for line in lines if line.startswith("cnnviz: error:")]
    if not errors or len(errors) != len(lines) or len(lines) > max_error_lines:
        return (
            f"{outcome.case}: stderr is not {max_error_lines} 'cnnviz: error:' line(s): {lines!r}"
        )
    for line in errors:
        if RAW_TEXT.search(line):
            return f"{outcome.case}: raw library text in the error: {line[:300]!r}"
    return None


def check_all(problems: list[str | None], total: int) -> None:
    """Fail once, listing every broken case (a fuzz run is more useful with all findings at once)."""
    found = [p for p in problems if p]
    if found:
        listing = "\n".join(f"- {_clip(p)}" for p in found[:40])
        more = f"\n... and {len(found) - 40} more" if len(found) > 40 else ""
        raise AssertionError(f"{len(found)} of {total} cases broke the property:\n{listing}{more}")


def _clip(text: str, limit: int = 700) -> str:
    return text if len(text) <= limit else text[: limit - 200] + " ... " + text[-195:]
