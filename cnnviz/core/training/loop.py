"""Training loop for small CNNs built from specs, with progress callbacks and cooperative cancel.

The desktop app runs ``train`` in a worker thread: callbacks report every batch and epoch, and ``cancel``
(a ``threading.Event`` or any callable returning bool) is checked after every batch.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import torch
from torch import nn

from cnnviz.core.analysis.device import resolve_device
from cnnviz.core.errors import CnnvizError
from cnnviz.core.fileio import is_cancelled
from cnnviz.core.training.datasets import TensorData, TrainingData, open_dataset
from cnnviz.core.training.plan import (
    DEFAULT_LR,
    DEFAULT_SCHEDULE,
    SCHEDULES,
    auto_batch_size,
    auto_epochs,
    chance_level,
    chance_warning,
)


class TrainCallbacks(Protocol):
    """What ``train`` reports. Any method may be left out of an implementing object."""

    def on_train_start(self, plan: dict[str, Any]) -> None: ...

    def on_epoch_start(self, epoch: int, n_epochs: int) -> None: ...

    def on_batch_end(
        self, epoch: int, batch: int, n_batches: int, loss: float, acc: float
    ) -> None: ...

    def on_epoch_end(self, epoch: int, metrics: dict[str, Any]) -> None: ...

    def on_stage(self, text: str) -> None: ...


class Callbacks:
    """No-op base class for callbacks; override what you need."""

    def on_train_start(self, plan: dict[str, Any]) -> None:
        """Called once before the first epoch with what was chosen: ``n_train``, ``n_val``, ``batch_size``,
        ``epochs``, ``batches_per_epoch``, ``lr`` and ``schedule``."""

    def on_epoch_start(self, epoch: int, n_epochs: int) -> None:
        """Called before the first batch of ``epoch`` (1-based)."""

    def on_batch_end(self, epoch: int, batch: int, n_batches: int, loss: float, acc: float) -> None:
        """Called after each optimiser step with the batch's loss and accuracy."""

    def on_epoch_end(self, epoch: int, metrics: dict[str, Any]) -> None:
        """Called after validation with train/val loss and accuracy for the epoch."""

    def on_stage(self, text: str) -> None:
        """Called when work outside the epochs begins (preparing the data, the final evaluations)."""


@dataclass
class TrainResult:
    """What training produced. ``model`` is in eval mode on the CPU."""

    model: nn.Module
    spec: dict[str, Any]
    labels: list[str]
    preprocess: Any  # cnnviz.core.images.Preprocess
    history: list[dict[str, Any]] = field(default_factory=list)
    metrics: dict[str, Any] = field(default_factory=dict)
    cancelled: bool = False
    epochs_completed: int = 0
    steps: int = 0
    batches_per_epoch: int = 0
    seconds: float = 0.0
    device: str = "cpu"
    warning: str | None = None
    """A sentence when the final accuracy is close to chance (see ``plan.chance_warning``)."""


def pick_device(device: str = "auto") -> torch.device:
    """``auto`` -> cuda, else mps, else cpu; otherwise check the named device exists (one sentence if not).

    The device choice of every run, with MPS allowed: :func:`cnnviz.core.analysis.device.resolve_device`.
    """
    return resolve_device(device, mps=True)


def _call(callbacks: Any, name: str, *args: Any) -> None:
    method = getattr(callbacks, name, None) if callbacks is not None else None
    if method is not None:
        method(*args)


