"""Plain data types of the per-layer table (shared by summary, receptive fields and views)."""

from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

Pair = tuple[int, int]


@dataclass(frozen=True)
class ReceptiveField:
    """Theoretical receptive field of a layer's units, per axis (height, width).

    Unit (y, x) of the layer sees input rows ``y*S_h - P_h .. y*S_h - P_h + r_h - 1`` (inclusive) and likewise for
    columns (Araujo, Norris & Sim, 2019). ``global_`` marks layers whose units see the whole input (after global
    pooling, flatten or linear layers): size/stride/padding are then None. ``measured`` marks figures that come from
    the gradient support because the model could not be traced. Strides are ``Fraction`` where upsampling or
    transposed convolution makes them fractional (a stride of 1/2 means two neighbouring units share a centre).
    ``uniform`` is False where units see windows of different sizes (adaptive pooling whose input is not a multiple
    of its output): size is then the largest window. ``gated`` marks fields multiplied by a global gate
    (squeeze-and-excitation): the figures are those of the convolution path, and every unit also depends on the
    whole input through the gate.
    """

    size: tuple[int, int] | None
    stride: tuple[Fraction, Fraction] | None
    padding: tuple[Fraction, Fraction] | None
    global_: bool = False
    measured: bool = False
    uniform: bool = True
    gated: bool = False

    def to_json(self) -> dict[str, Any]:
        if self.global_:
            return {"global": True}

        def num(v: Fraction) -> int | float:
            return int(v) if v.denominator == 1 else float(v)

        assert self.size is not None and self.stride is not None and self.padding is not None
        out: dict[str, Any] = {
            "size": list(self.size),
            "stride": [num(v) for v in self.stride],
            "padding": [num(v) for v in self.padding],
        }
        if self.measured:
            out["measured"] = True
        if not self.uniform:
            out["uniform"] = False
        if self.gated:
            out["gated"] = True
        return out


@dataclass
class LayerRow:
    """One row of the per-layer table, in execution order.

    ``name`` is the capture key: a module's qualified name as in ``named_modules()`` (``"layer1.0.conv1"``), the
    n-th extra call of a reused module as ``"name@n"``, a functional operation as ``"<scope>.<op>"``
    (``"layer1.0.add"``, ``"flatten"``).
    """

    name: str
    type: str
    kind: str  # "module", "container", "function", "method", "input"
    depth: int
    output_shape: tuple[int, ...] | list[tuple[int, ...]] | None
    params: int = 0
    trainable_params: int = 0
    macs: int = 0
    kernel_size: Pair | None = None
    stride: Pair | None = None
    padding: Pair | None = None
    dilation: Pair | None = None
    groups: int | None = None
    in_channels: int | None = None
    out_channels: int | None = None
    param_formula: str | None = None
    rf: ReceptiveField | None = None
    inputs: list[str] = field(default_factory=list)
    output_structure: str | None = None  # a tuple or list output: how it is built

    @property
    def spatial_shape(self) -> tuple[int, int] | None:
        """(H, W) of a 4-D (N, C, H, W) output, else None."""
        s = self.output_shape
        if isinstance(s, tuple) and len(s) == 4:
            return (s[2], s[3])
        return None

    def to_json(self) -> dict[str, Any]:
        def pair(p: Pair | None) -> list[int] | None:
            return list(p) if p is not None else None

        shape: Any = self.output_shape
        if isinstance(shape, list):
            shape = [list(s) for s in shape]
        elif shape is not None:
            shape = list(shape)
        return {
            "name": self.name,
            "type": self.type,
            "output_shape": shape,
            "params": self.params,
            "trainable_params": self.trainable_params,
            "macs": self.macs,
            "kernel_size": pair(self.kernel_size),
            "stride": pair(self.stride),
            "padding": pair(self.padding),
            "dilation": pair(self.dilation),
            "groups": self.groups,
            "rf": self.rf.to_json() if self.rf is not None else None,
        }


@dataclass
class Summary:
    """The per-layer table of a model for one input shape, with totals."""

    model_name: str
    input_shape: tuple[int, ...]  # (C, H, W) for images; other ranks (C, L) ... pass through
    rows: list[LayerRow]
    total_params: int
    trainable_params: int
    total_macs: int
    traced: bool = True
    note: str | None = None

    def row(self, name: str) -> LayerRow:
        for r in self.rows:
            if r.name == name:
                return r
        raise KeyError(name)

    def to_json(self) -> dict[str, Any]:
        return {
            "model": self.model_name,
            "input_shape": list(self.input_shape),
            "total_params": self.total_params,
            "trainable_params": self.trainable_params,
            "total_macs": self.total_macs,
            "layers": [r.to_json() for r in self.rows],
        }
