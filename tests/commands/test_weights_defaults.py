"""Which weights each command loads when --weights is not given, checked without a network.

``summary`` and ``rf`` need only the architecture, so they build random weights and work offline;
``predict`` needs pretrained weights and, when they are neither cached nor downloadable, says in one
line how to go on.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision
from PIL import Image

from cnnviz.cli import main


def _cached_resnet18() -> Path:
    name = os.path.basename(torchvision.models.ResNet18_Weights.DEFAULT.url)
    return Path(torch.hub.get_dir()) / "checkpoints" / name


def test_summary_without_weights_prints_the_table_offline(capsys):
    expected = sum(p.numel() for p in torchvision.models.resnet18(weights=None).parameters())
    assert main(["summary", "--model", "resnet18"]) == 0
    out, err = capsys.readouterr()
    assert "layer1" in out and "fc" in out
    assert f"Total params: {expected:,}" in out
    assert "error" not in err


def test_rf_without_weights_works_offline(capsys):
    assert main(["rf", "--model", "resnet18", "--layer", "layer1", "--unit", "0,0"]) == 0
    out, err = capsys.readouterr()
    assert out.startswith("layer1, unit (y=0, x=0)")
    assert "error" not in err


def test_predict_without_weights_offline_names_the_flag(capsys, tmp_path):
    if _cached_resnet18().is_file():
        pytest.skip("the resnet18 pretrained weights are in the torch hub cache")
    picture = tmp_path / "grey.png"
    Image.fromarray(np.full((32, 32, 3), 128, np.uint8)).save(picture)
    assert main(["predict", "--model", "resnet18", str(picture)]) == 2
    out, err = capsys.readouterr()
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith("cnnviz: error: ")
    assert "--weights none" in lines[0]
    assert "Errno" not in lines[0] and "urlopen" not in lines[0] and "Traceback" not in err
    assert out == ""
