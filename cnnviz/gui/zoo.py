"""What the model-zoo dialog lists: torchvision's classification models and their pretrained weights.

Reads torchvision's registry and weight metadata only (nothing is built or downloaded here).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

__all__ = ["ZooWeights", "model_names", "weights_for"]


@dataclass(frozen=True)
class ZooWeights:
    """One pretrained weight set: ``name`` is the enum member (``IMAGENET1K_V1``), ``full`` the qualified name."""

    name: str
    full: str
    is_default: bool
    acc1: float | None
    params: int | None
    size_mb: float | None
    cached: bool
    path: str

    def describe(self) -> str:
        parts = [self.name + (" (default)" if self.is_default else "")]
        if self.acc1 is not None:
            parts.append(f"top-1 {self.acc1:.1f} %")
        if self.size_mb is not None:
            parts.append(f"{self.size_mb:.0f} MB")
        parts.append("cached" if self.cached else "download")
        return " · ".join(parts)


def model_names() -> list[str]:
    """Classification models of torchvision (``torchvision.models.list_models(module=torchvision.models)``)."""
    import torchvision

    return sorted(torchvision.models.list_models(module=torchvision.models))


def _hub_checkpoints() -> Path:
    import torch

    return Path(torch.hub.get_dir()) / "checkpoints"


def weights_for(name: str) -> list[ZooWeights]:
    """The pretrained weights torchvision offers for model ``name``, the default first."""
    import torchvision

    try:
        enum = torchvision.models.get_model_weights(name)
    except (ValueError, KeyError):
        return []
    default = getattr(enum, "DEFAULT", None)
    folder = _hub_checkpoints()
    out = []
    for member in enum:
        meta = member.meta
        metrics = meta.get("_metrics", {})
        acc1 = None
        for values in metrics.values():
            if isinstance(values, dict) and "acc@1" in values:
                acc1 = float(values["acc@1"])
                break
        path = folder / os.path.basename(urlparse(member.url).path)
        size = meta.get("_file_size")
        out.append(
            ZooWeights(
                name=member.name,
                full=str(member),
                is_default=member is default,
                acc1=acc1,
                params=meta.get("num_params"),
                size_mb=float(size) if size is not None else None,
                cached=path.is_file(),
                path=str(path),
            )
        )
    out.sort(key=lambda w: not w.is_default)
    return out
