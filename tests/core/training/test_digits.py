"""The synthetic digit generator: determinism, shapes, font split, licences, errors."""

from __future__ import annotations

import pytest
import torch

from cnnviz.core.errors import CnnvizError
from cnnviz.core.training.digits import (
    HELDOUT_FONTS,
    TRAIN_FONTS,
    SyntheticDigits,
    font_paths,
    fonts_dir,
    generate_digits,
)


def test_same_seed_same_images_and_labels():
    a_img, a_lab = generate_digits(700, "train", seed=3)
    b_img, b_lab = generate_digits(700, "train", seed=3)
    assert torch.equal(a_img, b_img)
    assert torch.equal(a_lab, b_lab)


def test_other_seed_other_images():
    a_img, _ = generate_digits(64, "train", seed=1)
    b_img, _ = generate_digits(64, "train", seed=2)
    assert not torch.equal(a_img, b_img)


def test_prefix_does_not_depend_on_n():
    small, small_labels = generate_digits(40, "train", seed=5)
    large, large_labels = generate_digits(600, "train", seed=5)
    assert torch.equal(small, large[:40])
    assert torch.equal(small_labels, large_labels[:40])


def test_shapes_types_and_all_classes():
    images, labels = generate_digits(300, "train", seed=0, size=(28, 28))
    assert images.shape == (300, 1, 28, 28)
    assert images.dtype == torch.uint8
    assert labels.dtype == torch.int64
    assert set(labels.tolist()) == set(range(10))


def test_non_square_size():
    images, _ = generate_digits(20, "heldout", seed=0, size=(20, 36))
    assert images.shape == (20, 1, 20, 36)


def test_light_ink_on_dark_background():
    images, _ = generate_digits(200, "train", seed=0)
    x = images.float() / 255
    border = torch.cat([x[:, 0, 0, :], x[:, 0, -1, :], x[:, 0, :, 0], x[:, 0, :, -1]], dim=1)
    # Background is dark at the edges; the digit's ink is the brightest part.
    assert float(border.median()) < 0.35
    assert float(x.flatten(1).amax(1).median()) > 0.6


def test_dataset_items():
    ds = SyntheticDigits(30, fonts="heldout", seed=1)
    assert len(ds) == 30
    image, label = ds[4]
    assert image.shape == (1, 28, 28)
    assert image.dtype == torch.float32
    assert 0.0 <= float(image.min()) <= float(image.max()) <= 1.0
    assert label == int(ds.labels[4])
    assert ds.classes == [str(d) for d in range(10)]


def test_font_split_is_disjoint_and_shipped_with_licences():
    assert not set(TRAIN_FONTS) & set(HELDOUT_FONTS)
    paths = font_paths("all")
    assert len(paths) == len(TRAIN_FONTS) + len(HELDOUT_FONTS)
    for path in paths:
        assert path.is_file()
        assert (path.parent / "LICENSE.txt").is_file(), f"{path.parent} ships no licence"
    total = sum(p.stat().st_size for p in fonts_dir().rglob("*") if p.is_file())
    assert total < 6 * 1024 * 1024


def test_every_font_renders_every_digit():
    # A font without a digit glyph would raise while the bank is built.
    images, labels = generate_digits(10, "all", seed=0)
    assert images.shape[0] == 10


def test_bad_arguments():
    with pytest.raises(CnnvizError, match="zero or more"):
        generate_digits(-1)
    with pytest.raises(CnnvizError, match="too small"):
        generate_digits(5, size=(4, 4))
    with pytest.raises(CnnvizError, match="Unknown font set"):
        font_paths("fancy")
    with pytest.raises(CnnvizError, match="does not exist"):
        font_paths(["no/such/font.ttf"])


def test_sketch_digit_is_deterministic_and_sized():
    import numpy as np

    from cnnviz.core.training.digits import sketch_digit

    a = np.asarray(sketch_digit(3, seed=5, size=(90, 60)))
    b = np.asarray(sketch_digit(3, seed=5, size=(90, 60)))
    assert a.shape == (90, 60)
    assert np.array_equal(a, b)
    assert not np.array_equal(a, np.asarray(sketch_digit(3, seed=6, size=(90, 60))))
    # Dark ink on light paper by default, the other way round on request.
    assert np.median(a) > 150 and a.min() < 100
    light = np.asarray(sketch_digit(3, seed=5, size=(90, 60), dark_on_light=False))
    assert np.median(light) < 100 and light.max() > 150
    with pytest.raises(CnnvizError, match="not a digit"):
        sketch_digit(12)
