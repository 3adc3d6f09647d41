"""cnnviz: see inside convolutional networks.

The public API for scripts and notebooks::

    import cnnviz
    model = cnnviz.load_model("resnet18", weights="none")
    table = cnnviz.summarize(model)                       # per-layer shapes, params, MACs, receptive fields
    acts = cnnviz.capture(model, cnnviz.load_image("cat.jpg", model.preprocess))
    box = cnnviz.receptive_field(model, "layer3", (4, 7))
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
]

# Imported on first use so that `import cnnviz` (and `cnnviz --version`) stay fast.
_LAZY = {
    "load_model": "cnnviz.core.models",
    "load_image": "cnnviz.core.images",
    "capture": "cnnviz.core.capture",
    "summarize": "cnnviz.core.summary",
    "receptive_field": "cnnviz.core.receptive",
    "effective_receptive_field": "cnnviz.core.receptive",
    "predict": "cnnviz.core.predict",
}

if TYPE_CHECKING:
    from cnnviz.core.capture import capture
    from cnnviz.core.images import load_image
    from cnnviz.core.models import load_model
    from cnnviz.core.predict import predict
    from cnnviz.core.receptive import effective_receptive_field, receptive_field
    from cnnviz.core.summary import summarize


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'cnnviz' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
