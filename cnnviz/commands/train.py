"""cnnviz train: train a spec on a dataset and save a checkpoint after every epoch."""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from pathlib import Path
from typing import Any

from cnnviz.commands._common import INTERRUPTED, add_budget_argument, apply_budget, ctrl_c_stops
from cnnviz.core.errors import CnnvizError, SpecError
from cnnviz.core.training.plan import DEFAULT_LR, DEFAULT_SCHEDULE, SCHEDULES, SYNTHETIC_TRAIN

DEFAULT_ARCH = "default"


def register(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = sub.add_parser(
        "train",
        help="train a CNN from a spec on synthetic digits, MNIST, CIFAR-10 or an image folder",
        description="Train the network described by a spec JSON on a dataset. The checkpoint is written "
        "atomically after every epoch, so Ctrl+C keeps the last complete epoch. Left out, the batch size "
        "and the number of epochs scale with the data: about an eighth of the training pictures per batch "
        "(8 to 64) and enough epochs for 300 optimiser steps, within 40,000 pictures' work beyond the first "
        "epoch. The default model is reproduced by: cnnviz train --arch default --data synthetic-digits "
        "--epochs 8 --seed 0 --lr 0.003 --batch-size 128 --schedule cosine --out resources/models/digits.pt",
    )
    parser.add_argument(
        "--arch",
        required=True,
        metavar="SPEC",
        help="architecture spec JSON, or 'default' for the bundled digits architecture",
    )
    parser.add_argument(
        "--data",
        required=True,
        metavar="DATA",
        help="synthetic-digits, mnist, fashion-mnist, cifar10 (downloaded once), or an image folder with one "
        "sub-folder per class (or train/ and val/ folders laid out that way)",
    )
    parser.add_argument(
        "--epochs",
        type=int,
        default=None,
        metavar="N",
        help="passes over the training data (default: enough for 300 optimiser steps, at least 1)",
    )
    parser.add_argument(
        "--out",
        required=True,
        metavar="FILE.pt",
        help="checkpoint to write: FILE.pt, or FILE.safetensors (the weights) with FILE.json beside it",
    )
    parser.add_argument(
        "--batch-size",
        type=int,
        default=None,
        metavar="B",
        help="images per step (default: an eighth of the training pictures, a power of two from 8 to 64)",
    )
    parser.add_argument(
        "--lr",
        type=float,
        default=DEFAULT_LR,
        metavar="LR",
        help=f"peak learning rate of AdamW (default {DEFAULT_LR:g})",
    )
    parser.add_argument(
        "--schedule",
        choices=SCHEDULES,
        default=DEFAULT_SCHEDULE,
        help="learning-rate schedule: onecycle (warm up to the peak, then anneal; the default), cosine "
        "(a short warm-up, then cosine decay) or constant",
    )
    parser.add_argument(
        "--samples",
        type=int,
        default=None,
        metavar="N",
        help="synthetic-digits only: training digits to generate "
        f"(default {SYNTHETIC_TRAIN:,}; each held-out set gets a tenth as many, at least 20)",
    )
    parser.add_argument("--seed", type=int, default=0, metavar="S", help="random seed (default 0)")
    parser.add_argument(
        "--val-split",
        type=float,
        default=0.1,
        metavar="F",
        help="fraction held out for validation when the data has no val/ set (default 0.1)",
    )
    parser.add_argument("--device", choices=("auto", "cpu", "cuda", "mps"), default="auto")
    parser.add_argument("--format", choices=("text", "json"), default="text")
    add_budget_argument(parser)
    parser.set_defaults(func=run)
    return parser


def default_arch_path() -> Path:
    """The bundled digits architecture (resources/models/digits_arch.json)."""
    from cnnviz.core.resources import resource_path

    return resource_path("models", "digits_arch.json")


def checked_output_file(value: str) -> Path:
    """The checkpoint path of ``--out``, refused at once (before any training) if it cannot be written."""
    from cnnviz.core.fileio import folder_write_problem, write_target_problem

    if not value.strip():
        raise CnnvizError(
            "--out is empty: give the checkpoint file to write, such as --out model.pt."
        )
    out = Path(value).expanduser()
    if out.is_dir():
        raise CnnvizError(f"--out {out} is a folder: give a file name such as {out / 'model.pt'}.")
    problem = write_target_problem(out)
    if problem is not None:
        raise CnnvizError(
            f"--out {out} {problem}: give the name of a checkpoint file such as model.pt."
        )
    problem = folder_write_problem(out.parent)
    if problem is not None:
        raise CnnvizError(f"Cannot write {out}: {problem}; choose a folder you can write to.")
    return out


def _command_line(args: argparse.Namespace) -> str:
    parts = [
        "cnnviz",
        "train",
        "--arch",
        str(args.arch),
        "--data",
        str(args.data),
    ]
    if args.samples is not None:
        parts += ["--samples", str(args.samples)]
    if args.epochs is not None:
        parts += ["--epochs", str(args.epochs)]
    parts += ["--seed", str(args.seed), "--lr", f"{args.lr:g}"]
    if args.batch_size is not None:
        parts += ["--batch-size", str(args.batch_size)]
    if args.schedule != DEFAULT_SCHEDULE:
        parts += ["--schedule", args.schedule]
    if args.val_split != 0.1:
        parts += ["--val-split", f"{args.val_split:g}"]
    parts += ["--out", str(args.out)]
    return shlex.join(parts)


_SCHEDULE_WORDS = {"onecycle": "one-cycle"}


class _Progress:
    """tqdm bar per epoch on stderr (when it is a terminal) and one line per stage and finished epoch."""

    def __init__(self, save: Any, quiet: bool) -> None:
        self.save = save
        self.quiet = quiet
        self.bar: Any = None
        self.n_epochs = 0

    def on_stage(self, text: str) -> None:
        self.close()
        if not self.quiet:
            print(f"cnnviz: {text}", file=sys.stderr, flush=True)

    def on_images(self, done: int, total: int) -> None:
        """A bar over the images drawn in one stage (only on a terminal)."""
        if self.bar is None:
            from tqdm import tqdm

            self.bar = tqdm(total=total, file=sys.stderr, leave=False, disable=None, unit="image")
        self.bar.update(done - self.bar.n)
        if done >= total:
            self.close()

    def on_train_start(self, plan: dict[str, Any]) -> None:
        if self.quiet:
            return
        val = f", {plan['n_val']:,} held out for validation" if plan["n_val"] else ""
        print(
            f"cnnviz: training on {plan['n_train']:,} pictures{val}: {plan['epochs']} epoch"
            f"{'s' if plan['epochs'] != 1 else ''} of {plan['batches_per_epoch']:,} batches of "
            f"{plan['batch_size']} ({plan['epochs'] * plan['batches_per_epoch']:,} steps), peak learning "
            f"rate {plan['lr']:g}, {_SCHEDULE_WORDS.get(plan['schedule'], plan['schedule'])} schedule",
            file=sys.stderr,
            flush=True,
        )

    def on_epoch_start(self, epoch: int, n_epochs: int) -> None:
        self.n_epochs = n_epochs
        self.bar = None

    def on_batch_end(self, epoch: int, batch: int, n_batches: int, loss: float, acc: float) -> None:
        if self.bar is None:
            from tqdm import tqdm

            self.bar = tqdm(
                total=n_batches,
                desc=f"epoch {epoch}/{self.n_epochs}",
                file=sys.stderr,
                leave=False,
                disable=None,  # no bar when stderr is not a terminal
                unit="batch",
                dynamic_ncols=True,
            )
        self.bar.update(1)
        if batch % 10 == 0 or batch == n_batches:
            self.bar.set_postfix(loss=f"{loss:.4f}", acc=f"{acc:.3f}", refresh=False)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None

    def on_epoch_end(self, epoch: int, metrics: dict[str, Any]) -> None:
        self.close()
        self.save(epoch, metrics)
        if not self.quiet:
            val = metrics.get("val_acc")
            val_text = (
                f", val loss {metrics['val_loss']:.4f}, val acc {val:.4f}"
                if val is not None
                else ""
            )
            print(
                f"epoch {epoch}/{self.n_epochs}: train loss {metrics['train_loss']:.4f}, "
                f"train acc {metrics['train_acc']:.4f}{val_text} ({metrics['seconds']:.1f} s)",
                file=sys.stderr,
                flush=True,
            )


def run(args: argparse.Namespace) -> int:
    import torch

    from cnnviz.core.models.checkpoint import save_checkpoint
    from cnnviz.core.models.spec import build_model, load_spec, validate_spec
    from cnnviz.core.training import check_classes, train
    from cnnviz.core.training.datasets import open_dataset

    apply_budget(args)

    if args.epochs is not None and args.epochs < 1:
        raise CnnvizError(f"--epochs {args.epochs} trains nothing: use 1 or more.")
    if args.batch_size is not None and args.batch_size < 1:
        raise CnnvizError(f"--batch-size {args.batch_size} is too small: use 1 or more.")
    if args.samples is not None:
        if str(args.data).lower() not in ("synthetic-digits", "digits"):
            raise CnnvizError(
                f"--samples sets how many synthetic digits to generate, but --data is {args.data}: "
                "leave --samples out, or use --data synthetic-digits."
            )
        if args.samples < 1:
            raise CnnvizError(f"--samples {args.samples} generates nothing: use 1 or more.")
    out = checked_output_file(args.out)
    arch = default_arch_path() if args.arch == DEFAULT_ARCH else Path(args.arch)
    spec = load_spec(arch)
    # Checked before the data is prepared: everything below relies on a valid input_shape.
    problem = validate_spec(spec).first_error
    if problem is not None:
        raise SpecError(f"{arch}: {problem.message}", problem.index, problem.type)
    input_shape = spec["input_shape"]
    quiet = args.format == "json"

    # The checkpoint saver is attached once the model exists; until then the lines follow the data.
    progress = _Progress(None, quiet)
    synthetic = str(args.data).lower() in ("synthetic-digits", "digits")
    if not quiet and not synthetic:  # synthetic digits name their own stages
        print(f"cnnviz: preparing {args.data} ...", file=sys.stderr, flush=True)
    try:
        data = open_dataset(
            args.data,
            input_shape,
            seed=args.seed,
            samples=args.samples,
            stage=progress.on_stage,
            progress=progress.on_images,
        )
    finally:
        progress.close()
    if data.skipped:
        print(
            f"cnnviz: skipped {data.skipped} unreadable image file(s), e.g. {data.skipped_files[0]}",
            file=sys.stderr,
        )
    torch.manual_seed(args.seed)
    model = build_model(spec)
    check_classes(model, tuple(input_shape), len(data.labels))
    saved_spec = dict(spec)
    saved_spec["labels"] = list(data.labels)
    command = _command_line(args)
    history: list[dict[str, Any]] = []
    started = time.perf_counter()

    def save(epoch: int, metrics: dict[str, Any], final: dict[str, Any] | None = None) -> None:
        if final is None:
            history.append(dict(metrics))
        stored: dict[str, Any] = dict(final or metrics)
        stored.update(
            {
                "epochs": epoch,
                "history": history,
                "command": command,
                "data": str(args.data),
                "seconds": round(time.perf_counter() - started, 2),
                "torch_version": torch.__version__,
            }
        )
        save_checkpoint(
            out,
            spec=saved_spec,
            state_dict=model.state_dict(),
            labels=list(data.labels),
            preprocess=data.preprocess,
            metrics=stored,
        )

    progress.save = save
    try:
        with ctrl_c_stops() as cancel:
            result = train(
                saved_spec,
                data,
                epochs=args.epochs,
                batch_size=args.batch_size,
                lr=args.lr,
                schedule=args.schedule,
                seed=args.seed,
                val_split=args.val_split,
                device=args.device,
                callbacks=progress,
                cancel=cancel,
                model=model,
            )
    finally:
        progress.close()

    if result.cancelled:
        kept = (
            f"the checkpoint {out} holds epoch {result.epochs_completed}"
            if result.epochs_completed
            else "no checkpoint was written"
        )
        print(f"cnnviz: training interrupted; {kept}.", file=sys.stderr)
        return INTERRUPTED

    final = dict(result.metrics)
    save(result.epochs_completed, {}, final=final)
    summary = {k: v for k, v in final.items()}
    summary.update(
        {
            "out": str(out),
            "command": command,
            "labels": list(data.labels),
            "warning": result.warning,
        }
    )
    if quiet:
        sys.stdout.write(json.dumps(summary) + "\n")
    else:
        lines = [f"saved {out}"]
        for key in ("train_acc", "val_acc", "heldout_synthetic_acc", "heldout_fonts_acc"):
            if final.get(key) is not None:
                lines.append(f"  {key}: {final[key]:.4f}")
        lines.append(
            f"  epochs: {result.epochs_completed}, batch size: {final['batch_size']}, steps: "
            f"{result.steps:,}, time: {final.get('seconds', 0):.1f} s"
        )
        if data.skipped:
            lines.append(f"  skipped unreadable images: {data.skipped}")
        print("\n".join(lines))
    if result.warning:
        print(f"cnnviz: warning: {result.warning}", file=sys.stderr, flush=True)
    return 0
