"""Training small CNNs: the loop (``loop``), the data sets it reads (``datasets``: picture folders,
synthetic digits, torchvision's MNIST, Fashion-MNIST and CIFAR-10) and the synthetic digits themselves
(``digits``). The package re-exports the loop's API; data sets and digits are imported from their
modules.
"""

from __future__ import annotations

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
