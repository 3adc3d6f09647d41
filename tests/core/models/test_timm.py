"""timm models by name (``timm:NAME``): real timm models built in code, checked against timm and torch.

Truth comes from timm itself (``create_model``, ``resolve_data_config``, ``create_transform``, its ImageNet
info) and from plain forward hooks on a real forward pass; nothing is downloaded.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import timm
import torch
from PIL import Image
from safetensors.torch import save_file
from timm.data import ImageNetInfo, create_transform, resolve_data_config
from timm.models import get_pretrained_cfg
from torch import nn

from cnnviz.cli import main
from cnnviz.core.analysis.summary import summarize
from cnnviz.core.errors import ModelLoadError
from cnnviz.core.images.load import preprocess_pil
from cnnviz.core.models import load_model
from cnnviz.core.models.timm import preprocess_from_data_config, timm_model_names

REPO = Path(__file__).resolve().parents[3]


def _empty_container(module: nn.Module) -> bool:
    return isinstance(module, (nn.Sequential, nn.ModuleList, nn.ModuleDict)) and len(module) == 0


def hook_shapes(model: nn.Module, x: torch.Tensor) -> dict[str, list[tuple[int, ...]]]:
    """Every leaf module's tensor output shapes, one per call, recorded with plain hooks on a real forward."""
    shapes: dict[str, list[tuple[int, ...]]] = {}
    handles = []
    for name, module in model.named_modules():
        # An empty Sequential (timm's identity shortcut) runs no operation: torch.fx inlines it to
        # nothing, so the table has no row for it.
        if name and not list(module.children()) and not _empty_container(module):

            def hook(_m, _i, out, name=name):
                if isinstance(out, torch.Tensor):
                    shapes.setdefault(name, []).append(tuple(out.shape))

            handles.append(module.register_forward_hook(hook))
    with torch.no_grad():
        model(x)
    for h in handles:
        h.remove()
    return shapes


def assert_summary_matches_forward(name: str) -> None:
    loaded = load_model(f"timm:{name}", weights="none")
    reference = timm.create_model(name, pretrained=False)
    assert loaded.input_shape == tuple(resolve_data_config({}, model=reference)["input_size"])
    assert type(loaded.module) is type(reference)
    assert sum(p.numel() for p in loaded.module.parameters()) == sum(
        p.numel() for p in reference.parameters()
    )
    summary = summarize(loaded, receptive_fields=False)
    assert summary.traced, summary.note
    by_name = {r.name: r.output_shape for r in summary.rows}
    truth = hook_shapes(loaded.module, torch.randn(1, *loaded.input_shape))
    assert truth
    for module_name, calls in truth.items():
        for n, shape in enumerate(calls):
            key = module_name if n == 0 else f"{module_name}@{n}"
            assert by_name[key] == shape, key
    assert summary.total_params == sum(p.numel() for p in loaded.module.parameters())


def test_resnet18_by_name_matches_a_real_forward():
    assert_summary_matches_forward("resnet18")


@pytest.mark.slow
@pytest.mark.parametrize(
    "name",
    [
        "resnet50d",
        "efficientnet_b0",
        "mobilenetv3_small_100",
        "convnext_nano",
        "regnety_002",
        "xception41",
        "ghostnet_100",
        "vit_tiny_patch16_224",
    ],
)
def test_timm_zoo_by_name_matches_a_real_forward(name):
    assert_summary_matches_forward(name)


@pytest.mark.slow
def test_an_untraceable_timm_model_falls_back_to_hooks_and_says_so(capsys):
    # ConViT's attention branches on a tensor's value: torch.fx cannot trace it
    loaded = load_model("timm:convit_tiny", weights="none")
    summary = summarize(loaded, receptive_fields=False)
    assert not summary.traced
    assert summary.note is not None and "could not be traced with torch.fx" in summary.note
    by_name = {r.name: r.output_shape for r in summary.rows}
    truth = hook_shapes(loaded.module, torch.randn(1, *loaded.input_shape))
    assert truth
    for module_name, calls in truth.items():
        for n, shape in enumerate(calls):
            key = module_name if n == 0 else f"{module_name}@{n}"
            assert by_name[key] == shape, key
    code = main(["summary", "--model", "timm:convit_tiny"])
    out = capsys.readouterr().out
    assert code == 0 and "Note: the model could not be traced with torch.fx" in out


