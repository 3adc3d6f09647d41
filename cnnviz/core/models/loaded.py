"""The loaded model: the module with what the app needs around it (shape, preprocessing, labels, spec)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from cnnviz.core.errors import ArgumentTypeError
from cnnviz.core.images import Preprocess
from cnnviz.core.validate import describe


@dataclass
class LoadedModel:
    """A model ready to run, with what the app needs around it.

    ``module`` is in eval mode. ``preprocess`` turns pictures into inputs of ``input_shape`` (C, H, W).
    ``labels`` names the output classes (None when unknown). ``spec`` is the architecture spec for models that are a
    sequence of layers (editable), else None. ``source`` says where it came from ("bundled", "torchvision", "spec",
    "checkpoint", "torchscript", "export", "state_dict"). ``note`` is a sentence the user should see about how
    the model was loaded (a fallback taken), else None.
    """

    module: nn.Module
    name: str
    input_shape: tuple[int, int, int]
    preprocess: Preprocess
    labels: list[str] | None = None
    spec: dict[str, Any] | None = None
    source: str = "module"
    metadata: dict[str, Any] = field(default_factory=dict)
    note: str | None = None

    @property
    def weights_origin(self) -> str:
        """Where the weights come from: ``"random"`` (freshly initialised: outputs change with every load),
        ``"partly random"`` (an edit re-initialised some layers), ``"pretrained"`` (a zoo's published weights),
        ``"file"`` (read from a file), ``"trained"`` (trained in this session) or ``"given"`` (a module passed in
        as it was). ``metadata["weights_origin"]`` overrides what the source and metadata imply."""
        meta = self.metadata or {}
        if isinstance(meta.get("weights_origin"), str):
            return str(meta["weights_origin"])
        weights = meta.get("weights")
        if weights == "none":
            base = "random"
        elif isinstance(weights, str):
            base = "pretrained" if "_Weights." in weights else "file"  # a zoo enum, else a file
        elif self.source == "trained" or meta.get("metrics") is not None and "path" not in meta:
            base = "trained"
        elif "path" in meta:
            base = {"module": "given", "bundled": "pretrained"}.get(self.source, "file")
        elif self.source in ("spec", "bundled", "edited"):
            base = "random"
        else:
            base = "given"
        edited = meta.get("edited")
        if self.source == "edited" and isinstance(edited, dict) and base != "random":
            if edited.get("reinitialised"):
                return "random" if not edited.get("kept") else "partly random"
        return base

    def example_input(self, device: str | torch.device = "cpu") -> torch.Tensor:
        """A zero tensor of the model's input shape with a batch of one."""
        return torch.zeros((1, *self.input_shape), device=device)


def _shape3(shape: Any) -> tuple[int, int, int]:
    c, h, w = (int(v) for v in shape)
    return (c, h, w)


def check_loaded_model(model: Any, what: str = "model") -> LoadedModel:
    """``model`` if it is a loaded model (module, preprocessing, labels), else a sentence saying how."""
    if isinstance(model, LoadedModel):
        return model
    if isinstance(model, nn.Module):
        raise ArgumentTypeError(
            f"The {what} must come from cnnviz.load_model, which knows its input size and labels, not "
            f"a bare {type(model).__name__}; wrap it with cnnviz.load_model(module)."
        )
    raise ArgumentTypeError(
        f"The {what} must come from cnnviz.load_model, not {describe(model)}; "
        "load it first, e.g. cnnviz.load_model('default')."
    )