def output_size(model: nn.Module, input_shape: tuple[int, int, int]) -> int:
    """Number of class scores the model produces for one input; raises CnnvizError if not a score vector."""
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            device = next((p.device for p in model.parameters()), torch.device("cpu"))
            out = model(torch.zeros((1, *input_shape), device=device))
    except Exception as exc:
        raise CnnvizError(
            f"The model cannot run on inputs of shape {list(input_shape)} ({' '.join(str(exc).split())[:200]}): "
            "fix the spec's input_shape or layers."
        ) from exc
    finally:
        model.train(was_training)
    if not isinstance(out, torch.Tensor) or out.ndim != 2:
        shape = list(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise CnnvizError(
            f"The model's output has shape {shape}, not one score per class: end the layers with Flatten and "
            "Linear(out_features=number of classes)."
        )
    return int(out.shape[1])


def check_classes(model: nn.Module, input_shape: tuple[int, int, int], n_classes: int) -> None:
    """Raise a CnnvizError that says what to change when the model's outputs != the number of classes."""
    k = output_size(model, input_shape)
    if k != n_classes:
        raise CnnvizError(
            f"The model ends in {k} outputs but the data has {n_classes} classes: change the last Linear's "
            f"out_features to {n_classes}."
        )


def _loss_fn(model: nn.Module) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    last = list(model.modules())[-1]
    if isinstance(last, nn.LogSoftmax):
        return nn.NLLLoss()
    if isinstance(last, nn.Softmax):
        nll = nn.NLLLoss()
        # The model already outputs probabilities: take their log instead of applying softmax twice.
        return lambda out, y: nll(torch.log(out.clamp(min=1e-12)), y)
    return nn.CrossEntropyLoss()


def _normaliser(preprocess: Any, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    mean = torch.tensor(list(preprocess.mean), dtype=torch.float32, device=device).view(1, -1, 1, 1)
    std = torch.tensor(list(preprocess.std), dtype=torch.float32, device=device).view(1, -1, 1, 1)
    return mean, std


def evaluate(
    model: nn.Module,
    data: TensorData,
    preprocess: Any,
    *,
    device: str | torch.device = "cpu",
    batch_size: int = 512,
    cancel: Any = None,
) -> dict[str, float]:
    """Loss and accuracy of ``model`` on ``data`` (normalised with ``preprocess``'s mean/std)."""
    dev = torch.device(device)
    loss_fn = _loss_fn(model)
    mean, std = _normaliser(preprocess, dev)
    was_training = model.training
    model.eval()
    total_loss, correct, seen = 0.0, 0, 0
    try:
        with torch.no_grad():
            for start in range(0, len(data), batch_size):
                if is_cancelled(cancel):
                    break
                idx = torch.arange(start, min(len(data), start + batch_size))
                x = (data.batch(idx).to(dev) - mean) / std
                y = data.labels[idx].to(dev)
                out = model(x)
                total_loss += float(loss_fn(out, y)) * len(idx)
                correct += int((out.argmax(1) == y).sum())
                seen += len(idx)
    finally:
        model.train(was_training)
    if seen == 0:
        return {"loss": float("nan"), "acc": float("nan"), "n": 0}
    return {"loss": total_loss / seen, "acc": correct / seen, "n": seen}


def split_validation(
    data: TensorData, fraction: float, seed: int
) -> tuple[TensorData, TensorData | None]:
    """Hold out a random ``fraction`` of ``data`` (at least one sample, leaving at least one to train on)."""
    if not 0 <= fraction < 1:
        raise CnnvizError(
            f"The validation split {fraction} is outside [0, 1): use e.g. 0.1 for 10%."
        )
    n = len(data)
    n_val = int(round(n * fraction))
    if fraction > 0 and n >= 2:
        n_val = min(max(n_val, 1), n - 1)
    if n_val == 0:
        return data, None
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed + 1))
    return data.subset(perm[n_val:]), data.subset(perm[:n_val])


