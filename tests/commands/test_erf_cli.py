"""``cnnviz erf`` through ``cnnviz.cli.main``: the JSON fields, the files written, and one-line errors.

The averaged gradient is checked against a per-picture autograd loop computed here on the same pictures
(read with the model's own preprocessing), and the area ratio against squares grown by plain slicing.
"""

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
from tests.oracles import module_output


@pytest.fixture(scope="module")
def pictures(tmp_path_factory):
    folder = tmp_path_factory.mktemp("digits")
    rng = np.random.default_rng(0)
    for i in range(6):
        arr = np.zeros((32, 30), dtype=np.uint8)
        y, x = rng.integers(2, 16, size=2)
        arr[y : y + 12, x : x + 4] = 255
        Image.fromarray(arr).save(folder / f"d{i}.png")
    return folder


def oracle(paths, layer: str) -> tuple[np.ndarray, tuple[int, int]]:
    model = load_model("default", weights="default")
    run = module_output(layer)
    total = None
    for p in paths:
        x = load_image(p, model.preprocess).tensor.clone().requires_grad_(True)
        out = run(model.module.eval(), x)
        uy, ux = out.shape[2] // 2, out.shape[3] // 2
        (g,) = torch.autograd.grad(out[0, :, uy, ux].sum(), x)
        m = g[0].abs().sum(0).double().numpy()
        total = m if total is None else total + m
    return total / len(paths), (uy, ux)


def squares(heat: np.ndarray, centre, t: float) -> float:
    h, w = heat.shape
    cy, cx = centre
    for r in range(max(h, w)):
        part = heat[max(cy - r, 0) : cy + r + 1, max(cx - r, 0) : cx + r + 1]
        if part.sum() >= t * heat.sum() * (1 - 1e-12):
            return part.size / (h * w)
    return 1.0


def test_erf_json_and_heatmap(pictures, tmp_path, capsys):
    out = tmp_path / "erf.png"
    code = main(["erf", "--model", "default", "--layer", "8", "--data", str(pictures), "--n", "5",
                 "--batch-size", "2", "--out", str(out), "--format", "json"])  # fmt: skip
    assert code == 0
    data = json.loads(capsys.readouterr().out)
    paths = sorted(pictures.glob("*.png"))[:5]
    heat, unit = oracle(paths, "8")
    assert data["layer"] == "8" and data["unit"] == list(unit) and data["images"] == 5
    assert data["input_shape"] == list(load_model("default").input_shape)
    assert set(data["area_ratio"]) == {"0.2", "0.3", "0.5", "0.99"}
    for key, ratio in data["area_ratio"].items():
        assert ratio == pytest.approx(squares(heat, data["centre"], float(key)), abs=1e-6)
    top, left, bottom, right = data["theoretical_box"]
    assert data["centre"] == [(top + bottom) // 2, (left + right) // 2]
    with Image.open(out) as im:
        assert im.format == "PNG" and im.size[0] > 200
        assert im.text["cnnviz.layer"] == "8"


def test_erf_text_summary(pictures, tmp_path, capsys):
    out = tmp_path / "erf.svg"
    assert main(["erf", "--model", "default", "--layer", "4", "--unit", "5,6", "--data", str(pictures),
                 "--out", str(out)]) == 0  # fmt: skip
    text = capsys.readouterr().out
    assert "unit (y=5, x=6)" in text and "99% of the contribution" in text and str(out) in text
    assert out.read_text().startswith("<?xml")


def test_all_layers_writes_plot_and_json(pictures, tmp_path, capsys):
    out = tmp_path / "growth.png"
    assert main(["erf", "--model", "default", "--all-layers", "--data", str(pictures), "--n", "3",
                 "--out", str(out)]) == 0  # fmt: skip
    listing = json.loads((tmp_path / "growth.json").read_text())
    model = load_model("default")
    dims = {}
    for name, m in model.module.named_children():
        m.register_forward_hook(lambda _m, _i, o, name=name: dims.__setitem__(name, o.dim()))
    model.module(torch.zeros(1, *model.input_shape))
    assert [e["layer"] for e in listing] == [k for k, d in dims.items() if d == 4]
    assert [e["depth"] for e in listing] == list(range(len(listing)))
    assert all(e["images"] == 3 for e in listing)
    with Image.open(out) as im:
        assert im.size[0] == 1000
    assert "wrote" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--layer", "8", "--data", "EMPTY"], "holds no picture files"),
        (["--layer", "8", "--data", "JUNK"], "could not be read"),
        (["--layer", "8", "--unit", "99,0"], "unit (99, 0) is outside layer '8'"),
        (["--layer", "13"], "has no spatial map"),
        (["--layer", "8", "--n", "0"], "must be 1 or more, not 0"),
        (["--layer", "8", "--unit", "left"], "is not center or Y,X"),
        (["--all-layers", "--unit", "1,1"], "--unit is for one layer"),
        (["--layer", "8", "--out", "OUT/erf.txt"], "must name a .png or .svg file"),
        (["--layer", "nope"], "unknown layer 'nope'"),
    ],
)
def test_errors_are_one_line_and_write_nothing(pictures, tmp_path, capsys, extra, message):
    (tmp_path / "empty").mkdir()
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "a.png").write_bytes(b"no picture")
    (tmp_path / "out").mkdir()
    args = [a.replace("EMPTY", str(tmp_path / "empty")).replace("JUNK", str(tmp_path / "junk"))
            .replace("OUT", str(tmp_path / "out")) for a in extra]  # fmt: skip
    if "--data" not in args:
        args += ["--data", str(pictures)]
    if "--out" not in args:
        args += ["--out", str(tmp_path / "out" / "erf.png")]
    try:
        code = main(["erf", "--model", "default", *args])
    except SystemExit as exc:  # usage errors leave through argparse, with the same one line
        code = exc.code
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("cnnviz: error: ") and err.count("\n") == 1
    assert message in err
    assert list((tmp_path / "out").iterdir()) == []


