"""The train command: JSON output, Ctrl-C keeps the last complete epoch, errors before training."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import pytest
from shape_folders import SHAPES, TINY_SPEC, make_folder

from cnnviz.cli import main
from cnnviz.core.models.checkpoint import read_checkpoint


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
