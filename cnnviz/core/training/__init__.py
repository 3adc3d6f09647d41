"""Training small CNNs: the loop (``loop``), the defaults that scale with the data and the verdict on a run
(``plan``), the data sets it reads (``datasets``: picture folders, synthetic digits, torchvision's MNIST,
Fashion-MNIST and CIFAR-10) and the synthetic digits themselves (``digits``).

The package re-exports the loop's API lazily, so that ``plan`` (stdlib only) can be imported by the command
line's argument parser without loading torch; data sets and digits are imported from their modules.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from cnnviz.core.training.loop import (
        Callbacks,
        TrainCallbacks,
        TrainResult,
        check_classes,
        evaluate,
        output_size,
        pick_device,
        split_validation,
        train,
    )

__all__ = [
    "Callbacks",
    "TrainCallbacks",
    "TrainResult",
    "check_classes",
    "evaluate",
    "output_size",
    "pick_device",
    "split_validation",
    "train",
]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from cnnviz.core.training import loop

        return getattr(loop, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
