"""How the receptive field grows through a stack of layers: demo stacks and a real model's layers."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction

from cnnviz.core import text
from cnnviz.core.analysis.types import Summary


@dataclass(frozen=True)
class RFPoint:
    """Receptive field after one layer: size r and effective stride S per axis (height, width).

    ``jump`` marks layers whose stride (or pooling) multiplies S, so every later kernel widens r faster.
    ``global_`` marks layers whose units see the whole input (size/stride are then None).
    """

    name: str
    type: str
    size: tuple[int, int] | None
    stride: tuple[Fraction, Fraction] | None
    jump: bool = False
    reason: str = ""
    global_: bool = False


@dataclass(frozen=True)
class StackLayer:
    """A square layer of a demo stack: kernel, stride, padding, dilation (pooling is a layer with a stride)."""

    name: str
    type: str
    kernel: int
    stride: int = 1
    padding: int = 0
    dilation: int = 1


def _conv(k: int, n: int) -> list[StackLayer]:
    return [StackLayer(f"conv{i + 1}", "Conv2d", k, 1, k // 2) for i in range(n)]


DEMO_STACKS: dict[str, list[StackLayer]] = {
    "Six 3x3 convolutions": _conv(3, 6),
    "Six 5x5 convolutions": _conv(5, 6),
    "3x3 convolutions with 2x2 max pooling": [
        StackLayer("conv1", "Conv2d", 3, 1, 1),
        StackLayer("conv2", "Conv2d", 3, 1, 1),
        StackLayer("pool1", "MaxPool2d", 2, 2),
        StackLayer("conv3", "Conv2d", 3, 1, 1),
        StackLayer("conv4", "Conv2d", 3, 1, 1),
        StackLayer("pool2", "MaxPool2d", 2, 2),
        StackLayer("conv5", "Conv2d", 3, 1, 1),
        StackLayer("conv6", "Conv2d", 3, 1, 1),
    ],
    "3x3 convolutions with stride 2": [
        StackLayer("conv1", "Conv2d", 3, 2, 1),
        StackLayer("conv2", "Conv2d", 3, 1, 1),
        StackLayer("conv3", "Conv2d", 3, 2, 1),
        StackLayer("conv4", "Conv2d", 3, 1, 1),
        StackLayer("conv5", "Conv2d", 3, 2, 1),
        StackLayer("conv6", "Conv2d", 3, 1, 1),
    ],
}


def rf_stack(layers: Sequence[StackLayer]) -> list[RFPoint]:
    """Receptive field size r and effective stride S after each layer of a plain stack (input first).

    ``r_l = r_(l-1) + d_l*(k_l - 1)*S_(l-1)`` and ``S_l = S_(l-1)*s_l`` (Araujo, Norris & Sim, 2019).
    """
    r, s = 1, 1
    points = [RFPoint("input", "input", (1, 1), (Fraction(1), Fraction(1)))]
    for layer in layers:
        r += layer.dilation * (layer.kernel - 1) * s
        jump = layer.stride > 1
        s *= layer.stride
        reason = f"stride {layer.stride}: S becomes {s}" if jump else ""
        points.append(
            RFPoint(layer.name, layer.type, (r, r), (Fraction(s), Fraction(s)), jump, reason)
        )
    return points


def rf_growth(summary: Summary) -> list[RFPoint]:
    """The receptive field of each layer of a summary that has one, in execution order, input first.

    Layers where the effective stride grows are marked as jumps with the reason (their stride or pooling).
    """
    points: list[RFPoint] = []
    if not any(r.kind == "input" for r in summary.rows):
        points.append(RFPoint("input", "input", (1, 1), (Fraction(1), Fraction(1))))
    prev_stride: tuple[Fraction, Fraction] = (Fraction(1), Fraction(1))
    seen_global = False
    for row in summary.rows:
        rf = row.rf
        if rf is None or row.kind == "container":
            continue
        if rf.global_ or rf.size is None or rf.stride is None:
            points.append(
                RFPoint(
                    row.name, row.type, None, None, not seen_global, "sees the whole input", True
                )
            )
            seen_global = True
            continue
        stride = (Fraction(rf.stride[0]), Fraction(rf.stride[1]))
        jump = stride[0] > prev_stride[0] or stride[1] > prev_stride[1]
        reason = ""
        if jump:
            s_txt = text.pair(stride)
            own = f"stride {text.pair(row.stride)}"
            reason = f"{own}: S becomes {s_txt}" if row.stride else f"S becomes {s_txt}"
        points.append(
            RFPoint(row.name, row.type, (int(rf.size[0]), int(rf.size[1])), stride, jump, reason)
        )
        prev_stride = stride
    return points
