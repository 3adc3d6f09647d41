"""cnnviz: see inside convolutional networks.

The public API for scripts and notebooks::

    import cnnviz
    model = cnnviz.load_model("resnet18", weights="none")
    table = cnnviz.summarize(model)                       # per-layer shapes, params, MACs, receptive fields
    table.to_pandas()                                     # in a notebook the table shows itself as HTML
    acts = cnnviz.capture(model, cnnviz.load_image("cat.jpg", model.preprocess))
    box = cnnviz.receptive_field(model, "layer3", (4, 7))
    cnnviz.show(model, "cat.jpg", "layer3", unit=(4, 7))  # a picture: the unit's receptive field
    top = cnnviz.top_units(model, "photos/", "layer3", k=9)  # per channel, the units that fire most
    erf = cnnviz.dataset_erf(model, "photos/", "layer3")      # a unit's effective field over a folder
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from cnnviz._version import __version__

__all__ = [
    "__version__",
    "load_model",
    "load_image",
    "capture",
    "summarize",
    "receptive_field",
    "effective_receptive_field",
    "predict",
    "show",
    "top_units",
    "dataset_erf",
]

# Imported on first use so that `import cnnviz` (and `cnnviz --version`) load no torch.
_LAZY = {
    "load_model": "cnnviz.core.models",
    "load_image": "cnnviz.core.images",
    "capture": "cnnviz.core.analysis.capture",
    "summarize": "cnnviz.core.present.notebook",
    "receptive_field": "cnnviz.core.analysis.receptive",
    "effective_receptive_field": "cnnviz.core.analysis.receptive",
    "predict": "cnnviz.core.analysis.predict",
    "show": "cnnviz.core.present.notebook",
    "top_units": "cnnviz.core.analysis.dataset",
    "dataset_erf": "cnnviz.core.analysis.dataset",
}

if TYPE_CHECKING:
    from cnnviz.core.analysis.capture import capture
    from cnnviz.core.analysis.dataset import dataset_erf, top_units
    from cnnviz.core.analysis.predict import predict
    from cnnviz.core.analysis.receptive import effective_receptive_field, receptive_field
    from cnnviz.core.images import load_image
    from cnnviz.core.models import load_model
    from cnnviz.core.present.notebook import show, summarize


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'cnnviz' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
