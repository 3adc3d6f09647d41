"""Defaults that scale with the data, and the verdict on a finished run.

A fixed batch of 64 and a handful of epochs give a folder of 80 pictures about a dozen optimiser steps, too few
to learn anything. Here the batch size follows the size of the training set and, unless the caller fixes the
number of epochs, enough epochs are chosen for :data:`MIN_STEPS` optimiser steps, within a budget of
:data:`MAX_AUTO_IMAGES` images so that large sets still train for one epoch and small ones stay quick. The
learning rate follows a one-cycle schedule (warm-up to the peak, then a long anneal), which forgives a peak
that is somewhat too high.

:func:`chance_warning` says, in words, when a finished run ended no better than guessing.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

__all__ = [
    "DEFAULT_LR",
    "DEFAULT_SCHEDULE",
    "MAX_AUTO_IMAGES",
    "MIN_STEPS",
    "SCHEDULES",
    "SYNTHETIC_EVAL",
    "SYNTHETIC_TRAIN",
    "auto_batch_size",
    "auto_epochs",
    "chance_level",
    "chance_warning",
]

DEFAULT_LR = 3e-3
"""Peak learning rate of AdamW when none is given."""

SCHEDULES = ("onecycle", "cosine", "constant")
DEFAULT_SCHEDULE = "onecycle"

MIN_STEPS = 300
"""Optimiser steps a run gets when the number of epochs is left to :func:`auto_epochs`."""

MAX_AUTO_IMAGES = 40_000
"""Images processed at most by automatically chosen epochs beyond the first (a bound on the time)."""

MAX_AUTO_EPOCHS = 200

SYNTHETIC_TRAIN = 60_000
"""Synthetic training digits generated when no number is given (before the validation split)."""
SYNTHETIC_EVAL = 5_000
"""Images in each of the two held-out synthetic sets."""

_MIN_BATCH, _MAX_BATCH = 8, 64


def auto_batch_size(n_train: int) -> int:
    """An eighth of the training set, rounded down to a power of two, within 8..64."""
    if n_train <= 0:
        return _MIN_BATCH
    target = max(1, n_train // 8)
    power = 1 << (target.bit_length() - 1)
    return min(_MAX_BATCH, max(_MIN_BATCH, power))


def auto_epochs(n_train: int, batch_size: int) -> int:
    """Epochs for at least :data:`MIN_STEPS` steps, but no more than :data:`MAX_AUTO_IMAGES` images' work.

    Always at least one epoch, so a large data set is seen once whatever its size.
    """
    steps_per_epoch = max(1, math.ceil(n_train / max(1, batch_size)))
    wanted = math.ceil(MIN_STEPS / steps_per_epoch)
    affordable = max(1, MAX_AUTO_IMAGES // max(1, n_train))
    return max(1, min(wanted, affordable, MAX_AUTO_EPOCHS))


def chance_level(labels: Sequence[int], n_classes: int) -> float:
    """Accuracy of the best blind guess: always the most frequent class (at least ``1 / n_classes``).

    Pass the labels of the whole data set, so that a small validation split's own imbalance does not count.
    """
    if not labels or n_classes <= 0:
        return 1.0 / max(1, n_classes)
    counts: dict[int, int] = {}
    for label in labels:
        counts[int(label)] = counts.get(int(label), 0) + 1
    return max(max(counts.values()) / len(labels), 1.0 / n_classes)


def _binomial_tail(n: int, k: int, p: float) -> float:
    """P(X >= k) for X ~ Binomial(n, p): how likely guessing alone scores ``k`` or more of ``n``."""
    if k <= 0:
        return 1.0
    if k > n:
        return 0.0
    total = 0.0
    for i in range(k, n + 1):
        total += math.exp(
            math.lgamma(n + 1)
            - math.lgamma(i + 1)
            - math.lgamma(n - i + 1)
            + (i * math.log(p) if p > 0 else (0.0 if i == 0 else -math.inf))
            + ((n - i) * math.log1p(-p) if p < 1 else (0.0 if i == n else -math.inf))
        )
    return min(1.0, total)


def _near_chance(acc: float, n: int, chance: float) -> bool:
    # Near chance: less than a fifth of the way from guessing to perfect, or a score that guessing alone
    # reaches more than one time in twenty (a few validation pictures prove little).
    if acc < chance + 0.2 * (1.0 - chance):
        return True
    return n > 0 and _binomial_tail(n, int(round(acc * n)), chance) > 0.05


def _pct(value: float) -> str:
    return f"{100 * value:.1f}%"


def chance_warning(
    *,
    train_acc: float | None,
    val_acc: float | None,
    n_val: int,
    n_train: int,
    chance: float,
    n_classes: int,
    folder: bool = True,
) -> str | None:
    """A sentence when the final accuracy is near ``chance``, naming both and what to try; else None.

    The validation accuracy is judged when there is a validation set, the training accuracy otherwise.
    ``folder``: the data is a picture folder, whose class sub-folders may be worth checking.
    """
    check = ["check that each class folder holds its own kind of picture"] if folder else []
    judged_val = val_acc is not None and n_val > 0
    if judged_val:
        assert val_acc is not None
        acc, n, what = val_acc, n_val, "validation"
    elif train_acc is not None:
        acc, n, what = train_acc, n_train, "training"
    else:
        return None
    if not math.isfinite(acc) or not _near_chance(acc, n, chance):
        return None
    head = (
        f"the final {what} accuracy {_pct(acc)} ({n:,} pictures) is close to chance ({_pct(chance)}, "
        f"{n_classes} classes)"
    )
    # Fitting the training pictures means well past halfway from guessing to perfect, not just above chance.
    fits_training = (
        train_acc is not None
        and train_acc >= chance + 0.5 * (1.0 - chance)
        and not _near_chance(train_acc, n_train, chance)
    )
    if judged_val and fits_training:
        assert train_acc is not None
        diagnosis = f"the model fits its training pictures ({_pct(train_acc)}) but not new ones"
        remedies = ["add more pictures per class", "use a smaller model", *check]
    else:
        diagnosis = "the model has not learned to tell the classes apart"
        remedies = [
            "train for more epochs",
            "try a learning rate 3 to 10 times higher or lower",
            *check,
        ]
    return f"{head}: {diagnosis}; {', '.join(remedies[:-1])} or {remedies[-1]}."
