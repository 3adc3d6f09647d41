"""The core and the non-GUI commands run without Qt: no PySide6, shiboken6 or pyqtgraph, no display."""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import cnnviz.core

QT_PACKAGES = ("PySide6", "shiboken6", "pyqtgraph")
CORE_DIR = Path(cnnviz.core.__file__).parent


def _headless_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("QT_")}
    for key in ("DISPLAY", "WAYLAND_DISPLAY"):
        env.pop(key, None)
    return env


def _python(code: str, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code, *args],
        capture_output=True,
        text=True,
        env=_headless_env(),
        cwd=cwd,
        timeout=300,
    )


WALK_CORE = f"""
import importlib, json, pkgutil, sys
import cnnviz.core
names = []
for info in pkgutil.walk_packages(cnnviz.core.__path__, "cnnviz.core."):
    importlib.import_module(info.name)
    names.append(info.name)
qt = sorted(m for m in sys.modules if m.split(".")[0] in {QT_PACKAGES!r})
print(json.dumps({{"modules": names, "qt": qt}}))
"""


def test_importing_every_core_module_loads_no_qt():
    done = _python(WALK_CORE)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    on_disk = {f"cnnviz.core.{p.stem}" for p in CORE_DIR.glob("*.py") if p.stem != "__init__"}
    assert on_disk <= set(result["modules"])
    assert result["qt"] == []


def test_core_sources_never_import_qt_even_lazily():
    forbidden = set(QT_PACKAGES) | {"cnnviz.gui"}
    offenders = []
    for path in sorted(CORE_DIR.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                if name.split(".")[0] in forbidden or name.startswith("cnnviz.gui"):
                    offenders.append(f"{path.name}:{node.lineno} imports {name}")
    assert offenders == []


RUN_CLI = f"""
import json, runpy, sys
sys.argv = ["cnnviz", *sys.argv[1:]]
try:
    runpy.run_module("cnnviz", run_name="__main__", alter_sys=True)
except SystemExit as exc:
    code = exc.code
qt = sorted(m for m in sys.modules if m.split(".")[0] in {QT_PACKAGES!r})
print(json.dumps({{"code": code, "qt": qt}}), file=sys.stderr)
"""


def test_summary_command_runs_headless_without_qt(tmp_path):
    spec = {
        "name": "headless net",
        "input_shape": [1, 10, 10],
        "labels": ["no", "yes"],
        "layers": [
            {"type": "Conv2d", "out_channels": 3, "kernel_size": 3},
            {"type": "ReLU"},
            {"type": "Flatten"},
            {"type": "Linear", "out_features": 2},
        ],
    }
    path = tmp_path / "headless.json"
    path.write_text(json.dumps(spec))
    done = _python(RUN_CLI, "summary", "--model", str(path), "--format", "json", cwd=tmp_path)
    report = json.loads(done.stderr.strip().splitlines()[-1])
    assert report["code"] == 0, done.stderr
    assert report["qt"] == []
    data = json.loads(done.stdout)
    import torch
    from torch import nn

    net = nn.Sequential(nn.Conv2d(1, 3, 3), nn.ReLU(), nn.Flatten(), nn.Linear(3 * 8 * 8, 2))
    assert data["total_params"] == sum(p.numel() for p in net.parameters())
    assert data["input_shape"] == [1, 10, 10]
    shapes, x = [], torch.zeros(1, 1, 10, 10)
    for layer in net:
        x = layer(x)
        shapes.append(list(x.shape))
    assert [r["output_shape"] for r in data["layers"]] == shapes
