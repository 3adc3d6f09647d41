"""The memory budget: sizes that cannot fit are refused before anything is allocated.

A picture, a spec or a few flags can ask for more memory than any machine has: an input of 3×100000×100000, a
convolution with ten million output channels, an ``Upsample`` by 10000, a padding of 100000 pixels. torch would
try, and either die with an allocator traceback or bring the machine to its knees. Instead, every place that is
about to allocate in proportion to a user's number first computes what it would take -- from shapes on *meta*
tensors, from a spec's hyperparameters or from the output-size formula -- and raises :class:`MemoryBudgetError`
(one sentence naming the layer and the size) when that is over the budget.

What is counted
---------------
For a model: its parameters and buffers, the input tensor, and the layer outputs alive at the worst moment of one
forward pass at batch 1, as float32 on the CPU. A capture keeps every layer's output until it returns (that is
what it is for), so for a capture -- and the table, which describes what a capture would hold -- every output
counts; a plain forward (a prediction) frees each output after its last use. Views (``flatten``, ``view``) share
their base's memory and are not counted twice. Scratch space inside torch's kernels is not counted: the figure is
an estimate, meant to separate "fits easily" from "cannot possibly fit".

The default: 8 GiB
------------------
Large enough that every torchvision classifier fits at its own input size with room to spare: the largest,
``regnet_y_128gf`` (644 M parameters), needs about 3.1 GiB for a full capture at 224×224, ``vit_h_14`` 2.9 GiB
(about 5.3 GiB at the 518×518 of its largest pretrained weights) and ``inception_v3`` at 299×299 228 MiB
(measured by ``tests/core/test_memory_budget.py``). Small enough that on a 16-24 GB machine what is
refused would really not have fitted next to the desktop, the app and torch's own scratch space. Change it with the ``CNNVIZ_MEMORY_BUDGET`` environment variable or the
``--memory-budget`` option: ``16GiB``, ``16GB``, ``2e10`` (bytes), ``512M``; ``none`` or ``0`` for no limit.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from cnnviz.core import text
from cnnviz.core.errors import InvalidArgumentError, MemoryBudgetError
from cnnviz.core.moduletree import distinct_tensors

KiB = 1 << 10
MiB = 1 << 20
GiB = 1 << 30
TiB = 1 << 40

DEFAULT_BUDGET = 8 * GiB
ENV_VAR = "CNNVIZ_MEMORY_BUDGET"
FLOAT_BYTES = 4  # float32, the dtype of every input and activation cnnviz makes

# A folder's effective receptive field (cnnviz.core.analysis.dataset.erf): pictures averaged unless told
# otherwise, and pictures per backward pass. A backward pass holds, per picture, every layer output up to the
# chosen layer plus the largest of them ERF_GRADIENT_COPIES times over (the gradients in flight); the batch is
# lowered until that, times the batch, plus the parameters fits the budget.
ERF_PICTURES = 100
ERF_BATCH = 16
ERF_GRADIENT_COPIES = 2

# A folder streamed in batches (cnnviz.core.images.folder): batches decoded ahead of the one being consumed, so
# (FOLDER_PREFETCH + 1) * batch decoded pictures are alive at once.
FOLDER_PREFETCH = 2

# A folder's top units (cnnviz.core.analysis.dataset.topunits): pictures per forward pass and units kept per
# channel. A run holds the decoded pictures above, one batch's forward pass to the layer (checked against the
# budget before it runs: analysis.forward_budget.check_forward) and channels * k kept (value, position) pairs;
# the folder's size adds only its list of paths.
TOP_UNITS_BATCH = 32
TOP_UNITS_K = 9

ADVICE = "raise the budget with --memory-budget SIZE or CNNVIZ_MEMORY_BUDGET (e.g. 16GiB, or none for no limit)"

_UNITS = {
    "": 1,
    "b": 1,
    "k": KiB, "m": MiB, "g": GiB, "t": TiB,
    "kib": KiB, "mib": MiB, "gib": GiB, "tib": TiB,
    "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12,
}  # fmt: skip
_SIZE = re.compile(r"\s*([0-9]*\.?[0-9]+(?:e[+-]?[0-9]+)?)\s*([a-z]*)\s*", re.IGNORECASE)
_UNLIMITED = ("none", "unlimited", "off", "inf")

_override: list[int | None] = []  # set by the command line for the whole process


def parse_size(text: str | int | float) -> int | None:
    """A size in bytes from ``"16GiB"``, ``"16GB"``, ``"512M"``, ``"2e10"`` or a number; None for no limit.

    Binary units: K, M, G, T, KiB ... TiB; decimal: kB, MB, GB, TB. ``"none"``, ``"unlimited"`` and 0 mean no
    limit. Raises :class:`InvalidArgumentError` for anything else.
    """
    if isinstance(text, bool):
        raise InvalidArgumentError(f"{text!r} is not a memory size; give e.g. 16GiB, 2e10 or none.")
    if isinstance(text, int | float):
        value = float(text)
    else:
        raw = str(text).strip()
        if raw.lower() in _UNLIMITED:
            return None
        match = _SIZE.fullmatch(raw)
        unit = _UNITS.get(match.group(2).lower()) if match else None
        if match is None or unit is None:
            raise InvalidArgumentError(
                f"'{text}' is not a memory size; give a number with an optional unit, "
                "e.g. 16GiB, 16GB, 512M or 2e10 (bytes), or none for no limit."
            )
        value = float(match.group(1)) * unit
    if not math.isfinite(value) or value < 0:
        raise InvalidArgumentError(
            f"{text!r} is not a memory size; give a positive size such as 16GiB, or none for no limit."
        )
    return None if value == 0 else max(1, int(value))


def set_budget(value: str | int | float | None) -> None:
    """Set the budget for the rest of the process (the ``--memory-budget`` option); None restores the default."""
    _override.clear()
    if value is not None:
        _override.append(parse_size(value))


@contextmanager
def budget_override(value: str | int | float | None) -> Iterator[None]:
    """Use ``value`` as the budget inside the block (None: no limit)."""
    saved = list(_override)
    _override[:] = [None if value is None else parse_size(value)]
    try:
        yield
    finally:
        _override[:] = saved


def memory_budget(budget: str | int | float | None = None) -> int | None:
    """The budget in bytes in effect (None: unlimited).

    An explicit ``budget`` wins, then ``--memory-budget``, then ``$CNNVIZ_MEMORY_BUDGET``, then 8 GiB.
    """
    if budget is not None:
        return parse_size(budget)
    if _override:
        return _override[0]
    env = os.environ.get(ENV_VAR)
    if env is not None and env.strip():
        try:
            return parse_size(env)
        except InvalidArgumentError:
            raise InvalidArgumentError(
                f"The environment variable {ENV_VAR}='{env}' is not a memory size; set it to e.g. 16GiB, "
                "16GB or 2e10 (bytes), or none for no limit."
            ) from None
    return DEFAULT_BUDGET


# The one notation lives in core.text; these names stay for the callers that know them.
format_bytes = text.nbytes
shape_text = text.dims


def check_fits(
    nbytes: float, what: str, budget: str | int | float | None = None, *, advice: str = ""
) -> None:
    """Raise :class:`MemoryBudgetError` when ``nbytes`` is over the budget.

    The message reads "{what} would take 18.3 TiB, over the 8 GiB memory budget; {advice}, or raise the budget
    ...". ``what`` names the thing (e.g. "an input of 3×100000×100000").
    """
    limit = memory_budget(budget)
    if limit is None or nbytes <= limit:
        return
    raise MemoryBudgetError(
        f"{what} would take {text.nbytes(nbytes)}, over the {text.nbytes(limit)} memory budget; "
        f"{advice + ', or ' if advice else ''}{ADVICE}."
    )


def over_budget(nbytes: float, budget: str | int | float | None = None) -> bool:
    """True when ``nbytes`` is over the budget in effect."""
    limit = memory_budget(budget)
    return limit is not None and nbytes > limit


def tensor_bytes(shape: Iterable[int], element_size: int = FLOAT_BYTES) -> int:
    """Bytes of a dense tensor of ``shape`` (exact integer arithmetic: no overflow for absurd sizes)."""
    n = element_size
    for s in shape:
        n *= int(s)
    return n


def check_input(shape: Sequence[int], budget: str | int | float | None = None) -> None:
    """Refuse an input (C, H, W) whose float32 tensor at batch 1 would not fit."""
    check_fits(
        tensor_bytes(shape),
        f"an input of {text.dims(shape)}",
        budget,
        advice="use a smaller input size or picture",
    )


def model_param_bytes(module: Any) -> int:
    """Bytes of a module's distinct parameters and buffers (a meta module counts as if it were real)."""
    return sum(t.numel() * t.element_size() for t in distinct_tensors(module))
