"""A real window on a real X server: `python -m cnnviz gui` under Xvfb, found by title, photographed, closed.

Skipped with the reason when Xvfb, xdotool or ImageMagick's `import` is missing (CI installs them:
apt-get install xvfb xdotool imagemagick libxcb-cursor0 ...).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from PIL import Image

pytestmark = [pytest.mark.xvfb, pytest.mark.slow]

TOOLS = {"Xvfb": "xvfb", "xdotool": "xdotool", "import": "imagemagick"}


def _need_tools() -> None:
    missing = [
        f"{tool} (apt package {pkg})" for tool, pkg in TOOLS.items() if shutil.which(tool) is None
    ]
    if missing:
        pytest.skip("a real X server test needs " + ", ".join(missing))


def _free_display() -> int:
    for n in range(91, 140):
        if not Path(f"/tmp/.X11-unix/X{n}").exists() and not Path(f"/tmp/.X{n}-lock").exists():
            return n
    pytest.skip("no free X display number between :91 and :139")


def _wait(predicate, timeout: float, step: float = 0.25):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(step)
    return None


def _xdotool(env, *args: str) -> str:
    out = subprocess.run(["xdotool", *args], env=env, capture_output=True, text=True, timeout=30)
    return out.stdout.strip()


@pytest.fixture
def xserver(tmp_path):
    _need_tools()
    number = _free_display()
    server = subprocess.Popen(
        ["Xvfb", f":{number}", "-screen", "0", "1280x900x24", "-nolisten", "tcp"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        if not _wait(
            lambda: Path(f"/tmp/.X11-unix/X{number}").exists() or server.poll() is not None, 20
        ):
            pytest.skip("Xvfb did not start")
        if server.poll() is not None:
            pytest.skip(f"Xvfb exited with code {server.returncode}")
        env = dict(os.environ)
        env.update(
            DISPLAY=f":{number}",
            QT_QPA_PLATFORM="xcb",
            XDG_CONFIG_HOME=str(tmp_path / "config"),  # a fresh settings file, not the user's
            XDG_CACHE_HOME=str(tmp_path / "cache"),
        )
        env.pop("CNNVIZ_NO_DIALOGS", None)
        env.pop("WAYLAND_DISPLAY", None)
        yield env
    finally:
        server.terminate()
        try:
            server.wait(10)
        except subprocess.TimeoutExpired:
            server.kill()


def test_real_window_opens_shows_maps_and_quits(xserver, tmp_path):
    env = xserver
    log = tmp_path / "app.log"
    with open(log, "wb") as out:
        app = subprocess.Popen(
            [sys.executable, "-m", "cnnviz", "gui"], env=env, stdout=out, stderr=subprocess.STDOUT
        )
    try:
        found = _wait(lambda: _xdotool(env, "search", "--name", "cnnviz").splitlines(), 180, 0.5)
        if found is None:
            text = log.read_text(errors="replace")
            if "xcb" in text and ("plugin" in text or "libxcb" in text):
                pytest.skip(
                    "Qt's xcb platform plugin cannot load here (install libxcb-cursor0 and friends)"
                )
            pytest.fail(f"no window titled cnnviz appeared; the app said:\n{text[-2000:]}")

        def main_window() -> tuple[str, str] | None:
            # Qt also maps a small leader window named after the app; the main window's title grows to
            # "cnnviz — <model> — <picture>" once the first forward pass is shown.
            for wid in _xdotool(env, "search", "--name", "cnnviz").splitlines():
                title = _xdotool(env, "getwindowname", wid)
                if title.startswith("cnnviz") and title.count("—") >= 2:
                    return wid, title
            return None

        hit = _wait(main_window, 180)
        assert hit is not None, (
            "the window title never named a model and a picture:\n"
            + log.read_text(errors="replace")[-2000:]
        )
        wid, title = hit
        time.sleep(1.0)  # let the maps paint
        shot = tmp_path / "window.png"
        subprocess.run(["import", "-window", wid, str(shot)], env=env, check=True, timeout=60)
        with Image.open(shot) as im:
            assert im.width >= 800 and im.height >= 500
            colours = im.convert("RGB").getcolors(maxcolors=1 << 20)
            assert colours is None or len(colours) > 50  # not a blank window
        # Ctrl+Q quits cleanly with exit code 0 (click first: without a window manager nothing has focus).
        _xdotool(env, "mousemove", "--window", wid, "60", "300", "click", "1")
        _xdotool(env, "key", "ctrl+q")
        code = app.wait(60)
        assert code == 0, log.read_text(errors="replace")[-2000:]
    finally:
        if app.poll() is None:
            app.kill()
            app.wait(10)
