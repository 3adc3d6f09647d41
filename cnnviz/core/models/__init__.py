"""Model sources: the bundled default, the torchvision zoo, spec JSON, checkpoints, TorchScript, .pt2.

``load_model`` dispatches over every source and returns a ``LoadedModel``; the modules here hold one source
each (``torchvision``, ``files`` for torch files and archives, ``checkpoint``), the audit of untrusted
archives (``safety``) and the loaded-model type (``loaded``).
"""

from cnnviz.core.models.load import DEFAULT_MODEL, MODEL_FILE_SUFFIXES, load_model
from cnnviz.core.models.loaded import LoadedModel
from cnnviz.core.models.torchvision import torchvision_model_names

__all__ = [
    "DEFAULT_MODEL",
    "MODEL_FILE_SUFFIXES",
    "LoadedModel",
    "load_model",
    "torchvision_model_names",
]
