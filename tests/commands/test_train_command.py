"""The train command: JSON output, Ctrl-C keeps the last complete epoch, errors before training."""

from __future__ import annotations

import json
import os
import random
import signal
import sys
from pathlib import Path

import pytest
import torch
from shape_folders import SHAPES, TINY_SPEC, make_folder

from cnnviz.cli import main
from cnnviz.core.models.checkpoint import read_checkpoint


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """One thread: on a shared machine a tiny net's steps are many times faster than on two."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def shapes_dir(tmp_path_factory) -> Path:
    return make_folder(tmp_path_factory.mktemp("shapes"))


def test_cli_train_one_epoch_json(shapes_dir, tmp_path, capsys):
    spec_path = tmp_path / "tiny.json"
    spec_path.write_text(json.dumps(TINY_SPEC))
    out = tmp_path / "tiny.pt"
    code = main(
        [
            "train",
            "--arch",
            str(spec_path),
            "--data",
            str(shapes_dir),
            "--epochs",
            "1",
            "--out",
            str(out),
        ]
        + ["--batch-size", "16", "--format", "json", "--device", "cpu"]
    )
    captured = capsys.readouterr()
    assert code == 0, captured.err
    summary = json.loads(captured.out.strip().splitlines()[-1])
    assert summary["epochs"] == 1
    assert summary["labels"] == list(SHAPES)
    ckpt = read_checkpoint(out)
    assert ckpt is not None
    assert ckpt["metrics"]["command"].startswith("cnnviz train --arch")
    assert len(ckpt["metrics"]["history"]) == 1


def test_cli_train_errors(tmp_path, capsys):
    code = main(["train", "--arch", "default", "--data", str(tmp_path / "nope"), "--epochs", "1"]
                + ["--out", str(tmp_path / "m.pt")])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 2
    assert err.strip().splitlines()[-1].startswith("cnnviz: error: The data folder")


def test_cli_ctrl_c_keeps_last_complete_epoch(shapes_dir, tmp_path, capsys, monkeypatch):
    from cnnviz.commands import train as train_cmd

    spec_path = tmp_path / "tiny.json"
    spec_path.write_text(json.dumps(TINY_SPEC))
    out = tmp_path / "tiny.pt"
    original = train_cmd._Progress.on_batch_end

    def interrupt_in_epoch_two(self, epoch, batch, n_batches, loss, acc):
        original(self, epoch, batch, n_batches, loss, acc)
        if epoch == 2 and batch == 2:
            os.kill(os.getpid(), signal.SIGINT)

    monkeypatch.setattr(train_cmd._Progress, "on_batch_end", interrupt_in_epoch_two)
    code = main(
        [
            "train",
            "--arch",
            str(spec_path),
            "--data",
            str(shapes_dir),
            "--epochs",
            "4",
            "--out",
            str(out),
        ]
        + ["--batch-size", "8", "--device", "cpu"]
    )
    err = capsys.readouterr().err
    assert code == 130
    assert "training interrupted; the checkpoint" in err
    ckpt = read_checkpoint(out)
    assert ckpt is not None and ckpt["metrics"]["epochs"] == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tiny.json", "tiny.pt"]
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


@pytest.mark.parametrize(
    ("out", "message"),
    [
        ("", "--out is empty"),
        ("{tmp}/file/sub/out.pt", "'{tmp}/file' is a file, not a folder"),
        ("{tmp}/missing/out.pt", "the folder '{tmp}/missing' does not exist"),
        ("{tmp}", "is a folder"),
        ("{tmp}/pipe", "is a FIFO (named pipe), not a regular file"),
        # Tests may run as root, whom chmod does not stop; /proc takes no new files from anyone.
        ("/proc/cnnviz-test.pt", "the folder '/proc' does not accept new files"),
    ],
)
def test_cli_train_refuses_an_unwritable_out_before_training(tmp_path, capsys, out, message):
    if out.startswith("/proc") and not os.path.isdir("/proc/self"):
        pytest.skip("needs Linux /proc")
    (tmp_path / "file").write_text("x")
    os.mkfifo(tmp_path / "pipe")
    before = sorted(p.name for p in tmp_path.iterdir())
    code = main(["train", "--arch", "default", "--data", "synthetic-digits", "--epochs", "1",
                 "--out", out.format(tmp=tmp_path)])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 2
    # One line and nothing else: refused before the data set was even prepared.
    assert err.startswith("cnnviz: error: ") and err.count("\n") == 1
    assert message.format(tmp=tmp_path) in err
    assert sorted(p.name for p in tmp_path.iterdir()) == before


def test_cli_train_spec_without_input_shape(tmp_path, capsys):
    spec = {k: v for k, v in TINY_SPEC.items() if k != "input_shape"}
    arch = tmp_path / "net.json"
    arch.write_text(json.dumps(spec))
    code = main(["train", "--arch", str(arch), "--data", "synthetic-digits", "--epochs", "1",
                 "--out", str(tmp_path / "m.pt")])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("cnnviz: error: ") and err.count("\n") == 1
    assert 'no "input_shape"' in err and "net.json" in err
    assert not (tmp_path / "m.pt").exists()


TINY_DIGITS = {
    "name": "tiny digits",
    "input_shape": [1, 12, 12],
    "layers": [
        {"type": "Conv2d", "out_channels": 4, "kernel_size": 3, "padding": 1},
        {"type": "ReLU"},
        {"type": "MaxPool2d", "kernel_size": 2},
        {"type": "Flatten"},
        {"type": "Linear", "out_features": 10},
    ],
}


def test_cli_synthetic_digits_name_each_stage_on_its_own_line(tmp_path, capsys):
    arch = tmp_path / "digits.json"
    arch.write_text(json.dumps(TINY_DIGITS))
    code = main(["train", "--arch", str(arch), "--data", "synthetic-digits", "--samples", "60",
                 "--epochs", "1", "--device", "cpu", "--out", str(tmp_path / "d.pt")])  # fmt: skip
    captured = capsys.readouterr()
    err = captured.err
    assert code == 0, err
    assert not sys.stderr.isatty() and "\r" not in err  # captured: lines, no bar
    # 54 digits left to train on: batches of 8 (an eighth, at least 8), so 7 steps in the one epoch
    assert "  epochs: 1, batch size: 8, steps: 7, time: " in captured.out
    lines = err.splitlines()
    stages = [line for line in lines if line.startswith("cnnviz: preparing synthetic digits: ")]
    assert [line.split(": ")[2].split(" ")[0] for line in stages] == [f"{i}/5" for i in range(1, 6)]
    assert "drawing 60 training digits" in stages[1] and "unseen fonts" in stages[4]
    # in order: the stages, the plan, the epoch, the final evaluations
    order = [lines.index(stages[0]), lines.index(stages[-1])]
    order.append(
        next(
            i for i, line in enumerate(lines) if line.startswith("cnnviz: training on 54 pictures")
        )
    )
    order.append(next(i for i, line in enumerate(lines) if line.startswith("epoch 1/1:")))
    order.append(
        next(
            i
            for i, line in enumerate(lines)
            if "evaluating on the heldout fonts set (20 images)" in line
        )
    )
    assert order == sorted(order)
    ckpt = read_checkpoint(tmp_path / "d.pt")
    assert ckpt is not None and ckpt["metrics"]["n_train"] + ckpt["metrics"]["n_val"] == 60
    assert "--samples 60" in ckpt["metrics"]["command"]


def test_cli_samples_only_for_synthetic_digits(shapes_dir, tmp_path, capsys):
    code = main(["train", "--arch", "default", "--data", str(shapes_dir), "--samples", "100",
                 "--out", str(tmp_path / "m.pt")])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1
    assert err.startswith("cnnviz: error: --samples sets how many synthetic digits to generate")


def test_cli_defaults_scale_and_near_chance_warns(tmp_path, capsys):
    from shape_folders import draw_shape

    # Two class folders of random circles and squares: nothing to learn, whatever the defaults.
    rnd = random.Random(11)
    for name in ("a", "b"):
        (tmp_path / "noise" / name).mkdir(parents=True)
        for i in range(24):
            draw_shape(rnd.choice(("circle", "square")), rnd).save(
                tmp_path / "noise" / name / f"{i}.png"
            )
    spec = json.loads(json.dumps(TINY_SPEC))
    spec["layers"][-1]["out_features"] = 2
    arch = tmp_path / "two.json"
    arch.write_text(json.dumps(spec))
    out = tmp_path / "two.pt"
    code = main(["train", "--arch", str(arch), "--data", str(tmp_path / "noise"), "--val-split", "0.5",
                 "--epochs", "4", "--device", "cpu", "--out", str(out)])  # fmt: skip
    captured = capsys.readouterr()
    assert code == 0, captured.err
    metrics = read_checkpoint(out)["metrics"]
    # 24 pictures left to train on: batches of 8 (an eighth, at least 8), the epochs as given
    assert metrics["batch_size"] == 8 and metrics["epochs"] == 4
    warning = [line for line in captured.err.splitlines() if line.startswith("cnnviz: warning: ")]
    assert warning == [
        f"cnnviz: warning: the final validation accuracy {100 * metrics['val_acc']:.1f}% (24 pictures) is "
        "close to chance (50.0%, 2 classes): " + warning[0].split("2 classes): ", 1)[1]
    ]
    assert "more epochs" in warning[0] or "more pictures per class" in warning[0]
    assert "warning" not in captured.out