def train(
    spec: Mapping[str, Any],
    data: str | os.PathLike[str] | TrainingData,
    *,
    epochs: int | None = None,
    batch_size: int | None = None,
    lr: float | None = None,
    seed: int = 0,
    val_split: float = 0.1,
    device: str = "auto",
    callbacks: TrainCallbacks | Callbacks | None = None,
    cancel: Any = None,
    model: nn.Module | None = None,
    weight_decay: float = 1e-4,
    schedule: str = DEFAULT_SCHEDULE,
) -> TrainResult:
    """Train the model described by ``spec`` (or the given ``model``) on ``data``.

    ``data`` is a TrainingData or anything ``open_dataset`` accepts. ``batch_size`` and ``epochs`` left as None
    scale with the training set (:func:`plan.auto_batch_size`, :func:`plan.auto_epochs`); ``lr`` is the peak
    learning rate of AdamW (default :data:`plan.DEFAULT_LR`). ``schedule``: ``onecycle`` (torch's OneCycleLR),
    ``cosine`` (a short warm-up then cosine decay) or ``constant``. Deterministic for a given ``seed`` on one
    machine. Returns the trained model even when cancelled (``result.cancelled``); ``result.warning`` says
    when the final accuracy is close to chance.
    """
    from cnnviz.core.models.spec import build_model

    if epochs is not None and int(epochs) < 1:
        raise CnnvizError(f"Cannot train for {epochs} epochs: use 1 or more.")
    if batch_size is not None and int(batch_size) < 1:
        raise CnnvizError(f"The batch size {batch_size} is too small: use 1 or more.")
    peak = DEFAULT_LR if lr is None else float(lr)
    if not (peak > 0 and math.isfinite(peak)):
        raise CnnvizError(f"The learning rate {lr} must be a positive number, e.g. 0.001.")
    if schedule not in SCHEDULES:
        raise CnnvizError(
            f"Unknown learning-rate schedule {schedule!r}: use {', '.join(SCHEDULES[:-1])} or {SCHEDULES[-1]}."
        )
    spec = dict(spec)
    input_shape = tuple(int(v) for v in spec.get("input_shape", ()))
    if len(input_shape) != 3:
        raise CnnvizError(
            "The spec has no input_shape [channels, height, width]: add one, e.g. [1, 28, 28]."
        )
    dev = pick_device(device)
    started = time.perf_counter()

    if not isinstance(data, TrainingData):
        stage = getattr(callbacks, "on_stage", None) if callbacks is not None else None
        data = open_dataset(data, input_shape, seed=seed, stage=stage)
    if data.input_shape != input_shape:
        raise CnnvizError(
            f"The data has images of shape {list(data.input_shape)} but the model takes {list(input_shape)}: "
            "open the data with the spec's input_shape."
        )

    torch.manual_seed(seed)
    if model is None:
        model = build_model(spec)
    check_classes(model, input_shape, len(data.labels))
    spec["labels"] = list(data.labels)

    train_set, val_set = data.train, data.val
    if val_set is None:
        train_set, val_set = split_validation(train_set, val_split, seed)
    n = len(train_set)
    if n == 0:
        raise CnnvizError("There are no training images left: add images or lower --val-split.")
    batch = auto_batch_size(n) if batch_size is None else int(batch_size)
    n_epochs = auto_epochs(n, batch) if epochs is None else int(epochs)

    model.to(dev)
    model.train()
    loss_fn = _loss_fn(model)
    mean, std = _normaliser(data.preprocess, dev)
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise CnnvizError("The model has no trainable parameters: add a Conv2d or Linear layer.")
    optimizer = torch.optim.AdamW(params, lr=peak, weight_decay=weight_decay)
    n_batches = math.ceil(n / batch)
    total_steps = n_batches * n_epochs
    warmup = min(total_steps // 20, 500)
    one_cycle = (
        torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=peak, total_steps=total_steps)
        if schedule == "onecycle"
        else None
    )

    def lr_at(step: int) -> float:
        if schedule == "constant":
            return peak
        if step < warmup:
            return peak * (step + 1) / warmup
        progress = (step - warmup) / max(1, total_steps - warmup)
        return peak * (0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * progress)))

    shuffle = torch.Generator().manual_seed(seed)
    # Reseed so dropout draws the same numbers whether the model was built here or by the caller.
    torch.manual_seed(seed)
    result = TrainResult(
        model=model,
        spec=spec,
        labels=list(data.labels),
        preprocess=data.preprocess,
        device=str(dev),
        batches_per_epoch=n_batches,
    )
    _call(
        callbacks,
        "on_train_start",
        {
            "n_train": n,
            "n_val": len(val_set) if val_set is not None else 0,
            "batch_size": batch,
            "epochs": n_epochs,
            "batches_per_epoch": n_batches,
            "lr": peak,
            "schedule": schedule,
        },
    )
    step = 0
    last_lr = peak
    try:
        for epoch in range(1, n_epochs + 1):
            if is_cancelled(cancel):
                result.cancelled = True
                break
            _call(callbacks, "on_epoch_start", epoch, n_epochs)
            epoch_start = time.perf_counter()
            order = torch.randperm(n, generator=shuffle)
            model.train()
            loss_sum, correct, seen = 0.0, 0, 0
            for b in range(n_batches):
                idx = order[b * batch : (b + 1) * batch]
                x = (train_set.batch(idx).to(dev) - mean) / std
                y = train_set.labels[idx].to(dev)
                if one_cycle is None:
                    for group in optimizer.param_groups:
                        group["lr"] = lr_at(step)
                last_lr = float(optimizer.param_groups[0]["lr"])
                optimizer.zero_grad(set_to_none=True)
                out = model(x)
                loss = loss_fn(out, y)
                if not torch.isfinite(loss):
                    raise CnnvizError(
                        f"Training diverged in epoch {epoch} (the loss is {float(loss)}): "
                        f"lower the learning rate (now {peak:g})."
                    )
                loss.backward()
                optimizer.step()
                if one_cycle is not None:
                    one_cycle.step()
                step += 1
                result.steps = step
                batch_loss = float(loss.detach())
                batch_correct = int((out.detach().argmax(1) == y).sum())
                loss_sum += batch_loss * len(idx)
                correct += batch_correct
                seen += len(idx)
                _call(
                    callbacks,
                    "on_batch_end",
                    epoch,
                    b + 1,
                    n_batches,
                    batch_loss,
                    batch_correct / len(idx),
                )
                if is_cancelled(cancel):
                    result.cancelled = True
                    break
            if result.cancelled:
                break
            metrics: dict[str, Any] = {
                "epoch": epoch,
                "train_loss": loss_sum / max(seen, 1),
                "train_acc": correct / max(seen, 1),
                "lr": last_lr,
            }
            if val_set is not None:
                val = evaluate(model, val_set, data.preprocess, device=dev)
                metrics["val_loss"], metrics["val_acc"] = val["loss"], val["acc"]
            else:
                metrics["val_loss"] = metrics["val_acc"] = None
            metrics["seconds"] = time.perf_counter() - epoch_start
            result.history.append(metrics)
            result.epochs_completed = epoch
            _call(callbacks, "on_epoch_end", epoch, dict(metrics))
            if is_cancelled(cancel):
                result.cancelled = True
                break
    finally:
        model.eval()

    final: dict[str, Any] = {}
    if result.history:
        last = result.history[-1]
        final = {k: last[k] for k in ("train_loss", "train_acc", "val_loss", "val_acc")}
    if not result.cancelled:
        for name, eval_set in data.evaluations.items():
            _call(
                callbacks,
                "on_stage",
                f"evaluating on the {name.replace('_', ' ')} set ({len(eval_set):,} images)",
            )
            final[f"{name}_acc"] = evaluate(model, eval_set, data.preprocess, device=dev)["acc"]
    n_classes = len(data.labels)
    every_label = train_set.labels.tolist() + (
        val_set.labels.tolist() if val_set is not None else []
    )
    chance = chance_level(every_label, n_classes)
    final.update(
        {
            "epochs": result.epochs_completed,
            "n_train": n,
            "n_val": len(val_set) if val_set is not None else 0,
            "skipped_images": data.skipped,
            "batch_size": batch,
            "lr": peak,
            "schedule": schedule,
            "seed": int(seed),
            "data": data.name,
            "chance_acc": chance,
        }
    )
    if result.history and not result.cancelled:
        result.warning = chance_warning(
            train_acc=final.get("train_acc"),
            val_acc=final.get("val_acc"),
            n_val=final["n_val"],
            n_train=n,
            chance=chance,
            n_classes=n_classes,
            folder=bool(data.info.get("class_counts")),
        )
    result.metrics = final
    model.to("cpu")
    result.seconds = time.perf_counter() - started
    result.metrics["seconds"] = round(result.seconds, 2)
    return result
