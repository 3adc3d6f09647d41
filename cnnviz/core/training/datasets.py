"""Training data: image folders, synthetic digits, and the torchvision datasets MNIST, Fashion-MNIST, CIFAR-10.

Every source is turned into in-memory tensors of the model's input shape (values in [0, 1]) plus the
``Preprocess`` that maps a picture to exactly such a tensor at inference time, with the mean/std measured
on the training images.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from cnnviz.core.budget import check_fits
from cnnviz.core.errors import CnnvizError, ImageLoadError
from cnnviz.core.images.folder import find_pictures
from cnnviz.core.training.plan import SYNTHETIC_EVAL, SYNTHETIC_TRAIN

BUILTIN_DATASETS = ("synthetic-digits", "mnist", "fashion-mnist", "cifar10")
_VAL_DIRS = ("val", "valid", "validation")


def cache_dir() -> Path:
    """Where downloaded datasets are kept (``$CNNVIZ_CACHE`` or ~/.cache/cnnviz/datasets)."""
    root = os.environ.get("CNNVIZ_CACHE")
    base = Path(root) if root else Path.home() / ".cache" / "cnnviz"
    return base / "datasets"


@dataclass
class TensorData:
    """Samples held in memory: ``images`` N x C x H x W (uint8 0-255 or float 0-1) and int64 ``labels``."""

    images: torch.Tensor
    labels: torch.Tensor

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        return self.batch(torch.tensor([i]))[0], int(self.labels[i])

    def batch(self, index: torch.Tensor) -> torch.Tensor:
        """Images at ``index`` as float32 in [0, 1]."""
        x = self.images[index]
        return x.float() / 255.0 if x.dtype == torch.uint8 else x.float()

    def subset(self, index: torch.Tensor) -> TensorData:
        """The samples at ``index`` (a view-free copy)."""
        return TensorData(self.images[index], self.labels[index])


@dataclass
class TrainingData:
    """A dataset ready for ``training.train``.

    ``val`` is an explicit validation set (a val/ folder, a test split) or None to split one off ``train``.
    ``evaluations`` are extra sets scored once after training (e.g. digits in held-out fonts).
    ``skipped`` counts unreadable image files, listed in ``skipped_files``.
    """

    name: str
    labels: list[str]
    train: TensorData
    preprocess: Any  # cnnviz.core.images.Preprocess
    val: TensorData | None = None
    evaluations: dict[str, TensorData] = field(default_factory=dict)
    skipped: int = 0
    skipped_files: list[str] = field(default_factory=list)
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def input_shape(self) -> tuple[int, int, int]:
        c, h, w = self.train.images.shape[1:]
        return int(c), int(h), int(w)


def _check_shape(input_shape: Sequence[int]) -> tuple[int, int, int]:
    try:
        c, h, w = (int(v) for v in input_shape)
    except (TypeError, ValueError):
        raise CnnvizError(
            f"The input shape {list(input_shape)!r} is not [channels, height, width]: fix the spec's input_shape."
        ) from None
    if c not in (1, 3) or h < 1 or w < 1:
        raise CnnvizError(
            f"The input shape [{c}, {h}, {w}] cannot be fed from images: use 1 (grey) or 3 (RGB) channels "
            "and a positive height and width."
        )
    return c, h, w


def channel_stats(images: TensorData, chunk: int = 4096) -> tuple[list[float], list[float]]:
    """Per-channel mean and standard deviation of all images (values in [0, 1])."""
    n = len(images)
    if n == 0:
        raise CnnvizError("There are no images to measure: add images to the data.")
    c = images.images.shape[1]
    total = torch.zeros(c, dtype=torch.float64)
    total_sq = torch.zeros(c, dtype=torch.float64)
    count = 0
    for start in range(0, n, chunk):
        x = images.batch(torch.arange(start, min(n, start + chunk))).double()
        total += x.sum(dim=(0, 2, 3))
        total_sq += (x * x).sum(dim=(0, 2, 3))
        count += x.shape[0] * x.shape[2] * x.shape[3]
    mean = total / count
    std = (total_sq / count - mean * mean).clamp(min=0).sqrt().clamp(min=1e-3)
    return [round(float(v), 4) for v in mean], [round(float(v), 4) for v in std]


def _make_preprocess(
    channels: int,
    size: tuple[int, int],
    *,
    mode: str,
    auto_invert: bool,
    mean: list[float],
    std: list[float],
) -> Any:
    from cnnviz.core.images import Preprocess

    return Preprocess(
        channels=channels,
        size=size,
        mode=mode,
        resize_size=None,
        mean=tuple(mean),
        std=tuple(std),
        auto_invert=auto_invert,
    )


def _convert(images: torch.Tensor, input_shape: tuple[int, int, int]) -> torch.Tensor:
    """uint8 N x C x H x W -> uint8 with the wanted channels (luminance / repeat) and size (area-resampled)."""
    c, h, w = input_shape
    x = images
    if x.shape[1] != c:
        xf = x.float()
        if c == 1:
            weights = torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)
            xf = (xf * weights).sum(1, keepdim=True)
        else:
            xf = xf.expand(-1, 3, -1, -1)
        x = xf.round().clamp(0, 255).to(torch.uint8)
    if tuple(x.shape[2:]) != (h, w):
        out = []
        for start in range(0, x.shape[0], 4096):
            part = x[start : start + 4096].float()
            part = F.interpolate(
                part, size=(h, w), mode="bilinear", antialias=True, align_corners=False
            )
            out.append(part.round().clamp(0, 255).to(torch.uint8))
        x = torch.cat(out) if out else x.new_zeros((0, c, h, w))
    return x.contiguous()


def synthetic_digits_bytes(
    input_shape: Sequence[int], *, n: int = SYNTHETIC_TRAIN, n_eval: int = SYNTHETIC_EVAL
) -> int:
    """Memory :func:`synthetic_digits` needs for ``input_shape`` (C, H, W), before any image is made.

    The grey uint8 images of the three sets and the rendering of one chunk; for 3 channels also the RGB copies
    and the float32 conversion of the training set (the float copy, its rounded and clamped results).
    """
    from cnnviz.core.training.digits import digits_bytes

    c, h, w = (int(v) for v in input_shape)
    total = n + 2 * n_eval
    nbytes = digits_bytes(total, (h, w))
    if c != 1:
        nbytes += total * c * h * w + n * (4 + 8 * c) * h * w
    return nbytes


def synthetic_digits(
    input_shape: Sequence[int],
    *,
    n: int = SYNTHETIC_TRAIN,
    n_eval: int = SYNTHETIC_EVAL,
    seed: int = 0,
    stage: Callable[[str], None] | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> TrainingData:
    """Digits rendered from the training fonts, plus two evaluation sets.

    ``heldout_synthetic``: fresh images from the training fonts (another seed);
    ``heldout_fonts``: images from fonts never used for training.
    ``stage(text)`` is told when each of the five stages begins (``"preparing synthetic digits: 1/5 …"``);
    ``progress(done, total)`` follows the images drawn within a stage.
    """
    from cnnviz.core.training.digits import DIGIT_LABELS, font_paths, generate_digits, glyph_bank

    c, h, w = _check_shape(input_shape)
    check_fits(
        synthetic_digits_bytes((c, h, w), n=n, n_eval=n_eval),
        f"synthetic digits of {w}×{h} ({n + 2 * n_eval:,} images)",
        advice="use a smaller input_shape in the spec (the digits model takes [1, 28, 28])",
    )
    steps = iter(range(1, 6))

    def begin(text: str) -> None:
        if stage is not None:
            stage(f"preparing synthetic digits: {next(steps)}/5 {text}…")

    begin(f"rendering the {len(font_paths('train'))} training fonts")
    glyph_bank("train")
    begin(f"drawing {n:,} training digits")
    images, labels = generate_digits(n, "train", seed=seed, size=(h, w), progress=progress)
    train = TensorData(_convert(images, (c, h, w)), labels)
    begin(f"drawing {n_eval:,} held-out digits in the training fonts")
    e_images, e_labels = generate_digits(
        n_eval, "train", seed=seed + 7919, size=(h, w), progress=progress
    )
    evaluations = {"heldout_synthetic": TensorData(_convert(e_images, (c, h, w)), e_labels)}
    begin(f"rendering the {len(font_paths('heldout'))} unseen fonts")
    glyph_bank("heldout")
    begin(f"drawing {n_eval:,} digits in the unseen fonts")
    e_images, e_labels = generate_digits(
        n_eval, "heldout", seed=seed + 104729, size=(h, w), progress=progress
    )
    evaluations["heldout_fonts"] = TensorData(_convert(e_images, (c, h, w)), e_labels)
    mean, std = channel_stats(train)
    preprocess = _make_preprocess(c, (h, w), mode="letterbox", auto_invert=True, mean=mean, std=std)
    return TrainingData(
        name="synthetic-digits",
        labels=list(DIGIT_LABELS),
        train=train,
        preprocess=preprocess,
        evaluations=evaluations,
        info={"n_train": n, "n_eval": n_eval, "seed": seed},
    )


_TORCHVISION = {
    "mnist": ("MNIST", "MNIST", True, "letterbox"),
    "fashion-mnist": ("FashionMNIST", "Fashion-MNIST", True, "letterbox"),
    "cifar10": ("CIFAR10", "CIFAR-10", False, "resize"),
}


def torchvision_dataset(
    name: str, input_shape: Sequence[int], *, root: Path | None = None
) -> TrainingData:
    """MNIST, Fashion-MNIST or CIFAR-10 (downloaded once into the cache), test split as validation."""
    import torchvision.datasets as tvd

    c, h, w = _check_shape(input_shape)
    cls_name, title, invert, mode = _TORCHVISION[name]
    folder = root or cache_dir()
    cls = getattr(tvd, cls_name)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        train_set = cls(str(folder), train=True, download=True)
        test_set = cls(str(folder), train=False, download=True)
    except Exception as exc:
        reason = " ".join(str(exc).split())[:160] or type(exc).__name__
        raise CnnvizError(
            f"Could not download {title} into {folder} ({reason}); without internet access, pass an image "
            "folder instead: --data FOLDER with one sub-folder of images per class."
        ) from exc

    def to_tensor(ds: Any) -> TensorData:
        data = torch.as_tensor(ds.data)
        data = data.unsqueeze(1) if data.ndim == 3 else data.permute(0, 3, 1, 2)
        return TensorData(
            _convert(data.to(torch.uint8), (c, h, w)),
            torch.as_tensor(ds.targets, dtype=torch.int64),
        )

    train = to_tensor(train_set)
    val = to_tensor(test_set)
    mean, std = channel_stats(train)
    preprocess = _make_preprocess(c, (h, w), mode=mode, auto_invert=invert, mean=mean, std=std)
    return TrainingData(
        name=name,
        labels=[str(x) for x in train_set.classes],
        train=train,
        val=val,
        preprocess=preprocess,
    )


def _class_dirs(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))


def _image_files(folder: Path) -> list[Path]:
    """Picture files under ``folder``, listed as every folder of pictures is (:func:`find_pictures`)."""
    return find_pictures(folder)


def _load_folder(
    folder: Path, classes: list[str], preprocess: Any, skipped: list[str]
) -> tuple[TensorData, dict[str, int]]:
    from cnnviz.core.images import load_image

    tensors: list[torch.Tensor] = []
    labels: list[int] = []
    counts: dict[str, int] = {}
    for index, name in enumerate(classes):
        counts[name] = 0
        class_dir = folder / name
        if not class_dir.is_dir():
            continue
        for path in _image_files(class_dir):
            try:
                loaded = load_image(path, preprocess)
            except ImageLoadError:
                skipped.append(str(path))
                continue
            tensors.append(loaded.tensor[0].clamp(0, 1))
            labels.append(index)
            counts[name] += 1
    if tensors:
        images = (torch.stack(tensors) * 255).round().to(torch.uint8)
    else:
        h, w = preprocess.size
        images = torch.zeros((0, int(preprocess.channels), int(h), int(w)), dtype=torch.uint8)
    return TensorData(images, torch.tensor(labels, dtype=torch.int64)), counts


def image_folder(path: str | os.PathLike[str], input_shape: Sequence[int]) -> TrainingData:
    """A folder with one sub-folder of images per class, or train/ and val/ folders laid out that way.

    Images are letterboxed to the input size; unreadable files are skipped and counted.
    """
    root = Path(path).expanduser()
    if not root.exists():
        raise CnnvizError(
            f"The data folder {root} does not exist: pass a folder with one sub-folder of images per class, "
            f"or one of {', '.join(BUILTIN_DATASETS)}."
        )
    if not root.is_dir():
        raise CnnvizError(
            f"The data path {root} is a file, not a folder: pass a folder with one sub-folder of images per class."
        )
    c, h, w = _check_shape(input_shape)
    val_root = next((root / d for d in _VAL_DIRS if (root / d).is_dir()), None)
    train_root = root / "train" if (root / "train").is_dir() else root
    if train_root == root and val_root is not None:
        raise CnnvizError(
            f"The data folder {root} has {val_root.name}/ but no train/ folder: put the training images in "
            f"{root / 'train'} with one sub-folder per class."
        )
    class_dirs = [d for d in _class_dirs(train_root) if _image_files(d)]
    if not class_dirs:
        raise CnnvizError(
            f"The data folder {train_root} has no class sub-folders with images: put each class's images in its "
            f"own sub-folder, e.g. {train_root / 'cat'}/*.png and {train_root / 'dog'}/*.png."
        )
    classes = [d.name for d in class_dirs]
    if len(classes) < 2:
        raise CnnvizError(
            f"The data folder {train_root} has only one class ({classes[0]}): a classifier needs at least two; "
            "add a sub-folder of images for each other class."
        )
    # Load once without normalisation to measure mean/std; the stored preprocess carries them.
    raw = _make_preprocess(
        c, (h, w), mode="letterbox", auto_invert=False, mean=[0.0] * c, std=[1.0] * c
    )
    skipped: list[str] = []
    train, counts = _load_folder(train_root, classes, raw, skipped)
    empty = [name for name, k in counts.items() if k == 0]
    if empty:
        raise CnnvizError(
            f"The class folder {train_root / empty[0]} has no readable images ({len(skipped)} unreadable files "
            "skipped): add images that open, or remove the folder."
        )
    val = None
    if val_root is not None:
        extra = sorted({d.name for d in _class_dirs(val_root) if _image_files(d)} - set(classes))
        if extra:
            raise CnnvizError(
                f"The validation folder {val_root} has classes that training lacks ({', '.join(extra)}): "
                f"use the same class sub-folders in {train_root} and {val_root}."
            )
        val, _ = _load_folder(val_root, classes, raw, skipped)
        if len(val) == 0:
            val = None
    mean, std = channel_stats(train)
    preprocess = _make_preprocess(
        c, (h, w), mode="letterbox", auto_invert=False, mean=mean, std=std
    )
    return TrainingData(
        name=str(root),
        labels=classes,
        train=train,
        val=val,
        preprocess=preprocess,
        skipped=len(skipped),
        skipped_files=skipped,
        info={"class_counts": counts},
    )


def open_dataset(
    data: str | os.PathLike[str],
    input_shape: Sequence[int],
    *,
    seed: int = 0,
    samples: int | None = None,
    stage: Callable[[str], None] | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> TrainingData:
    """Open ``data``: "synthetic-digits", "mnist", "fashion-mnist", "cifar10" or an image-folder path.

    ``samples`` sets the number of synthetic training digits (a tenth as many in each evaluation set);
    ``stage`` and ``progress`` follow their preparation (see :func:`synthetic_digits`).
    """
    key = str(data)
    lowered = key.lower()
    if lowered in ("synthetic-digits", "digits"):
        if samples is None:
            return synthetic_digits(input_shape, seed=seed, stage=stage, progress=progress)
        if samples < 1:
            raise CnnvizError(f"Cannot generate {samples} training digits: use 1 or more.")
        return synthetic_digits(
            input_shape,
            n=samples,
            n_eval=max(20, samples // 10),
            seed=seed,
            stage=stage,
            progress=progress,
        )
    if lowered in _TORCHVISION:
        return torchvision_dataset(lowered, input_shape)
    if not Path(key).expanduser().exists() and "/" not in key and os.sep not in key:
        raise CnnvizError(
            f"Unknown data {key!r}: use one of {', '.join(BUILTIN_DATASETS)} or the path of an image folder "
            "with one sub-folder per class."
        )
    return image_folder(key, input_shape)