def test_a_layer_that_does_not_depend_on_the_input(pictures, tmp_path, capsys):
    spec = {
        "name": "constant",
        "input_shape": [1, 28, 28],
        "layers": [
            {"type": "Conv2d", "out_channels": 2, "kernel_size": 3},
            {"type": "ReLU"},
            {"type": "Conv2d", "out_channels": 2, "kernel_size": 3},
        ],
    }
    path = tmp_path / "net.json"
    path.write_text(json.dumps(spec))
    model = load_model(str(path), weights="none")
    torch.nn.init.zeros_(model.module[2].weight)
    weights = tmp_path / "w.pth"
    torch.save(model.module.state_dict(), weights)
    code = main(["erf", "--model", str(path), "--weights", str(weights), "--layer", "2", "--data",
                 str(pictures), "--out", str(tmp_path / "e.png")])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 2 and "does not depend on the input" in err and err.count("\n") == 1
    assert not (tmp_path / "e.png").exists()


@pytest.mark.slow
@pytest.mark.skipif(
    not Path("/proc/self/fd").is_dir(), reason="needs /proc to see the run read pictures"
)
@pytest.mark.parametrize("which", [["--layer", "8"], ["--all-layers"]])
def test_ctrl_c_stops_after_the_batch_and_writes_nothing(tmp_path, which):
    data = tmp_path / "pics"
    data.mkdir()
    rng = np.random.default_rng(0)
    for i in range(3000):
        Image.fromarray(rng.integers(0, 256, (28, 28), dtype=np.uint8)).save(data / f"{i:04d}.png")
    out = tmp_path / "erf.png"
    proc = subprocess.Popen(
        [sys.executable, "-m", "cnnviz", "erf", "--model", "default", *which, "--data", str(data),
         "--n", "3000", "--batch-size", "1", "--device", "cpu", "--out", str(out)],
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
    assert "Traceback" not in stderr and stdout == ""
    assert list(tmp_path.iterdir()) == [data]  # neither the picture nor the JSON beside it