def test_input_size_and_labels_come_from_timm_config():
    loaded = load_model("timm:xception41", weights="none")
    assert loaded.input_shape == (3, 299, 299)
    assert loaded.preprocess.size == (299, 299)
    assert loaded.source == "timm" and loaded.name == "timm:xception41"
    descriptions = ImageNetInfo("imagenet-1k").label_descriptions(detailed=False)
    assert loaded.labels is not None and len(loaded.labels) == 1000 == len(descriptions)
    assert loaded.labels[0] == "tench" and descriptions[0].startswith("tench,")
    assert all(d.startswith(label) for label, d in zip(loaded.labels, descriptions, strict=True))
    with torch.no_grad():
        assert loaded.module(loaded.example_input()).shape == (1, 1000)


def test_a_bare_timm_module_keeps_its_own_input_size():
    module = timm.create_model("xception41", pretrained=False)
    loaded = load_model(module)
    assert loaded.input_shape == (3, 299, 299) and loaded.name == "timm:xception41"
    assert loaded.labels is not None and len(loaded.labels) == 1000
    # a new head: the configuration's class names no longer apply
    small = load_model(timm.create_model("resnet18", pretrained=False, num_classes=7))
    assert small.labels is None and small.input_shape == (3, 224, 224)


def _picture(height: int, width: int) -> Image.Image:
    rng = np.random.default_rng(height * 1000 + width)
    return Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8))


@pytest.mark.parametrize(
    "name",
    [
        "resnet18.a1_in1k",  # centre crop, crop_pct 0.95, bicubic
        "xception41.tf_in1k",  # 299, crop_pct 0.903
        "vit_tiny_patch16_224.augreg_in21k_ft_in1k",  # mean/std 0.5, crop_pct 0.9
        "efficientnet_b0.ra_in1k",  # crop_pct 0.875
        "coat_lite_medium_384.in1k",  # squash at crop_pct 1
        "mobilenetv3_small_100.lamb_in1k",
    ],
)
@pytest.mark.parametrize("size", [(311, 467), (500, 240), (224, 224)])
def test_preprocessing_equals_timms_own_transform(name, size):
    config = resolve_data_config({}, pretrained_cfg=get_pretrained_cfg(name).to_dict())
    preprocess, note = preprocess_from_data_config(config)
    assert note is None
    picture = _picture(*size)
    theirs = create_transform(**config)(picture)
    ours = preprocess_pil(picture, preprocess).tensor[0]
    assert ours.shape == theirs.shape
    assert float((ours - theirs).abs().max()) < 1e-5


def test_preprocessing_without_an_exact_counterpart_says_so():
    # dm_nfnet_f0 squashes to 213x213 and crops 192x192
    config = resolve_data_config({}, pretrained_cfg=get_pretrained_cfg("dm_nfnet_f0").to_dict())
    preprocess, note = preprocess_from_data_config(config)
    assert preprocess.size == (192, 192) and preprocess.mode == "resize"
    assert note is not None and "213×213" in note


def test_state_dict_files_load_exactly(tmp_path):
    torch.manual_seed(3)
    source = timm.create_model("resnet18", pretrained=False).eval()
    x = torch.randn(1, 3, 224, 224)
    with torch.no_grad():
        expected = source(x)
    for path in (tmp_path / "r18.pth", tmp_path / "r18.safetensors"):
        if path.suffix == ".pth":
            torch.save(source.state_dict(), path)
        else:
            save_file(source.state_dict(), str(path))
        loaded = load_model("timm:resnet18", weights=str(path))
        with torch.no_grad():
            assert torch.equal(loaded.module(x), expected)
        assert loaded.metadata["weights"] == str(path)


