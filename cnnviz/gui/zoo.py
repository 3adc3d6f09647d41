"""Temporary: the old path of the model zoo listing; imports move to cnnviz.core.models.torchvision."""

from cnnviz.core.models.torchvision import ZooWeights, model_names, weights_for

__all__ = ["ZooWeights", "model_names", "weights_for"]
