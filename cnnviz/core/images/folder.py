"""A folder of pictures, streamed in batches: :func:`list_pictures`, :func:`iter_picture_batches`.

Every picture is read with :func:`~cnnviz.core.images.load.load_image` (the same bounded decoding and the same
preprocessing as everywhere else), so a picture in a folder run is exactly the picture the app shows. Decoding
runs in a few background threads, a bounded number of pictures ahead of the consumer, so that reading overlaps the
model's forward pass while memory stays bounded by about ``batch_size * (prefetch + 1)`` decoded pictures.
Unreadable files are skipped with their one-line reason, never fatal.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cnnviz.core.budget import FOLDER_PREFETCH
from cnnviz.core.errors import (
    ArgumentTypeError,
    CnnvizError,
    ImageLoadError,
    InvalidArgumentError,
    one_line,
)
from cnnviz.core.images.decode import IMAGE_FILE_EXTENSIONS
from cnnviz.core.images.geometry import ImageGeometry
from cnnviz.core.images.load import LoadedImage, load_image
from cnnviz.core.images.preprocess import Preprocess

if TYPE_CHECKING:
    import torch

__all__ = [
    "PictureBatch",
    "find_pictures",
    "list_pictures",
    "iter_picture_batches",
    "DEFAULT_PREFETCH",
]

DEFAULT_PREFETCH = FOLDER_PREFETCH
"""Batches decoded ahead of the one being consumed (``(prefetch + 1) * batch_size`` pictures alive)."""

_MAX_THREADS = 4


@dataclass
class PictureBatch:
    """Up to ``batch_size`` readable pictures of a folder, ready for a model.

    ``paths``, ``originals`` (each picture's original ``(height, width)`` after EXIF rotation) and
    ``geometries`` (model-input pixels -> original pixels) have one entry per row of ``tensor``
    (``B x C x H x W`` float32, normalised). ``skipped`` lists the unreadable files met while this batch was
    filled, each with a one-line reason; a last batch can hold skipped files and no picture (``B == 0``).
    ``start`` is the index of the first picture among all readable pictures streamed so far; ``done`` counts
    the files consumed (read or skipped) up to the end of this batch, for progress.
    """

    paths: list[Path]
    tensor: torch.Tensor
    originals: list[tuple[int, int]]
    skipped: list[tuple[Path, str]] = field(default_factory=list)
    geometries: list[ImageGeometry] = field(default_factory=list)
    start: int = 0
    done: int = 0

    def __len__(self) -> int:
        return len(self.paths)


def _is_picture(name: str) -> bool:
    return not name.startswith(".") and os.path.splitext(name)[1].lower() in IMAGE_FILE_EXTENSIONS


def list_pictures(folder: str | os.PathLike[str]) -> list[Path]:
    """Every picture file under ``folder`` (recursively, sorted), by the suffixes the image readers accept.

    Hidden files and folders (a leading dot) are left out; symbolic links to folders are not followed (no loops).
    Raises :class:`~cnnviz.core.errors.ImageLoadError` for a missing path, a path that is not a folder, or a folder
    without any picture file.
    """
    if not isinstance(folder, (str, os.PathLike)):
        raise ArgumentTypeError(f"The picture folder must be a path, not {type(folder).__name__}.")
    root = Path(folder).expanduser()
    if not root.exists():
        raise ImageLoadError(
            f"The picture folder '{root}' does not exist; give an existing folder."
        )
    if not root.is_dir():
        raise ImageLoadError(
            f"'{root}' is not a folder; give a folder of pictures (it is searched recursively)."
        )
    found = find_pictures(root)
    if not found:
        raise ImageLoadError(
            f"The folder '{root}' holds no picture files (looked for {', '.join(IMAGE_FILE_EXTENSIONS[:6])} "
            "and other picture suffixes, in all its subfolders); add pictures or pick another folder."
        )
    return found


def find_pictures(root: Path) -> list[Path]:
    """The picture files under the folder ``root`` as :func:`list_pictures` finds them; empty when there are none.

    The one listing of picture files (training's class folders use it too): by suffix, recursive, sorted, hidden
    files and folders left out, symbolic links to folders not followed.
    """
    found: list[Path] = []
    for here, dirs, files in os.walk(root, followlinks=False):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        found.extend(Path(here, name) for name in files if _is_picture(name))
    return sorted(p for p in found if p.is_file())


def _read(path: Path, preprocess: Preprocess) -> LoadedImage | str:
    """The preprocessed picture, or the one-line reason it cannot be read."""
    try:
        return load_image(path, preprocess)
    except CnnvizError as exc:
        return one_line(exc)
    except (
        OSError
    ) as exc:  # a file that vanished or cannot be opened between the listing and the read
        return f"'{path}' cannot be read: {one_line(exc)}"
    except MemoryError:
        return f"'{path}' needs more memory than is free to decode"


def _check_batch_size(batch_size: Any) -> int:
    if isinstance(batch_size, bool) or not isinstance(batch_size, int):
        raise ArgumentTypeError(f"The batch size must be a whole number, not {batch_size!r}.")
    if batch_size < 1:
        raise InvalidArgumentError(f"The batch size must be at least 1, not {batch_size}.")
    return batch_size


def iter_picture_batches(
    paths: Sequence[str | os.PathLike[str]],
    preprocess: Preprocess,
    batch_size: int,
    *,
    should_stop: Callable[[], bool] | None = None,
    prefetch: int = DEFAULT_PREFETCH,
    threads: int | None = None,
) -> Iterator[PictureBatch]:
    """Read ``paths`` in order and yield batches of ``batch_size`` readable pictures (the last may be smaller).

    Unreadable files are skipped and listed in the batch that met them. ``should_stop`` (a callable returning
    True, or a ``threading.Event``) is asked before each picture is taken; when it says stop, the stream ends
    after the pictures read so far are yielded and the pending decodes are dropped. Decoding runs ``prefetch``
    batches ahead in ``threads`` background threads (default: up to 4, never more than the CPUs).
    """
    if not isinstance(preprocess, Preprocess):
        raise ArgumentTypeError(
            f"preprocess must be a Preprocess (e.g. Preprocess.imagenet()), not {type(preprocess).__name__}."
        )
    batch_size = _check_batch_size(batch_size)
    files = [Path(p) for p in paths]
    workers = threads if threads is not None else max(1, min(_MAX_THREADS, (os.cpu_count() or 1)))
    window = max(1, batch_size * (max(0, int(prefetch)) + 1))
    return _stream(files, preprocess, batch_size, should_stop, window, max(1, int(workers)))


def _stopped(should_stop: Any) -> bool:
    if should_stop is None:
        return False
    if hasattr(should_stop, "is_set"):
        return bool(should_stop.is_set())
    return bool(should_stop())


def _stream(
    files: list[Path],
    preprocess: Preprocess,
    batch_size: int,
    should_stop: Any,
    window: int,
    workers: int,
) -> Iterator[PictureBatch]:
    import torch

    channels = preprocess.channels
    height, width = preprocess.size
    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="cnnviz-pictures")
    pending: deque[tuple[Path, Future[LoadedImage | str]]] = deque()
    queued = 0
    start = 0
    done = 0

    def top_up() -> None:
        nonlocal queued
        while queued < len(files) and len(pending) < window:
            path = files[queued]
            pending.append((path, pool.submit(_read, path, preprocess)))
            queued += 1

    try:
        while True:
            top_up()
            paths: list[Path] = []
            tensors: list[torch.Tensor] = []
            originals: list[tuple[int, int]] = []
            geometries: list[ImageGeometry] = []
            skipped: list[tuple[Path, str]] = []
            stop = False
            while len(paths) < batch_size and pending:
                if _stopped(should_stop):
                    stop = True
                    break
                path, future = pending.popleft()
                top_up()
                result = future.result()
                done += 1
                if isinstance(result, str):
                    skipped.append((path, result))
                    continue
                paths.append(path)
                tensors.append(result.tensor)
                originals.append(result.original_size)
                geometries.append(result.geometry)
            if paths or skipped:
                tensor = (
                    torch.cat(tensors, 0)
                    if tensors
                    else torch.zeros((0, channels, height, width), dtype=torch.float32)
                )
                yield PictureBatch(paths, tensor, originals, skipped, geometries, start, done)
                start += len(paths)
            if stop or not pending:
                return
    finally:
        for _, future in pending:
            future.cancel()
        pool.shutdown(wait=True, cancel_futures=True)
