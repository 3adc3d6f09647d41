"""``load_model`` on real sources: torchvision names, state_dict files, specs, checkpoints, TorchScript, .pt2.

Every model is built in code (torchvision ``weights=None``) and every file is written into ``tmp_path``; nothing
is downloaded. Truth is computed here: fresh torchvision models, ``weights.transforms()``, forward passes.
"""

from __future__ import annotations

import builtins
import json
import os
import pickle
import shlex
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import torch
import torchvision
from torch import nn

from cnnviz.core.errors import CnnvizError, ModelLoadError, UntrustedFileError
from cnnviz.core.images import Preprocess
from cnnviz.core.models import LoadedModel, load_model
from cnnviz.core.models.checkpoint import save_checkpoint
from cnnviz.core.resources import resource_path

SPEC = {
    "name": "small test net",
    "input_shape": [1, 12, 12],
    "labels": ["a", "b", "c"],
    "layers": [
        {"type": "Conv2d", "out_channels": 4, "kernel_size": 3, "padding": 1},
        {"type": "BatchNorm2d"},
        {"type": "ReLU"},
        {"type": "MaxPool2d", "kernel_size": 2},
        {"type": "Flatten"},
        {"type": "Linear", "out_features": 3},
    ],
}


class TinyNet(nn.Module):
    """Defined at module level so that a pickled instance can be unpickled again."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3, padding=1)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(4, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.flatten(self.pool(torch.relu(self.conv(x))), 1))


class ExecPayload:
    """Unpickling this runs Python code that creates ``marker``."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return (builtins.exec, (f"open({self.marker!r}, 'w').write('pwned')",))


