"""Which device a folder run uses: ``auto``, ``cpu`` or ``cuda`` (``cuda:N``), checked before any work starts."""

from __future__ import annotations

from typing import Any

import torch

from cnnviz.core.errors import ArgumentTypeError, InvalidArgumentError


def resolve_device(device: Any = "auto") -> torch.device:
    """``auto`` -> the first CUDA GPU when there is one, else the CPU; ``cpu``; ``cuda``/``cuda:N`` if present.

    A ``torch.device`` is accepted as it is. Asking for CUDA on a machine without it raises one sentence.
    """
    if isinstance(device, torch.device):
        name = str(device)
    elif isinstance(device, str):
        name = device.strip().lower() or "auto"
    else:
        raise ArgumentTypeError(
            f"The device must be 'auto', 'cpu' or 'cuda', not a {type(device).__name__}."
        )
    if name == "auto":
        return torch.device("cuda") if torch.cuda.is_available() else torch.device("cpu")
    if name == "cpu":
        return torch.device("cpu")
    if name == "cuda" or name.startswith("cuda:"):
        if not torch.cuda.is_available():
            raise InvalidArgumentError(
                "CUDA was asked for but no CUDA GPU is available: use --device cpu or auto."
            )
        try:
            chosen = torch.device(name)
        except RuntimeError:
            raise InvalidArgumentError(
                f"'{device}' is not a device name; use cuda or cuda:N (N a GPU number)."
            ) from None
        if chosen.index is not None and chosen.index >= torch.cuda.device_count():
            raise InvalidArgumentError(
                f"There is no GPU {chosen.index}; this machine has {torch.cuda.device_count()} "
                f"(cuda:0 .. cuda:{torch.cuda.device_count() - 1})."
            )
        return chosen
    raise InvalidArgumentError(f"The device '{device}' is unknown; use auto, cpu or cuda.")
