"""Which device a run uses: ``auto``, ``cpu``, ``cuda`` (``cuda:N``) or, for training, ``mps``.

The one home of the device choice, for the folder analyses and the training loop alike; a device that is not
there is refused with one sentence before any work starts.
"""

from __future__ import annotations

from typing import Any

import torch

from cnnviz.core.errors import ArgumentTypeError, InvalidArgumentError
from cnnviz.core.validate import describe

__all__ = ["resolve_device"]


def _has_mps() -> bool:
    mps = getattr(torch.backends, "mps", None)
    return bool(mps is not None and mps.is_available())


def resolve_device(device: Any = "auto", *, mps: bool = False) -> torch.device:
    """``auto`` -> the first CUDA GPU when there is one, else the CPU; ``cpu``; ``cuda``/``cuda:N`` if present.

    With ``mps=True`` (training) ``mps`` is accepted too, and ``auto`` takes it when there is no CUDA GPU. A
    ``torch.device`` is accepted as it is. A device that is not there raises one sentence saying what to use.
    """
    if isinstance(device, torch.device):
        name = str(device)
    elif isinstance(device, str):
        name = device.strip().lower() or "auto"
    else:
        choices = "'auto', 'cpu', 'cuda' or 'mps'" if mps else "'auto', 'cpu' or 'cuda'"
        raise ArgumentTypeError(f"The device must be {choices}, not {describe(device)}.")
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        return torch.device("mps") if mps and _has_mps() else torch.device("cpu")
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
    if mps and name == "mps":
        if not _has_mps():
            raise InvalidArgumentError(
                "MPS was asked for but is not available on this machine: use --device cpu or auto."
            )
        return torch.device("mps")
    choices = "auto, cpu, cuda or mps" if mps else "auto, cpu or cuda"
    raise InvalidArgumentError(f"The device '{device}' is unknown; use {choices}.")
