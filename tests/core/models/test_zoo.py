"""What the model zoo lists: torchvision's classification models and their weights, with the cache state."""

from __future__ import annotations

import torch
import torchvision

from cnnviz.core.models import torchvision as zoo


def test_zoo_lists_torchvision_classification_models():
    names = zoo.model_names()
    assert names == sorted(torchvision.models.list_models(module=torchvision.models))
    assert "resnet18" in names and "fasterrcnn_resnet50_fpn" not in names


def test_weights_default_first_and_cache_state(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    weights = zoo.weights_for("resnet18")
    assert [w.is_default for w in weights][:1] == [True] and not any(
        w.is_default for w in weights[1:]
    )
    default = weights[0]
    assert default.full == str(torchvision.models.ResNet18_Weights.DEFAULT)
    assert not default.cached and "download" in default.describe()
    path = tmp_path / "hub" / "checkpoints" / default.path.rsplit("/", 1)[-1]
    assert (
        default.path == str(path) == str(zoo._hub_file(torchvision.models.ResNet18_Weights.DEFAULT))
    )
    path.parent.mkdir(parents=True)
    path.write_bytes(b"x")
    assert zoo.weights_for("resnet18")[0].cached
    assert zoo.weights_for("no_such_model") == []
