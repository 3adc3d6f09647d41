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

# Private names that modules outside this package still import from the package.
from cnnviz.core.models.spec.io import spec_preprocess as _spec_preprocess  # noqa: E402, F401, I001
from cnnviz.core.models.torchvision import _network_reason as _network_reason  # noqa: E402
