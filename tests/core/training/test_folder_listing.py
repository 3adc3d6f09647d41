"""Training's class folders list their pictures as every folder of pictures is listed (list_pictures)."""

from __future__ import annotations

from pathlib import Path

from PIL import Image

from cnnviz.core.images.folder import list_pictures
from cnnviz.core.training.datasets import _image_files, image_folder


def _write(root: Path, names: list[str]) -> None:
    for i, name in enumerate(names):
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if name.endswith(".txt"):
            path.write_text("not a picture")
        else:
            Image.new("L", (20, 20), 40 + 30 * i).save(path, "PNG")


def test_class_folders_take_the_pictures_list_pictures_finds_in_its_order(tmp_path: Path) -> None:
    names = ["b.png", "a/z.PNG", "a/y.png", "C.png", ".hidden/x.png", ".dot.png", "notes.txt"]
    for kind in ("circle", "square"):
        _write(tmp_path / kind, names)
    readable = [
        "b.png",
        "a/z.PNG",
        "a/y.png",
        "C.png",
    ]  # hidden files and folders and the text are left out
    for kind in ("circle", "square"):
        listed = _image_files(tmp_path / kind)
        assert listed == list_pictures(tmp_path / kind)
        assert listed == sorted(tmp_path / kind / n for n in readable)
    data = image_folder(tmp_path, [1, 16, 16])
    total = len(data.train) + (len(data.val) if data.val is not None else 0)
    assert total == 2 * len(readable) and data.skipped == 0
