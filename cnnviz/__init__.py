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

# Imported on first use so that `import cnnviz` (and `cnnviz --version`) load no torch.
_LAZY = {
    "load_model": "cnnviz.core.models",
    "load_image": "cnnviz.core.images",
    "capture": "cnnviz.core.analysis.capture",
    "summarize": "cnnviz.core.analysis.summary",
    "receptive_field": "cnnviz.core.analysis.receptive",
    "effective_receptive_field": "cnnviz.core.analysis.receptive",
    "predict": "cnnviz.core.analysis.predict",
}

if TYPE_CHECKING:
    from cnnviz.core.analysis.capture import capture
    from cnnviz.core.analysis.predict import predict
    from cnnviz.core.analysis.receptive import effective_receptive_field, receptive_field
    from cnnviz.core.analysis.summary import summarize
    from cnnviz.core.images import load_image
    from cnnviz.core.models import load_model


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
