"""The one device choice, as the folder analyses and the training loop use it."""

from __future__ import annotations

import pytest
import torch

from cnnviz.core.analysis.dataset import resolve_device as dataset_resolve
from cnnviz.core.analysis.device import resolve_device
from cnnviz.core.errors import CnnvizError
from cnnviz.core.training.loop import pick_device

HAS_CUDA = torch.cuda.is_available()
HAS_MPS = bool(getattr(torch.backends, "mps", None) and torch.backends.mps.is_available())


def test_one_home_for_folder_runs_and_training() -> None:
    assert dataset_resolve is resolve_device
    assert resolve_device("auto") == torch.device("cuda" if HAS_CUDA else "cpu")
    expected = "cuda" if HAS_CUDA else "mps" if HAS_MPS else "cpu"
    assert pick_device("auto") == torch.device(expected)
    for run in (resolve_device, pick_device):
        assert run("cpu") == run(" CPU ") == run(torch.device("cpu")) == torch.device("cpu")
        assert run("") == run("auto")


@pytest.mark.skipif(HAS_CUDA, reason="checks the refusal on a machine without CUDA")
def test_cuda_without_a_gpu_is_the_same_sentence_everywhere() -> None:
    messages = set()
    for run in (resolve_device, pick_device):
        for name in ("cuda", "cuda:1"):
            with pytest.raises(CnnvizError) as exc:
                run(name)
            messages.add(str(exc.value))
    assert messages == {
        "CUDA was asked for but no CUDA GPU is available: use --device cpu or auto."
    }


@pytest.mark.skipif(not HAS_CUDA, reason="needs a CUDA GPU")
def test_a_gpu_number_beyond_the_machine() -> None:
    count = torch.cuda.device_count()
    for run in (resolve_device, pick_device):
        assert run("cuda:0") == torch.device("cuda:0")
        with pytest.raises(CnnvizError, match=f"There is no GPU {count}"):
            run(f"cuda:{count}")


def test_unknown_devices_and_mps() -> None:
    with pytest.raises(
        CnnvizError, match=r"^The device 'tpu' is unknown; use auto, cpu or cuda\.$"
    ):
        resolve_device("tpu")
    with pytest.raises(CnnvizError, match=r"unknown; use auto, cpu, cuda or mps\.$"):
        pick_device("tpu")
    with pytest.raises(CnnvizError, match="unknown; use auto, cpu or cuda"):
        resolve_device("mps")  # the folder analyses do not offer it
    if HAS_MPS:
        assert pick_device("mps") == torch.device("mps")
    else:
        with pytest.raises(CnnvizError, match="MPS was asked for but is not available"):
            pick_device("mps")
    with pytest.raises(CnnvizError, match=r"must be 'auto', 'cpu' or 'cuda', not a list\.$"):
        resolve_device([1])
