"""The flat module walks against torch's own ``modules()``, ``parameters()`` and ``buffers()``."""

from __future__ import annotations

import torch
import torchvision
from torch import nn

from cnnviz.core.moduletree import all_modules, distinct_tensors, walked_once


def tied_model() -> nn.Module:
    shared = nn.Linear(4, 4)
    model = nn.Sequential(shared, nn.ReLU(), nn.Sequential(shared, nn.BatchNorm1d(4)))
    model.register_buffer("scale", torch.ones(1))
    return model


def test_walks_equal_torchs_own_on_real_and_tied_models() -> None:
    for model in (torchvision.models.mobilenet_v3_small(), tied_model()):
        assert [id(m) for m in all_modules(model)] == [id(m) for m in model.modules()]
        truth = [id(t) for t in (*model.parameters(), *model.buffers())]
        assert [id(t) for t in distinct_tensors(model)] == truth


def test_walked_once_shares_one_walk_inside_and_sees_changes_after() -> None:
    model = tied_model()
    with walked_once(model):
        first = all_modules(model)
        model.append(nn.Tanh())  # a change inside the block is not seen: the block promises none
        assert all_modules(model) is first
        other = nn.Sequential(nn.ReLU())
        assert len(all_modules(other)) == 2  # other models are walked as usual
    after = all_modules(model)
    assert after is not first and isinstance(after[-1], nn.Tanh)
