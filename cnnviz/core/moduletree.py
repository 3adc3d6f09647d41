"""Flat walks over a module tree: every module once, and every distinct parameter and buffer.

``named_modules()`` and ``parameters()`` build a dotted name for every entry; capture and the memory budget
walk the tree on every pass, where those names cost several times the walk itself.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # imported by modules that must not load torch themselves (the memory budget)
    import torch
    from torch import nn


_WALKED: ContextVar[dict[int, tuple[nn.Module, list[nn.Module]]] | None] = ContextVar(
    "cnnviz_walked", default=None
)


@contextmanager
def walked_once(model: nn.Module) -> Iterator[None]:
    """Within this block :func:`all_modules` walks ``model`` once and hands out that list again: one capture
    validates, counts and flags the same tree several times, and the tree does not change meanwhile."""
    outer = _WALKED.get()
    token = _WALKED.set({**(outer or {}), id(model): (model, _walk(model))})
    try:
        yield
    finally:
        _WALKED.reset(token)


def all_modules(model: nn.Module) -> list[nn.Module]:
    """``model`` and every submodule, each once, in the order of ``model.modules()``."""
    walked = _WALKED.get()
    if walked is not None:
        hit = walked.get(id(model))
        if hit is not None and hit[0] is model:
            return hit[1]
    return _walk(model)


def _walk(model: nn.Module) -> list[nn.Module]:
    out: list[nn.Module] = []
    seen: set[int] = set()
    stack = [model]
    while stack:
        m = stack.pop()
        if id(m) in seen:
            continue
        seen.add(id(m))
        out.append(m)
        children = m._modules
        if children:  # most modules are leaves: no generator made for them
            stack.extend([c for c in reversed(children.values()) if c is not None])
    return out


def distinct_tensors(model: nn.Module) -> list[torch.Tensor]:
    """Every parameter, then every buffer, of ``model`` and its submodules, each tensor once."""
    modules = all_modules(model)
    tensors: list[torch.Tensor | None] = [t for m in modules for t in m._parameters.values()]
    tensors += [b for m in modules for b in m._buffers.values()]
    # a tensor shared by several modules keeps its first place
    return list({id(t): t for t in tensors if t is not None}.values())
