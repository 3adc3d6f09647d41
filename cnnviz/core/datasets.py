"""Temporary: the old path of the training data sets; imports move to cnnviz.core.training.datasets."""

from cnnviz.core.training.datasets import (
    BUILTIN_DATASETS,
    SYNTHETIC_EVAL,
    SYNTHETIC_TRAIN,
    TensorData,
    TrainingData,
    cache_dir,
    channel_stats,
    image_folder,
    open_dataset,
    synthetic_digits,
    synthetic_digits_bytes,
    torchvision_dataset,
)

__all__ = [
    "BUILTIN_DATASETS",
    "SYNTHETIC_EVAL",
    "SYNTHETIC_TRAIN",
    "TensorData",
    "TrainingData",
    "cache_dir",
    "channel_stats",
    "image_folder",
    "open_dataset",
    "synthetic_digits",
    "synthetic_digits_bytes",
    "torchvision_dataset",
]