def test_a_state_dict_with_another_head_gets_that_head(tmp_path):
    source = timm.create_model("resnet18", pretrained=False, num_classes=5).eval()
    path = tmp_path / "five.safetensors"
    save_file(source.state_dict(), str(path))
    loaded = load_model("timm:resnet18", weights=str(path))
    assert loaded.labels is None
    x = torch.randn(1, 3, 224, 224)
    with torch.no_grad():
        assert torch.equal(loaded.module(x), source(x))


def test_weights_that_do_not_fit_are_listed(tmp_path):
    path = tmp_path / "r34.pth"
    torch.save(timm.create_model("resnet34", pretrained=False).state_dict(), path)
    with pytest.raises(ModelLoadError) as info:
        load_model("timm:resnet18", weights=str(path))
    message = str(info.value)
    assert "do not fit timm:resnet18" in message and "unexpected keys: layer1.2." in message
    assert "\n" not in message


def test_unknown_names_and_tags_give_close_matches():
    with pytest.raises(ModelLoadError, match=r"did you mean timm:resnet50"):
        load_model("timm:resnet5O", weights="none")
    with pytest.raises(
        ModelLoadError, match=r"no pretrained tag 'nope' for resnet18; its tags are timm:"
    ):
        load_model("timm:resnet18.nope", weights="none")


def test_a_model_without_pretrained_weights_says_so():
    arch = "botnet50ts_256"
    assert arch in timm.list_models() and arch not in timm_model_names(pretrained=True)
    with pytest.raises(
        ModelLoadError,
        match="timm has no pretrained weights for botnet50ts_256; pass --weights none",
    ):
        load_model(f"timm:{arch}", weights="default")


def test_zoo_names_with_and_without_pretrained_weights():
    everything = timm_model_names()
    pretrained = timm_model_names(pretrained=True)
    assert everything == sorted(timm.list_models())
    assert set(pretrained) <= set(everything) and "resnet50d" in pretrained
    assert pretrained == sorted({n.split(".")[0] for n in timm.list_models(pretrained=True)})


def _cli(
    args: list[str], env: dict[str, str], code: str | None = None
) -> subprocess.CompletedProcess:
    script = code or "import sys; from cnnviz.cli import main; sys.exit(main(sys.argv[1:]))"
    return subprocess.run(
        [sys.executable, "-c", script, *args],
        capture_output=True, text=True, env={**os.environ, **env}, cwd=REPO, timeout=300,
    )  # fmt: skip


def test_default_weights_offline_and_not_cached_is_one_line(tmp_path):
    home = tmp_path / "hf"
    result = _cli(
        ["summary", "--model", "timm:resnet18", "--weights", "default"],
        {"HF_HUB_OFFLINE": "1", "HF_HOME": str(home), "TORCH_HOME": str(tmp_path / "torch")},
    )
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    line = lines[0]
    assert line.startswith(
        "cnnviz: error: pretrained weights for timm:resnet18 are not in the cache"
    )
    assert str(home / "hub") in line and "--weights none" in line and "offline" in line
    assert "timm/resnet18" in line


def test_cli_summary_of_a_timm_name(capsys):
    code = main(["summary", "--model", "timm:resnet18", "--weights", "none", "--format", "json"])
    out, err = capsys.readouterr()
    assert code == 0, err
    table = json.loads(out)
    assert table["model"] == "timm:resnet18" and table["input_shape"] == [3, 224, 224]
    rows = table["layers"]
    by_name = {r["name"]: r for r in rows}
    assert by_name["fc"]["output_shape"] == [1, 1000]
    assert by_name["conv1"]["output_shape"] == [1, 64, 112, 112]


def test_cli_unknown_timm_name_is_one_line_with_a_hint(capsys):
    code = main(["summary", "--model", "timm:nonexistent"])
    err = capsys.readouterr().err
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith(
        "cnnviz: error: timm has no model 'nonexistent'; the nearest names are timm:"
    )


def test_without_timm_the_error_says_how_to_install_it():
    blocked = (
        "import sys; sys.modules['timm'] = None; from cnnviz.cli import main; "
        "sys.exit(main(sys.argv[1:]))"
    )
    result = _cli(["summary", "--model", "timm:resnet18", "--weights", "none"], {}, blocked)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "pip install cnnviz[timm]" in lines[0] and lines[0].startswith("cnnviz: error: ")