class SystemPayload:
    """Unpickling this runs a shell command that creates ``marker``."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        code = f"open({self.marker!r}, 'w').write('pwned')"
        return (os.system, (f"{shlex.quote(sys.executable)} -c {shlex.quote(code)}",))


def _tiny_cnn() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(4 * 6 * 6, 3),
    ).eval()


def _assert_same_state(actual: dict, expected: dict) -> None:
    assert set(actual) == set(expected)
    for key, value in expected.items():
        assert torch.equal(actual[key], value), key


def _assert_one_line_naming(exc: BaseException, path: Path) -> None:
    text = str(exc)
    assert "\n" not in text
    assert path.name in text


def _all_eval(module: nn.Module) -> bool:
    return not any(m.training for m in module.modules())


def _write_spec(tmp_path: Path, spec: dict = SPEC, name: str = "arch.json") -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(spec))
    return path


# ---------------------------------------------------------------------------------------------------------------
# torchvision names


@pytest.mark.parametrize(
    ("name", "weights_enum"),
    [
        ("resnet18", torchvision.models.ResNet18_Weights),
        ("mobilenet_v3_small", torchvision.models.MobileNet_V3_Small_Weights),
    ],
)
def test_torchvision_name_with_random_weights(name, weights_enum):
    loaded = load_model(name, weights="none")
    reference = torchvision.models.get_model(name, weights=None)

    assert isinstance(loaded, LoadedModel)
    assert type(loaded.module) is type(reference)
    assert loaded.name == name
    assert loaded.source == "torchvision"
    assert loaded.spec is None
    assert _all_eval(loaded.module)
    assert sum(p.numel() for p in loaded.module.parameters()) == sum(
        p.numel() for p in reference.parameters()
    )
    assert loaded.input_shape == (3, 224, 224)

    categories = weights_enum.IMAGENET1K_V1.meta["categories"]
    assert loaded.labels == list(categories)
    assert len(loaded.labels) == 1000

    transforms = weights_enum.DEFAULT.transforms()
    pre = loaded.preprocess
    assert pre.channels == 3
    assert pre.size == (transforms.crop_size[0], transforms.crop_size[0])
    assert pre.resize_size == transforms.resize_size[0]
    assert pre.mode == "resize_crop"
    assert pre.mean == pytest.approx(tuple(transforms.mean))
    assert pre.std == pytest.approx(tuple(transforms.std))
    assert pre.interpolation == transforms.interpolation.value

    x = loaded.example_input()
    assert x.shape == (1, 3, 224, 224)
    with torch.no_grad():
        assert loaded.module(x).shape == (1, 1000)


@pytest.mark.parametrize("weights", [None, "None", "random", "RANDOM"])
def test_other_spellings_of_random_weights(weights):
    loaded = load_model("mobilenet_v3_small", weights=weights)
    assert loaded.source == "torchvision"
    assert loaded.metadata["weights"] == "none"
    assert _all_eval(loaded.module)


def test_inception_v3_takes_299_pixels():
    # Built on the meta device: only the architecture and its preprocessing matter here, and inception's
    # truncated-normal initialisation of 27M parameters would dominate the run time.
    with torch.device("meta"):
        loaded = load_model("inception_v3", weights="none")
    transforms = torchvision.models.Inception_V3_Weights.DEFAULT.transforms()
    assert transforms.crop_size == [299]
    assert loaded.input_shape == (3, 299, 299)
    assert loaded.preprocess.size == (299, 299)
    assert loaded.preprocess.resize_size == transforms.resize_size[0]


@pytest.mark.parametrize(
    ("typo", "expected"), [("resnet19", "resnet18"), ("mobilenet_v3_smal", "mobilenet_v3_small")]
)
def test_unknown_name_suggests_close_names(typo, expected):
    with pytest.raises(ModelLoadError) as info:
        load_model(typo, weights="none")
    text = str(info.value)
    assert f"'{typo}'" in text
    assert "did you mean" in text
    assert expected in text
    assert "\n" not in text


def test_unknown_name_without_close_match_says_what_is_accepted():
    with pytest.raises(ModelLoadError) as info:
        load_model("qqqqzzzz", weights="none")
    text = str(info.value)
    assert "qqqqzzzz" in text
    assert "resnet18" in text and ".json" in text


# ---------------------------------------------------------------------------------------------------------------
# Pretrained weights: the torch hub cache, downloads, offline


@pytest.fixture
def hub_checkpoints(tmp_path, monkeypatch) -> Path:
    """An empty torch hub cache in tmp_path."""
    home = tmp_path / "torch-home"
    monkeypatch.setenv("TORCH_HOME", str(home))
    assert Path(torch.hub.get_dir()) == home / "hub"
    return home / "hub" / "checkpoints"


@pytest.fixture
def offline(monkeypatch) -> list[str]:
    """No network: every urlopen fails as it does on a machine without a connection."""
    asked: list[str] = []

    def refuse(url, *args, **kwargs):
        asked.append(url if isinstance(url, str) else url.full_url)
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(urllib.request, "urlopen", refuse)
    return asked


def _hub_name(weights) -> str:
    return weights.url.rsplit("/", 1)[-1]


def test_default_weights_offline_name_the_file_and_the_cache(hub_checkpoints, offline):
    weights = torchvision.models.ResNet18_Weights.DEFAULT
    with pytest.raises(ModelLoadError) as info:
        load_model("resnet18", weights="default")
    text = str(info.value)
    assert offline == [weights.url]
    assert _hub_name(weights) in text
    assert str(hub_checkpoints) in text
    assert "random weights" in text
    assert "\n" not in text
    # nothing half-written is left in the cache
    assert not hub_checkpoints.exists() or list(hub_checkpoints.iterdir()) == []


@pytest.mark.parametrize("weights", ["default", "IMAGENET1K_V1"])
def test_default_weights_come_from_the_hub_cache(hub_checkpoints, offline, weights):
    torch.manual_seed(1)
    state = torchvision.models.resnet18(weights=None).state_dict()
    hub_checkpoints.mkdir(parents=True)
    torch.save(
        state, hub_checkpoints / _hub_name(torchvision.models.ResNet18_Weights.IMAGENET1K_V1)
    )

    loaded = load_model("resnet18", weights=weights)
    assert offline == []  # found in the cache, never asked the network
    _assert_same_state(loaded.module.state_dict(), state)
    assert _all_eval(loaded.module)
    assert loaded.metadata["weights"] == "ResNet18_Weights.IMAGENET1K_V1"
    assert loaded.labels == torchvision.models.ResNet18_Weights.IMAGENET1K_V1.meta["categories"]


def test_damaged_cache_file_is_named(hub_checkpoints, offline):
    hub_checkpoints.mkdir(parents=True)
    damaged = hub_checkpoints / _hub_name(torchvision.models.ResNet18_Weights.DEFAULT)
    damaged.write_bytes(b"<html>502 Bad Gateway</html>")
    with pytest.raises(ModelLoadError) as info:
        load_model("resnet18", weights="default")
    assert str(damaged) in str(info.value)
    assert "delete" in str(info.value)


def test_download_fills_the_cache_atomically_with_progress(tmp_path, hub_checkpoints, monkeypatch):
    torch.manual_seed(2)
    state = torchvision.models.resnet18(weights=None).state_dict()
    served = tmp_path / "served.pth"
    torch.save(state, served)
    real_urlopen = urllib.request.urlopen
    asked: list[str] = []

    def from_disk(url, *args, **kwargs):
        asked.append(url)
        return real_urlopen(served.as_uri(), *args, **kwargs)

    monkeypatch.setattr(urllib.request, "urlopen", from_disk)
    calls: list[tuple[int, int]] = []
    loaded = load_model("resnet18", weights="default", progress=lambda d, t: calls.append((d, t)))

    weights = torchvision.models.ResNet18_Weights.DEFAULT
    assert asked == [weights.url]
    cached = hub_checkpoints / _hub_name(weights)
    assert cached.read_bytes() == served.read_bytes()
    assert sorted(p.name for p in hub_checkpoints.iterdir()) == [cached.name]
    size = served.stat().st_size
    assert calls[-1] == (size, size)
    assert [d for d, _ in calls] == sorted(d for d, _ in calls)
    _assert_same_state(loaded.module.state_dict(), state)


def test_cancelled_download_leaves_no_partial_file(tmp_path, hub_checkpoints, monkeypatch):
    served = tmp_path / "served.pth"
    torch.save(torchvision.models.resnet18(weights=None).state_dict(), served)
    real_urlopen = urllib.request.urlopen
    monkeypatch.setattr(
        urllib.request, "urlopen", lambda url, *a, **k: real_urlopen(served.as_uri(), *a, **k)
    )

    class Cancelled(Exception):
        pass

    def cancel(done: int, total: int) -> None:
        if done > total // 3:
            raise Cancelled("cancelled by the user")

    with pytest.raises(ModelLoadError):
        load_model("resnet18", weights="default", progress=cancel)
    assert list(hub_checkpoints.iterdir()) == []


# ---------------------------------------------------------------------------------------------------------------
# state_dict files


@pytest.fixture(scope="module")
def mobilenet_state() -> dict[str, torch.Tensor]:
    torch.manual_seed(4)
    return torchvision.models.mobilenet_v3_small(weights=None).state_dict()


def test_state_dict_for_a_torchvision_name_loads_exactly(tmp_path):
    torch.manual_seed(3)
    state = torchvision.models.resnet18(weights=None).state_dict()
    path = tmp_path / "resnet18_weights.pth"
    torch.save(state, path)

    loaded = load_model("resnet18", weights=str(path))
    _assert_same_state(loaded.module.state_dict(), state)
    assert _all_eval(loaded.module)
    assert loaded.metadata["weights"] == str(path)
    assert len(loaded.labels) == 1000


@pytest.mark.parametrize(
    "wrap",
    [
        lambda s: {f"module.{k}": v for k, v in s.items()},  # saved from DataParallel
        lambda s: {f"_orig_mod.{k}": v for k, v in s.items()},  # saved from torch.compile
        lambda s: {"state_dict": s, "epoch": 7, "best_acc": 0.5},  # a training checkpoint
        lambda s: {"model_state_dict": s, "optimizer": "sgd"},
    ],
    ids=["module-prefix", "compile-prefix", "state_dict-key", "model_state_dict-key"],
)
def test_common_state_dict_wrappings(tmp_path, wrap, mobilenet_state):
    path = tmp_path / "wrapped.pt"
    torch.save(wrap(mobilenet_state), path)
    loaded = load_model("mobilenet_v3_small", weights=path)
    _assert_same_state(loaded.module.state_dict(), mobilenet_state)


def test_state_dict_with_another_class_count_drops_imagenet_labels(tmp_path):
    torch.manual_seed(5)
    reference = torchvision.models.mobilenet_v3_small(weights=None, num_classes=10)
    path = tmp_path / "ten_classes.pt"
    torch.save(reference.state_dict(), path)
    loaded = load_model("mobilenet_v3_small", weights=path)
    assert loaded.module.classifier[-1].out_features == 10
    assert loaded.labels is None
    _assert_same_state(loaded.module.state_dict(), reference.state_dict())


def test_state_dict_with_wrong_keys_lists_missing_and_unexpected(tmp_path, mobilenet_state):
    state = dict(mobilenet_state)
    state["stem.weight"] = state.pop("features.0.0.weight")
    path = tmp_path / "renamed.pt"
    torch.save(state, path)
    with pytest.raises(ModelLoadError) as info:
        load_model("mobilenet_v3_small", weights=path)
    text = str(info.value)
    assert "missing keys: features.0.0.weight" in text
    assert "unexpected keys: stem.weight" in text
    _assert_one_line_naming(info.value, path)


def test_state_dict_with_wrong_shapes_names_them(tmp_path, mobilenet_state):
    state = dict(mobilenet_state)
    state["features.0.0.weight"] = torch.zeros(16, 3, 5, 5)
    path = tmp_path / "reshaped.pt"
    torch.save(state, path)
    with pytest.raises(ModelLoadError) as info:
        load_model("mobilenet_v3_small", weights=path)
    assert "features.0.0.weight [16, 3, 5, 5] vs [16, 3, 3, 3]" in str(info.value)
    _assert_one_line_naming(info.value, path)


def test_state_dict_alone_as_model_says_it_holds_only_weights(tmp_path, mobilenet_state):
    path = tmp_path / "only_weights.pt"
    torch.save(mobilenet_state, path)
    with pytest.raises(ModelLoadError) as info:
        load_model(path)
    text = str(info.value)
    assert "only weights" in text
    assert f"--model resnet18 --weights {path.name}" in text
    _assert_one_line_naming(info.value, path)


def test_weights_file_that_does_not_exist(tmp_path):
    missing = tmp_path / "nowhere.pth"
    with pytest.raises(ModelLoadError) as info:
        load_model("resnet18", weights=missing)
    _assert_one_line_naming(info.value, missing)
    assert "does not exist" in str(info.value)


# ---------------------------------------------------------------------------------------------------------------
# Specs and checkpoints


def test_spec_json_builds_its_sequence(tmp_path):
    path = _write_spec(tmp_path)
    loaded = load_model(path)
    assert loaded.source == "spec"
    assert loaded.name == SPEC["name"]
    assert loaded.input_shape == (1, 12, 12)
    assert loaded.labels == SPEC["labels"]
    assert loaded.spec is not None and loaded.spec["layers"] == SPEC["layers"]
    assert _all_eval(loaded.module)
    assert [type(m).__name__ for m in loaded.module] == [layer["type"] for layer in SPEC["layers"]]
    assert loaded.preprocess.channels == 1
    assert loaded.preprocess.size == (12, 12)
    with torch.no_grad():
        assert loaded.module(loaded.example_input()).shape == (1, 3)


def test_spec_with_its_state_dict(tmp_path):
    spec_path = _write_spec(tmp_path)
    torch.manual_seed(6)
    trained = load_model(spec_path).module
    for p in trained.parameters():
        p.data.normal_()
    trained[1].running_mean.normal_()
    state = trained.state_dict()
    weights = tmp_path / "arch_weights.pt"
    torch.save(state, weights)

    loaded = load_model(spec_path, weights=str(weights))
    _assert_same_state(loaded.module.state_dict(), state)
    assert loaded.metadata["weights"] == str(weights)
    assert _all_eval(loaded.module)
    x = torch.randn(2, 1, 12, 12)
    with torch.no_grad():
        assert torch.equal(loaded.module(x), trained.eval()(x))


def test_spec_with_a_state_dict_of_another_architecture(tmp_path):
    spec_path = _write_spec(tmp_path)
    other = tmp_path / "resnet_weights.pt"
    torch.save({"conv1.weight": torch.zeros(64, 3, 7, 7)}, other)
    with pytest.raises(ModelLoadError) as info:
        load_model(spec_path, weights=other)
    text = str(info.value)
    assert "missing keys: 0.weight" in text
    assert "unexpected keys: conv1.weight" in text
    _assert_one_line_naming(info.value, other)


def test_cnnviz_checkpoint_loads_without_trust(tmp_path):
    torch.manual_seed(7)
    module = load_model(_write_spec(tmp_path)).module
    for p in module.parameters():
        p.data.uniform_(-1, 1)
    preprocess = Preprocess(1, (12, 12), "letterbox", None, (0.25,), (0.5,), "bilinear", True)
    path = save_checkpoint(
        tmp_path / "trained.pt",
        spec=SPEC,
        state_dict=module.state_dict(),
        labels=["x", "y", "z"],
        preprocess=preprocess,
        metrics={"accuracy": 0.75, "epochs": 3},
    )
    loaded = load_model(path)
    assert loaded.source == "checkpoint"
    assert loaded.labels == ["x", "y", "z"]
    assert loaded.input_shape == (1, 12, 12)
    assert loaded.preprocess == preprocess
    assert loaded.metadata["metrics"] == {"accuracy": 0.75, "epochs": 3}
    assert loaded.spec is not None and loaded.spec["layers"] == SPEC["layers"]
    _assert_same_state(loaded.module.state_dict(), module.state_dict())
    assert _all_eval(loaded.module)


def test_bundled_default_model():
    path = resource_path("models", "digits.pt")
    if not path.is_file():
        pytest.skip(f"the bundled model {path} has not been trained into resources/ yet")
    loaded = load_model("default")
    assert loaded.source == "bundled"
    assert loaded.labels == [str(d) for d in range(10)]
    assert loaded.input_shape[0] == 1
    with torch.no_grad():
        out = loaded.module(loaded.example_input())
    assert out.shape == (1, 10)
    assert loaded.note is None


def test_default_model_without_its_weights_falls_back_to_its_architecture(monkeypatch):
    from cnnviz.core.models import load

    def without_weights(*parts: str) -> Path:
        if parts[-1] == "digits.pt":
            return resource_path("models", "digits_missing.pt")
        return resource_path(*parts)

    monkeypatch.setattr(load, "resource_path", without_weights)
    loaded = load_model("default")
    assert loaded.source == "bundled" and loaded.input_shape == (1, 28, 28)
    assert loaded.note is not None and "random weights" in loaded.note
    with torch.no_grad():
        assert loaded.module(loaded.example_input()).shape == (1, 10)


def test_model_file_suffixes_include_state_dicts():
    from cnnviz.core.models import MODEL_FILE_SUFFIXES

    assert ".bin" in MODEL_FILE_SUFFIXES and ".json" in MODEL_FILE_SUFFIXES
    assert all(s.startswith(".") and s == s.lower() for s in MODEL_FILE_SUFFIXES)


# ---------------------------------------------------------------------------------------------------------------
# TorchScript and torch.export


@pytest.mark.parametrize(("how", "filename"), [("script", "net.pt"), ("trace", "net.torchscript")])
def test_torchscript_archive(tmp_path, how, filename):
    net = _tiny_cnn()
    x = torch.randn(2, 1, 12, 12)
    scripted = torch.jit.script(net) if how == "script" else torch.jit.trace(net, x)
    path = tmp_path / filename
    torch.jit.save(scripted, str(path))

    loaded = load_model(path, input_shape=(1, 12, 12))
    assert loaded.source == "torchscript"
    assert loaded.name == "net"
    assert loaded.input_shape == (1, 12, 12)
    assert loaded.preprocess.channels == 1
    with torch.no_grad():
        assert torch.allclose(loaded.module(x), net(x))
        assert loaded.module(loaded.example_input()).shape == (1, 3)


@pytest.mark.parametrize("dynamic_batch", [False, True])
def test_exported_program_loads_and_recovers_its_input_shape(tmp_path, dynamic_batch):
    net = _tiny_cnn()
    example = torch.randn(2 if dynamic_batch else 1, 1, 12, 12)
    dynamic = {"input": {0: torch.export.Dim("batch")}} if dynamic_batch else None
    program = torch.export.export(net, (example,), dynamic_shapes=dynamic)
    path = tmp_path / "net.pt2"
    torch.export.save(program, str(path))

    loaded = load_model(path)
    assert loaded.source == "export"
    assert loaded.input_shape == (1, 12, 12)
    assert loaded.preprocess.channels == 1
    x = loaded.example_input()
    x.normal_()
    with torch.no_grad():
        assert torch.allclose(loaded.module(x), net(x))


def test_exported_program_saved_under_another_suffix(tmp_path):
    net = _tiny_cnn()
    program = torch.export.export(net, (torch.randn(1, 1, 12, 12),))
    path = tmp_path / "net_program.pt"
    torch.export.save(program, str(path))
    assert load_model(path).source == "export"


# ---------------------------------------------------------------------------------------------------------------
# Security: full unpickling only when trusted


@pytest.fixture(params=[ExecPayload, SystemPayload], ids=["exec", "os.system"])
def payload(request, tmp_path):
    """A live payload (proved by unpickling it once here) and its marker file, removed again."""
    marker = tmp_path / "PWNED"
    obj = request.param(marker)
    pickle.loads(pickle.dumps(obj))
    assert marker.exists(), "the payload must really run when fully unpickled"
    marker.unlink()
    return obj, marker


@pytest.mark.parametrize("filename", ["evil.pt", "evil.pth", "evil.bin"])
@pytest.mark.parametrize("wrapped", [False, True])
def test_pickle_with_a_payload_is_refused_and_never_run(tmp_path, payload, filename, wrapped):
    obj, marker = payload
    path = tmp_path / filename
    torch.save({"model": obj, "epoch": 1} if wrapped else obj, path)
    with pytest.raises(UntrustedFileError) as info:
        load_model(path)
    assert not marker.exists()
    text = str(info.value)
    assert "--trust" in text
    _assert_one_line_naming(info.value, path)


@pytest.mark.parametrize("filename", ["evil.pkl", "evil.pt2", "serialized_exported_program.pt"])
def test_payload_in_other_containers_is_never_run(tmp_path, payload, filename):
    obj, marker = payload
    path = tmp_path / filename
    if filename.endswith(".pkl"):
        path.write_bytes(pickle.dumps(obj))
    else:
        torch.save(obj, path)
    with pytest.raises(ModelLoadError) as info:
        load_model(path)
    assert not marker.exists()
    _assert_one_line_naming(info.value, path)


def test_payload_given_as_weights_is_never_run(tmp_path, payload):
    obj, marker = payload
    path = tmp_path / "evil_weights.pt"
    torch.save(obj, path)
    with pytest.raises(UntrustedFileError):
        load_model("resnet18", weights=path)
    with pytest.raises(UntrustedFileError):
        load_model(_write_spec(tmp_path), weights=path)
    assert not marker.exists()


def test_trusted_pickled_module_loads(tmp_path):
    torch.manual_seed(8)
    net = TinyNet()
    path = tmp_path / "whole_model.pt"
    torch.save(net, path)

    with pytest.raises(UntrustedFileError):
        load_model(path)
    loaded = load_model(path, trust=True, input_shape=(1, 16, 16))
    assert isinstance(loaded.module, TinyNet)
    assert loaded.source == "pickled module"
    assert loaded.input_shape == (1, 16, 16)
    assert _all_eval(loaded.module)
    x = torch.randn(2, 1, 16, 16)
    with torch.no_grad():
        assert torch.equal(loaded.module(x), net.eval()(x))


def test_trusted_pickle_that_is_not_a_model(tmp_path):
    path = tmp_path / "layer.pt"
    torch.save(TinyNet().fc, path)  # a module: fine
    assert isinstance(load_model(path, trust=True).module, nn.Linear)
    path = tmp_path / "a_set.pt"
    torch.save({1, 2, 3}, path)  # a set needs full unpickling but is no model
    with pytest.raises(ModelLoadError) as info:
        load_model(path, trust=True)
    assert "set" in str(info.value)


# ---------------------------------------------------------------------------------------------------------------
# Bad files


def _state_dict_bytes(tmp_path: Path) -> bytes:
    path = tmp_path / "whole.pt"
    torch.save(_tiny_cnn().state_dict(), path)
    return path.read_bytes()


def _pt2_bytes(tmp_path: Path) -> bytes:
    path = tmp_path / "whole.pt2"
    torch.export.save(torch.export.export(_tiny_cnn(), (torch.randn(1, 1, 12, 12),)), str(path))
    return path.read_bytes()


def _torchscript_bytes(tmp_path: Path) -> bytes:
    path = tmp_path / "whole_ts.pt"
    torch.jit.save(torch.jit.script(_tiny_cnn()), str(path))
    return path.read_bytes()


BAD_FILES = {
    "empty": ("model.pt", lambda tmp: b""),
    "text": ("model.pt", lambda tmp: b"this is not a model\n"),
    "short-text": ("model.pth", lambda tmp: b"hello"),
    "truncated-pt": ("model.pt", lambda tmp: _state_dict_bytes(tmp)[:300]),
    "half-pt": ("model.pt", lambda tmp: (b := _state_dict_bytes(tmp))[: len(b) // 2]),
    "truncated-pt2": ("model.pt2", lambda tmp: (b := _pt2_bytes(tmp))[: len(b) // 2]),
    "truncated-torchscript": (
        "model.pt",
        lambda tmp: (b := _torchscript_bytes(tmp))[: len(b) // 2],
    ),
    "zip-header-only": ("model.pt", lambda tmp: b"PK\x03\x04" + b"\0" * 40),
    "pickle-header-only": ("model.pt", lambda tmp: b"\x80\x02"),
}


@pytest.mark.parametrize("kind", list(BAD_FILES))
def test_bad_file_gives_one_line_model_load_error(tmp_path, kind):
    filename, make = BAD_FILES[kind]
    path = tmp_path / "bad" / filename
    path.parent.mkdir()
    path.write_bytes(make(tmp_path))
    with pytest.raises(ModelLoadError) as info:
        load_model(path)
    _assert_one_line_naming(info.value, path)


def test_directory_is_not_a_model(tmp_path):
    folder = tmp_path / "checkpoints.pt"
    folder.mkdir()
    with pytest.raises(ModelLoadError) as info:
        load_model(folder)
    _assert_one_line_naming(info.value, folder)
    assert "folder" in str(info.value)


def test_missing_file(tmp_path):
    path = tmp_path / "absent.pt"
    with pytest.raises(ModelLoadError) as info:
        load_model(path)
    _assert_one_line_naming(info.value, path)
    assert "does not exist" in str(info.value)


def test_broken_spec_json_is_a_cnnviz_error(tmp_path):
    path = tmp_path / "broken.json"
    path.write_text('{"input_shape": [1, 12, 12], "layers": [')
    with pytest.raises(CnnvizError) as info:
        load_model(path)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(
    "content",
    [b"<html><body>404 Not Found</body></html>", b"\x89PNG\r\n\x1a\n" + b"\0" * 32, b'{"a": 1}'],
    ids=["html", "png", "json"],
)
def test_file_that_is_no_pickle_is_not_called_untrusted(tmp_path, content):
    path = tmp_path / "resnet18-f37072fd.pth"
    path.write_bytes(content)
    with pytest.raises(ModelLoadError) as info:
        load_model(path)
    assert not isinstance(info.value, UntrustedFileError)
    assert "--trust" not in str(info.value)


# ---------------------------------------------------------------------------------------------------------------
# Input shape overrides


def test_input_shape_override_keeps_the_crop_ratio():
    loaded = load_model("resnet18", weights="none", input_shape=(3, 160, 160))
    assert loaded.input_shape == (3, 160, 160)
    assert loaded.preprocess.size == (160, 160)
    assert loaded.preprocess.resize_size == round(160 * 256 / 224)
    assert loaded.example_input().shape == (1, 3, 160, 160)
    with torch.no_grad():
        assert loaded.module(loaded.example_input()).shape == (1, 1000)


def test_input_shape_override_of_a_spec(tmp_path):
    spec = {"input_shape": [1, 12, 12], "layers": SPEC["layers"][:4]}  # no Linear: any size fits
    loaded = load_model(_write_spec(tmp_path, spec), input_shape=(1, 20, 16))
    assert loaded.input_shape == (1, 20, 16)
    assert loaded.preprocess.size == (20, 16)
    with torch.no_grad():
        assert loaded.module(loaded.example_input()).shape == (1, 4, 10, 8)


@pytest.mark.parametrize("source", ["resnet18", "spec"])
def test_input_shape_with_other_channels_is_refused(tmp_path, source):
    model = "resnet18" if source == "resnet18" else _write_spec(tmp_path)
    channels = 3 if source == "resnet18" else 1
    with pytest.raises(ModelLoadError) as info:
        load_model(model, weights="none", input_shape=(channels + 1, 32, 32))
    text = str(info.value)
    assert f"{channels}-channel" in text
    assert f"not {channels + 1} channels" in text


def test_module_passed_directly():
    net = TinyNet()
    net.train()
    loaded = load_model(net, input_shape=(1, 10, 10))
    assert loaded.module is net
    assert _all_eval(net)
    assert loaded.input_shape == (1, 10, 10)
    assert loaded.source == "module"
