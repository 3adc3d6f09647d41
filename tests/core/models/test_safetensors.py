"""safetensors: weights files for torchvision names, timm names and specs; ``.safetensors`` + ``.json`` checkpoints.

Every file is written here (with the safetensors library, or byte by byte for damaged ones) and results are
checked against a real forward pass of the model the weights came from.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path

import pytest
import torch
import torchvision
from safetensors.torch import load_file, save_file
from shape_folders import SHAPES, TINY_SPEC, make_folder

from cnnviz.cli import main
from cnnviz.core.budget import budget_override
from cnnviz.core.errors import MemoryBudgetError, ModelLoadError
from cnnviz.core.images import Preprocess
from cnnviz.core.models import MODEL_FILE_SUFFIXES, load_model
from cnnviz.core.models.checkpoint import read_checkpoint, save_checkpoint, sidecar_path
from cnnviz.core.models.spec import build_model


def _spec_file(tmp_path: Path) -> Path:
    path = tmp_path / "tiny.json"
    path.write_text(json.dumps(TINY_SPEC))
    return path


def test_safetensors_is_a_model_suffix():
    assert ".safetensors" in MODEL_FILE_SUFFIXES


def test_weights_for_a_torchvision_name(tmp_path):
    torch.manual_seed(1)
    source = torchvision.models.resnet18(weights=None).eval()
    path = tmp_path / "r18.safetensors"
    save_file(source.state_dict(), str(path))
    loaded = load_model("resnet18", weights=str(path))
    x = torch.randn(1, 3, 224, 224)
    with torch.no_grad():
        assert torch.equal(loaded.module(x), source(x))
    assert loaded.metadata["weights"] == str(path)


def test_weights_for_a_spec(tmp_path):
    torch.manual_seed(2)
    source = build_model(TINY_SPEC).eval()
    path = tmp_path / "tiny-weights.safetensors"
    save_file(source.state_dict(), str(path))
    loaded = load_model(str(_spec_file(tmp_path)), weights=str(path))
    x = torch.randn(1, 1, 16, 16)
    with torch.no_grad():
        assert torch.equal(loaded.module(x), source(x))


def test_a_safetensors_file_with_another_name_is_still_read(tmp_path):
    source = build_model(TINY_SPEC).eval()
    path = tmp_path / "weights.bin"  # as hubs name them
    save_file(source.state_dict(), str(path))
    loaded = load_model(str(_spec_file(tmp_path)), weights=str(path))
    for key, value in source.state_dict().items():
        assert torch.equal(loaded.module.state_dict()[key], value)


def test_keys_that_do_not_fit_are_listed(tmp_path):
    state = build_model(TINY_SPEC).state_dict()
    first = next(iter(state))
    state["extra.weight"] = torch.zeros(2)
    state[first] = torch.zeros(3, 3)
    del state[list(state)[-2]]
    path = tmp_path / "bad.safetensors"
    save_file(state, str(path))
    with pytest.raises(ModelLoadError) as info:
        load_model(str(_spec_file(tmp_path)), weights=str(path))
    message = str(info.value)
    assert f"the weights in {path} do not fit" in message
    assert "missing keys: " in message and "unexpected keys: extra.weight" in message
    assert f"shape mismatches: {first} [3, 3] vs" in message


def _raw(path: Path, header: bytes, payload: bytes = b"", length: int | None = None) -> Path:
    path.write_bytes(
        struct.pack("<Q", len(header) if length is None else length) + header + payload
    )
    return path


def _header(entries: dict) -> bytes:
    return json.dumps(entries).encode()


@pytest.mark.parametrize(
    "make, words",
    [
        (lambda p: p.write_bytes(b"abc"), "is not a safetensors file"),
        (lambda p: _raw(p, b"{}", length=1 << 40), "is not a safetensors file"),
        (lambda p: _raw(p, b"[1, 2, 3]"), "its header is not a JSON object"),
        (lambda p: _raw(p, b"\xff\xfe{not json"), "its header is not a JSON object"),
        (
            lambda p: _raw(
                p, _header({"w": {"dtype": "F99", "shape": [1], "data_offsets": [0, 4]}}), b"\0" * 4
            ),
            "tensor 'w' has an unknown dtype 'F99'",
        ),
        (
            lambda p: _raw(
                p,
                _header({"w": {"dtype": "F32", "shape": [2, 2], "data_offsets": [0, 4]}}),
                b"\0" * 4,
            ),
            "tensor 'w' declares 4 bytes for a F32 tensor of shape [2, 2]",
        ),
        (
            lambda p: _raw(
                p,
                _header({"w": {"dtype": "F32", "shape": [-1], "data_offsets": [0, 4]}}),
                b"\0" * 4,
            ),
            "tensor 'w' has a shape that is not a list of sizes",
        ),
        (
            lambda p: _raw(
                p, _header({"w": {"dtype": "F32", "shape": [4], "data_offsets": [8, 4]}})
            ),
            "byte offsets that are not a start and an end",
        ),
        (
            lambda p: _raw(
                p,
                _header({"w": {"dtype": "F32", "shape": [1000], "data_offsets": [0, 4000]}}),
                b"\0" * 40,
            ),
            "is a truncated safetensors file: its header names 4,000 bytes of tensors but only 40 follow it",
        ),
        (
            lambda p: _raw(p, _header({"__metadata__": {"a": 1}})),
            "its __metadata__ is not a mapping of text to text",
        ),
    ],
)
def test_malformed_files_are_one_line(tmp_path, make, words):
    path = tmp_path / "broken.safetensors"
    make(path)
    with pytest.raises(ModelLoadError) as info:
        load_model(str(_spec_file(tmp_path)), weights=str(path))
    message = str(info.value)
    assert words in message and str(path) in message and "\n" not in message


def test_sizes_over_the_memory_budget_are_refused_before_loading(tmp_path):
    path = tmp_path / "big.safetensors"
    save_file({"w": torch.zeros(1 << 20)}, str(path))  # 4 MiB
    with (
        budget_override("1MiB"),
        pytest.raises(MemoryBudgetError, match="the 1 tensors in big.safetensors would take 4 MiB"),
    ):
        load_model("resnet18", weights=str(path))


def test_bare_safetensors_as_a_model_says_it_holds_only_weights(tmp_path):
    path = tmp_path / "bare.safetensors"
    save_file(build_model(TINY_SPEC).state_dict(), str(path))
    with pytest.raises(ModelLoadError) as info:
        load_model(str(path))
    message = str(info.value)
    assert message.startswith(f"{path} holds only weights")
    assert "--model timm:NAME --weights bare.safetensors" in message
    assert "--model resnet18 --weights bare.safetensors" in message


def _save_pair(tmp_path: Path, name: str = "tiny.safetensors") -> tuple[Path, torch.nn.Module]:
    torch.manual_seed(4)
    model = build_model(TINY_SPEC).eval()
    path = save_checkpoint(
        tmp_path / name,
        spec=TINY_SPEC,
        state_dict=model.state_dict(),
        labels=["circle", "square", "triangle"],
        preprocess=Preprocess(1, (16, 16), "letterbox", None, (0.2,), (0.4,)),
        metrics={"val_acc": 0.75, "loss": float("nan")},
    )
    return path, model


def test_a_checkpoint_pair_is_written_without_pickle(tmp_path):
    path, model = _save_pair(tmp_path)
    sidecar = sidecar_path(path)
    assert path == tmp_path / "tiny.safetensors" and sidecar == tmp_path / "tiny.json"
    # the weights are plain safetensors, the rest is plain JSON: no pickle anywhere
    tensors = load_file(str(path))
    assert tensors.keys() == model.state_dict().keys()
    assert all(torch.equal(tensors[k], v) for k, v in model.state_dict().items())
    meta = json.loads(sidecar.read_text())
    assert meta["format"] == "cnnviz-checkpoint" and meta["weights"] == "tiny.safetensors"
    assert meta["labels"] == ["circle", "square", "triangle"] and meta["spec"] == TINY_SPEC
    assert meta["metrics"] == {"val_acc": 0.75, "loss": None}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tiny.json", "tiny.safetensors"]


@pytest.mark.parametrize("which", ["tiny.safetensors", "tiny.json"])
def test_a_checkpoint_pair_loads_as_the_full_model(tmp_path, which):
    path, model = _save_pair(tmp_path)
    loaded = load_model(str(tmp_path / which))
    assert loaded.source == "checkpoint" and loaded.labels == ["circle", "square", "triangle"]
    assert loaded.preprocess == Preprocess(1, (16, 16), "letterbox", None, (0.2,), (0.4,))
    assert loaded.input_shape == (1, 16, 16) and loaded.spec is not None
    x = torch.randn(2, 1, 16, 16)
    with torch.no_grad():
        assert torch.equal(loaded.module(x), model(x))
    assert loaded.metadata["metrics"]["val_acc"] == 0.75
    ckpt = read_checkpoint(path)
    assert ckpt is not None and ckpt["metrics"]["loss"] is None


def test_saving_never_overwrites_a_spec_as_the_sidecar(tmp_path):
    spec = _spec_file(tmp_path)
    before = spec.read_bytes()
    with pytest.raises(ModelLoadError, match="tiny.json beside it.* would be overwritten"):
        _save_pair(tmp_path)
    assert spec.read_bytes() == before and not (tmp_path / "tiny.safetensors").exists()
    # saving again over an earlier checkpoint pair is fine
    path, _ = _save_pair(tmp_path, "again.safetensors")
    again, model = _save_pair(tmp_path, "again.safetensors")
    assert again == path and load_model(str(path)).labels == ["circle", "square", "triangle"]


def test_a_checkpoint_without_its_sidecar_says_so(tmp_path):
    path, _ = _save_pair(tmp_path)
    sidecar_path(path).unlink()
    with pytest.raises(
        ModelLoadError, match=r"lacks its sidecar tiny.json .*put the two files side by side"
    ):
        load_model(str(path))


def test_weights_swapped_under_a_sidecar_are_refused(tmp_path):
    path, _ = _save_pair(tmp_path)
    other = build_model(TINY_SPEC).state_dict()
    save_file(
        {k: v + 1 for k, v in other.items()}, str(path), metadata={"format": "cnnviz-checkpoint"}
    )
    with pytest.raises(ModelLoadError, match="does not belong to its sidecar tiny.json"):
        load_model(str(path))


def test_cli_train_writes_a_safetensors_checkpoint(tmp_path, capsys):
    data = make_folder(tmp_path / "shapes")
    out = tmp_path / "trained.safetensors"
    code = main(
        ["train", "--arch", str(_spec_file(tmp_path)), "--data", str(data), "--epochs", "1"]
        + ["--out", str(out), "--batch-size", "16", "--format", "json", "--device", "cpu"]
    )
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert out.is_file() and sidecar_path(out).is_file()
    ckpt = read_checkpoint(out)
    assert ckpt is not None and ckpt["labels"] == list(SHAPES)
    loaded = load_model(str(out))
    x = torch.randn(1, 1, 16, 16)
    reference = build_model(TINY_SPEC).eval()
    reference.load_state_dict(load_file(str(out)))
    with torch.no_grad():
        assert torch.equal(loaded.module(x), reference(x))
    code = main(["summary", "--model", str(out), "--format", "json"])
    assert code == 0 and json.loads(capsys.readouterr().out)["model"]
