"""Temporary: the old path of cnnviz checkpoints; imports move to cnnviz.core.models.checkpoint."""

from cnnviz.core.models.checkpoint import (
    FORMAT,
    VERSION,
    atomic_torch_save,
    is_checkpoint,
    make_checkpoint,
    read_checkpoint,
    save_checkpoint,
)

__all__ = [
    "FORMAT",
    "VERSION",
    "atomic_torch_save",
    "is_checkpoint",
    "make_checkpoint",
    "read_checkpoint",
    "save_checkpoint",
]
