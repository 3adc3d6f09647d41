"""``cnnviz top-units`` through ``cnnviz.cli.main``: the files, the JSON, the errors, Ctrl+C."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from cnnviz.cli import main
from cnnviz.core.images import load_image
from cnnviz.core.models import load_model


def _folder(root: Path, count: int = 10, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    (root / "sub").mkdir(parents=True)
    for i in range(count):
        h, w = (int(v) for v in rng.integers(12, 50, 2))
        arr = rng.integers(0, 256, (h, w), dtype=np.uint8)
        where = root / ("sub" if i % 2 else "")
        if i % 3 == 0:
            Image.fromarray(arr).convert("RGB").save(where / f"{i:02d}.jpg", quality=92)
        else:
            Image.fromarray(arr).save(where / f"{i:02d}.png")
    (root / "sub" / "broken.png").write_bytes(b"\x89PNG not really")
    return root


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    try:
        code = main(list(argv))
    except SystemExit as exc:  # a usage error, from argparse
        code = int(exc.code or 0)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _oracle(folder: Path, layer: str, k: int) -> dict[int, list[tuple[float, str, list[int]]]]:
    """Each picture alone through the digits model with a forward hook; every unit sorted in Python."""
    model = load_model("default")
    module = dict(model.module.named_modules())[layer]
    units: dict[int, list[tuple[float, int, str, list[int]]]] = {}
    paths = sorted(p for p in folder.rglob("*") if p.suffix in (".png", ".jpg"))
    index = 0
    for path in paths:
        try:
            loaded = load_image(path, model.preprocess)
        except Exception:  # noqa: BLE001 - the unreadable file
            continue
        seen: list[torch.Tensor] = []
        handle = module.register_forward_hook(lambda m, a, out, seen=seen: seen.append(out))
        with torch.no_grad():
            model.module(loaded.tensor)
        handle.remove()
        out = seen[0][0]
        for c in range(out.shape[0]):
            for y in range(out.shape[1]):
                for x in range(out.shape[2]):
                    units.setdefault(c, []).append((float(out[c, y, x]), index, str(path), [y, x]))
        index += 1
    return {
        c: [(v, p, u) for v, _, p, u in sorted(e, key=lambda t: (-t[0], t[1], t[3]))[:k]]
        for c, e in units.items()
    }


def test_json_files_and_mosaics(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = _folder(tmp_path / "pics")
    out = tmp_path / "out"
    code, stdout, stderr = _run(
        capsys, "top-units", "--model", "default", "--layer", "4", "--data", str(data),
        "--k", "5", "--channels", "0,3,31", "--batch-size", "3", "--device", "cpu",
        "--out", str(out), "--format", "json",
    )  # fmt: skip
    assert code == 0, stderr
    assert stderr == ""  # no progress bar when stderr is not a terminal
    doc = json.loads(stdout)
    assert doc == json.loads((out / "top_units.json").read_text())
    assert doc["model"] == "digits" and doc["layer"] == "4" and doc["k"] == 5
    assert doc["images"] == 10 and len(doc["skipped"]) == 1
    truth = _oracle(data, "4", 5)
    assert list(doc["channels"]) == ["0", "3", "31"]
    for key, entries in doc["channels"].items():
        expected = truth[int(key)]
        assert [(e["image"], e["unit"]) for e in entries] == [(p, u) for _, p, u in expected]
        assert np.allclose([e["value"] for e in entries], [v for v, _, _ in expected], atol=1e-5)
    # the crops are `cnnviz rf --image`'s box
    for entry in doc["channels"]["3"][:3]:
        y, x = entry["unit"]
        code, rf_out, _ = _run(
            capsys, "rf", "--model", "default", "--layer", "4", "--unit", f"{y},{x}",
            "--image", entry["image"], "--format", "json",
        )  # fmt: skip
        assert code == 0
        rf = json.loads(rf_out)
        assert entry["image_box"] == rf["image_box"] and entry["input_box"] == rf["box"]
    pngs = sorted(p.name for p in out.glob("*.png"))
    assert pngs == ["channel_00.png", "channel_03.png", "channel_31.png"]
    with Image.open(out / "channel_03.png") as im:
        assert im.width >= 3 * 96 and im.height >= 2 * 96
        assert im.info.get("cnnviz.channel") == "3"


def test_text_output_and_a_vector_layer(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = _folder(tmp_path / "pics", count=6)
    code, stdout, stderr = _run(
        capsys, "top-units", "--model", "default", "--layer", "14", "--data", str(data),
        "--k", "3", "--channels", "1-2", "--out", str(tmp_path / "o"), "--device", "cpu",
    )  # fmt: skip
    assert code == 0, stderr
    assert "top 3 unit(s) per channel over 6 picture(s)" in stdout
    assert "no spatial map" in stdout and "channel 1:" in stdout and "channel 2:" in stdout
    doc = json.loads((tmp_path / "o" / "top_units.json").read_text())
    assert all(e["unit"] == [] for e in doc["channels"]["1"])


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--layer", "4", "--k", "100000"], "is more than the"),
        (
            ["--layer", "4", "--channels", "40"],
            "channel 40 is outside layer '4', which has 32 channels",
        ),
        (["--layer", "nope"], "unknown layer 'nope'"),
        (["--layer", "4", "--k", "0"], "is not at least 1"),
        (["--layer", "4", "--channels", "a,b"], "is not a list of channels"),
    ],
)
def test_errors_are_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], expected: str
) -> None:
    data = _folder(tmp_path / "pics", count=3)
    out = tmp_path / "out"
    code, stdout, stderr = _run(
        capsys, "top-units", "--model", "default", "--data", str(data), "--out", str(out), "--device", "cpu", *args
    )  # fmt: skip
    assert code == 2
    assert stderr.startswith("cnnviz: error: ") and stderr.count("\n") == 1 and expected in stderr
    assert not out.exists() or not any(out.iterdir())


def test_empty_and_unreadable_folders(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "empty").mkdir()
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "a.png").write_bytes(b"nope")
    (bad / "b.jpg").write_bytes(b"")
    for folder, expected in ((tmp_path / "empty", "no picture files"), (bad, "None of the 2")):
        code, _, stderr = _run(
            capsys, "top-units", "--model", "default", "--layer", "0", "--data", str(folder),
            "--out", str(tmp_path / "o"), "--device", "cpu",
        )  # fmt: skip
        assert code == 2 and stderr.count("\n") == 1 and expected in stderr, stderr
    assert not (tmp_path / "o" / "top_units.json").exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_cuda_without_a_gpu(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = _folder(tmp_path / "pics", count=2)
    code, _, stderr = _run(
        capsys, "top-units", "--model", "default", "--layer", "0", "--data", str(data),
        "--out", str(tmp_path / "o"), "--device", "cuda",
    )  # fmt: skip
    assert code == 2 and "no CUDA GPU is available" in stderr and stderr.count("\n") == 1


@pytest.mark.slow
@pytest.mark.skipif(
    not Path("/proc/self/fd").is_dir(), reason="needs /proc to see the run read pictures"
)
def test_ctrl_c_leaves_nothing_behind(tmp_path: Path) -> None:
    data = tmp_path / "pics"
    data.mkdir()
    rng = np.random.default_rng(0)
    for i in range(3000):
        Image.fromarray(rng.integers(0, 256, (28, 28), dtype=np.uint8)).save(data / f"{i:04d}.png")
    out = tmp_path / "out"
    proc = subprocess.Popen(
        [sys.executable, "-m", "cnnviz", "top-units", "--model", "default", "--layer", "8",
         "--data", str(data), "--out", str(out), "--batch-size", "1", "--device", "cpu"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )  # fmt: skip
    # interrupt once the run reads pictures (a picture file is open), not while Python starts up
    fds = Path(f"/proc/{proc.pid}/fd")
    deadline = time.monotonic() + 180
    reading = False
    while not reading and proc.poll() is None and time.monotonic() < deadline:
        try:
            reading = any(str(data) in os.readlink(fd) for fd in fds.iterdir())
        except OSError:
            pass
        time.sleep(0.02)
    assert reading, "the run never read a picture"
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr
    assert "stopping after this batch" in stderr and "nothing was written" in stderr
    assert "Traceback" not in stderr
    assert not out.exists() or not any(out.iterdir())
