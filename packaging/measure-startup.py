#!/usr/bin/env python3
"""Time from launching cnnviz to its window being mapped on a real X server; prints JSON.

Usage: python packaging/measure-startup.py [--runs 5] [--] COMMAND...
  e.g. python packaging/measure-startup.py -- dist/cnnviz/cnnviz gui
       python packaging/measure-startup.py -- .venv/bin/cnnviz gui

Uses $DISPLAY when set, otherwise starts its own Xvfb (apt-get install xvfb xdotool). The window is
found with `xdotool search --onlyvisible --name cnnviz`, then the program is terminated. The first
run is reported separately: it includes reading the program's files from disk when they are not yet
in the page cache, which dominates for a multi-gigabyte torch build.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import time


def start_xvfb() -> tuple[subprocess.Popen[bytes], str]:
    for number in range(90, 110):
        if os.path.exists(f"/tmp/.X11-unix/X{number}"):
            continue
        proc = subprocess.Popen(
            ["Xvfb", f":{number}", "-screen", "0", "1600x1000x24", "-nolisten", "tcp"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for _ in range(100):
            if os.path.exists(f"/tmp/.X11-unix/X{number}"):
                return proc, f":{number}"
            time.sleep(0.05)
        proc.kill()
    raise SystemExit("measure-startup: could not start Xvfb")


def window_visible(display: str) -> bool:
    found = subprocess.run(
        ["xdotool", "search", "--onlyvisible", "--name", "cnnviz"],
        env=dict(os.environ, DISPLAY=display),
        capture_output=True,
    )
    return found.returncode == 0 and bool(found.stdout.strip())


def one_run(command: list[str], display: str, timeout: float) -> float:
    env = dict(os.environ, DISPLAY=display, QT_QPA_PLATFORM="xcb")
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True
    )
    try:
        while time.perf_counter() - t0 < timeout:
            if window_visible(display):
                return time.perf_counter() - t0
            if proc.poll() is not None:
                err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
                raise SystemExit(
                    f"measure-startup: the program exited with {proc.returncode}:\n{err}"
                )
            time.sleep(0.02)
        raise SystemExit(f"measure-startup: no window titled cnnviz within {timeout:.0f} s")
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--timeout", type=float, default=300.0)
    parser.add_argument("command", nargs="+")
    args = parser.parse_args(argv)
    for tool in ("xdotool",) + (() if os.environ.get("DISPLAY") else ("Xvfb",)):
        if shutil.which(tool) is None:
            print(f"measure-startup: {tool} is not installed", file=sys.stderr)
            return 2
    xvfb = None
    display = os.environ.get("DISPLAY", "")
    if not display:
        xvfb, display = start_xvfb()
    try:
        times = [one_run(args.command, display, args.timeout) for _ in range(args.runs)]
    finally:
        if xvfb is not None:
            xvfb.terminate()
            xvfb.wait()
    result = {
        "command": " ".join(args.command),
        "first_run_s": round(times[0], 2),
        "later_runs_median_s": round(statistics.median(times[1:]), 2) if len(times) > 1 else None,
        "runs_s": [round(t, 2) for t in times],
    }
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
