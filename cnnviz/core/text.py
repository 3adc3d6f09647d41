"""How numbers, shapes, sizes and formulas read in every text people see (stdlib only).

One notation everywhere: ``×`` between dimensions and factors, thousands separators in counts, three
significant digits for fractions, binary units for sizes. ``x`` is used only in machine fields (PNG text
chunks, file names), which pass ``sep="x"``. This module sits at the bottom of the core so that any layer
can word its messages with it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from fractions import Fraction
from typing import Any

__all__ = [
    "compact",
    "conv_macs_formula",
    "conv_param_formula",
    "count",
    "dense_param_formula",
    "dims",
    "nbytes",
    "num",
    "pair",
    "ratio",
    "shape",
]

TIMES = "×"

_KiB = 1024
_UNITS = (("KiB", _KiB), ("MiB", _KiB**2), ("GiB", _KiB**3), ("TiB", _KiB**4))


def num(value: Any) -> str:
    """A number as people read it: ``3``, ``1.5``, ``0.333`` (three significant digits)."""
    if isinstance(value, bool):
        return str(int(value))
    if isinstance(value, int):
        return str(value)
    if isinstance(value, Fraction):
        if value.denominator == 1:
            return str(value.numerator)
        return f"{float(value):.3g}"
    if isinstance(value, float):
        if value.is_integer():
            return str(int(value))
        return f"{value:.3g}"
    return str(value)


def pair(value: Any, sep: str = TIMES) -> str:
    """``3`` when every axis agrees, else ``3×5``; ``None`` gives ``""``; a scalar reads as itself."""
    if value is None:
        return ""
    if not isinstance(value, (tuple, list)):
        return num(value)
    parts = [num(v) for v in value]
    if not parts:
        return ""
    return parts[0] if all(p == parts[0] for p in parts) else sep.join(parts)


def _is_nested(value: Any) -> bool:
    return isinstance(value, (tuple, list)) and bool(value) and isinstance(value[0], (tuple, list))


def shape(value: Sequence[Any] | None, sep: str = TIMES) -> str:
    """An output shape without its batch axis: ``[1, 64, 56, 56]`` -> ``64×56×56``.

    Several outputs (a list or tuple of shapes) are joined with `` | ``; ``None`` gives ``""``.
    """
    if value is None:
        return ""
    if _is_nested(value):
        return " | ".join(shape(s, sep) for s in value)
    axes = list(value)
    return dims(axes[1:] if len(axes) > 1 else axes, sep)


def dims(value: Sequence[Any], sep: str = TIMES) -> str:
    """Every axis of a shape: ``(1, 64, 28, 28)`` -> ``1×64×28×28``."""
    return sep.join(str(int(v)) for v in value)


def count(value: int | None) -> str:
    """``1234`` -> ``1,234``; ``None`` gives ``""``."""
    if value is None:
        return ""
    return f"{int(value):,}"


def compact(value: int) -> str:
    """``12345`` -> ``12.3k``; exact (with separators) below 10,000."""
    if value < 10_000:
        return f"{value:,}"
    for unit, size in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if value >= size:
            scaled = value / size
            return f"{scaled:.3g}{unit}" if scaled < 1000 else f"{scaled:,.0f}{unit}"
    return str(value)


def nbytes(value: float) -> str:
    """``20070400000000`` -> ``18.3 TiB``: three significant digits, binary units."""
    size = float(value)
    if size < _KiB:
        return f"{int(size)} bytes"
    unit, scaled = _UNITS[0][0], size / _UNITS[0][1]
    for unit, step in _UNITS:
        scaled = size / step
        if scaled < 1000 or unit == "TiB":
            break
    if scaled >= 1000:  # beyond TiB: keep the unit, grow the number
        return f"{scaled:,.0f} {unit}"
    digits = f"{scaled:.3g}" if scaled < 100 else f"{scaled:.0f}"
    return f"{digits} {unit}"


def ratio(value: float) -> str:
    """How many times larger: ``2.50×``, ``12.5×``, ``1,234×``."""
    if value >= 100:
        return f"{value:,.0f}{TIMES}"
    if value >= 10:
        return f"{value:.1f}{TIMES}"
    return f"{value:.2f}{TIMES}"


_KERNEL_NAMES = {1: ("K",), 2: ("K_h", "K_w"), 3: ("K_d", "K_h", "K_w")}


def _product(*factors: str) -> str:
    return f" {TIMES} ".join(factors)


def conv_param_formula(
    kernel: Sequence[int],
    c_in: int,
    c_out: int,
    *,
    groups: int = 1,
    bias: bool = True,
    transposed: bool = False,
) -> str:
    """A convolution's parameter count spelled out with its numbers.

    ``K_h × K_w × C_in × C_out + C_out = 3 × 3 × 16 × 32 + 32 = 4,640``; with groups the grouped side reads
    ``C_in/groups`` (``C_out/groups`` for a transposed convolution).
    """
    ks = [int(k) for k in kernel]
    names = list(_KERNEL_NAMES.get(len(ks), tuple(f"K_{i}" for i in range(len(ks)))))
    grouped = groups != 1
    if transposed:
        channel_names = ["C_in", "C_out/groups" if grouped else "C_out"]
        channel_values = [str(c_in), f"{c_out}/{groups}" if grouped else str(c_out)]
        weights = math.prod(ks) * c_in * (c_out // groups)
    else:
        channel_names = ["C_in/groups" if grouped else "C_in", "C_out"]
        channel_values = [f"{c_in}/{groups}" if grouped else str(c_in), str(c_out)]
        weights = math.prod(ks) * (c_in // groups) * c_out
    symbols = _product(*names, *channel_names)
    numbers = _product(*(str(k) for k in ks), *channel_values)
    if bias:
        return f"{symbols} + C_out = {numbers} + {c_out} = {weights + c_out:,}"
    return f"{symbols} = {numbers} = {weights:,}"


def dense_param_formula(d_in: int, d_out: int, *, bias: bool = True) -> str:
    """``D_in × D_out + D_out = 3072 × 10 + 10 = 30,730``."""
    total = d_in * d_out + (d_out if bias else 0)
    if bias:
        return f"D_in {TIMES} D_out + D_out = {d_in} {TIMES} {d_out} + {d_out} = {total:,}"
    return f"D_in {TIMES} D_out = {d_in} {TIMES} {d_out} = {total:,}"


def conv_macs_formula(
    kernel: Sequence[int], c_in: int, c_out: int, out_size: Sequence[int], *, groups: int = 1
) -> str:
    """A 2-D convolution's multiply-accumulates: ``H_out × W_out × C_out × C_in × K_h × K_w = … = N``."""
    k_h, k_w = (int(k) for k in kernel)
    h_out, w_out = (int(v) for v in out_size)
    grouped = groups != 1
    total = h_out * w_out * c_out * (c_in // groups) * k_h * k_w
    symbols = _product(
        "H_out", "W_out", "C_out", "C_in/groups" if grouped else "C_in", "K_h", "K_w"
    )
    cin = f"{c_in}/{groups}" if grouped else str(c_in)
    numbers = _product(str(h_out), str(w_out), str(c_out), cin, str(k_h), str(k_w))
    return f"{symbols} = {numbers} = {total:,}"
