"""Defaults that scale with the data, and the near-chance verdict: on folders generated here and by rule."""

from __future__ import annotations

import json
import math
import random
from pathlib import Path

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from shape_folders import TINY_SPEC, draw_shape, make_folder

from cnnviz.core.training import evaluate, train
from cnnviz.core.training.datasets import image_folder
from cnnviz.core.training.plan import (
    MAX_AUTO_EPOCHS,
    MAX_AUTO_IMAGES,
    MIN_STEPS,
    auto_batch_size,
    auto_epochs,
    chance_level,
    chance_warning,
)


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """One thread: on a shared machine a tiny net's steps are many times faster than on two."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


TWO_CLASS_SPEC = json.loads(json.dumps(TINY_SPEC))
TWO_CLASS_SPEC["layers"][-1]["out_features"] = 2


@given(st.integers(1, 200_000))
def test_batch_size_is_a_power_of_two_near_an_eighth(n: int) -> None:
    b = auto_batch_size(n)
    assert 8 <= b <= 64 and b & (b - 1) == 0
    if 64 <= n < 512:  # inside the clamp: the largest power of two not above n / 8
        assert b <= n / 8 < 2 * b


@given(st.integers(1, 200_000), st.integers(1, 256))
def test_auto_epochs_give_enough_steps_within_the_budget(n: int, batch: int) -> None:
    epochs = auto_epochs(n, batch)
    steps_per_epoch = -(-n // batch)
    assert epochs >= 1
    fewer = epochs - 1
    if epochs * steps_per_epoch < MIN_STEPS:  # short of the steps only when a cap stopped it
        assert epochs == MAX_AUTO_EPOCHS or (epochs + 1) * n > MAX_AUTO_IMAGES
    if fewer >= 1:  # one epoch less would not have been enough, or more was not affordable
        assert fewer * steps_per_epoch < MIN_STEPS
        assert epochs == 1 or epochs * n <= MAX_AUTO_IMAGES


def test_chance_level_is_the_most_frequent_class() -> None:
    assert chance_level([0, 0, 0, 1], 2) == 0.75
    assert chance_level([0, 1, 2], 3) == pytest.approx(1 / 3)
    assert chance_level([0, 0], 4) == 1.0
    assert chance_level([], 4) == 0.25


def _tail(n: int, k: int, p: float) -> float:
    return sum(math.comb(n, i) * p**i * (1 - p) ** (n - i) for i in range(k, n + 1))


@pytest.mark.parametrize("correct", range(0, 9))
def test_warning_on_eight_validation_pictures(correct: int) -> None:
    acc = correct / 8
    text = chance_warning(train_acc=1.0, val_acc=acc, n_val=8, n_train=72, chance=0.5, n_classes=2)
    # Near chance: below 60% (a fifth of the way to perfect) or reached by guessing more than 1 time in 20.
    expected = acc < 0.6 or _tail(8, correct, 0.5) > 0.05
    assert (text is not None) == expected
    if text is not None:
        assert text.startswith(
            f"the final validation accuracy {100 * acc:.1f}% (8 pictures) is close to chance (50.0%, 2 classes)"
        )
        assert "fits its training pictures (100.0%) but not new ones" in text


def test_warning_when_nothing_was_learned_names_what_to_try() -> None:
    text = chance_warning(
        train_acc=0.12, val_acc=None, n_val=0, n_train=500, chance=0.1, n_classes=10, folder=False
    )
    assert text is not None
    assert text.startswith(
        "the final training accuracy 12.0% (500 pictures) is close to chance (10.0%"
    )
    assert "more epochs" in text and "learning rate" in text and "class folder" not in text
    assert (
        chance_warning(train_acc=0.9, val_acc=None, n_val=0, n_train=500, chance=0.1, n_classes=10)
        is None
    )


@pytest.fixture(scope="module")
def circles_and_squares(tmp_path_factory) -> Path:
    return make_folder(
        tmp_path_factory.mktemp("two"), per_class=40, seed=0, classes=("circle", "square")
    )


def test_defaults_learn_a_small_two_class_folder(circles_and_squares, tmp_path) -> None:
    result = train(TWO_CLASS_SPEC, str(circles_and_squares), seed=0, device="cpu")
    m = result.metrics
    n_train = 80 - round(80 * 0.1)
    assert m["n_train"] == n_train and m["batch_size"] == auto_batch_size(n_train)
    assert result.steps >= MIN_STEPS and m["epochs"] == auto_epochs(n_train, m["batch_size"])
    assert m["schedule"] == "onecycle" and m["chance_acc"] == 0.5
    assert m["val_acc"] >= 0.9
    assert result.warning is None
    # Pictures the run never saw, drawn here with another seed.
    fresh = image_folder(
        make_folder(tmp_path / "fresh", per_class=30, seed=123, classes=("circle", "square")),
        TWO_CLASS_SPEC["input_shape"],
    )
    assert evaluate(result.model, fresh.train, result.preprocess)["acc"] >= 0.9


def test_the_old_fixed_defaults_end_near_chance_and_say_so(circles_and_squares) -> None:
    # A batch of 64 and 8 epochs give this folder 16 steps.
    result = train(TWO_CLASS_SPEC, str(circles_and_squares), epochs=8, batch_size=64, lr=1e-3,
                   schedule="cosine", seed=0, device="cpu")  # fmt: skip
    assert result.steps == 16
    val = result.metrics["val_acc"]
    assert result.warning is not None
    assert result.warning.startswith(f"the final validation accuracy {100 * val:.1f}% (8 pictures)")


def random_label_folder(root: Path, per_class: int, seed: int) -> Path:
    """Two class folders whose pictures are circles or squares at random: nothing to learn."""
    rnd = random.Random(seed)
    for name in ("a", "b"):
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            draw_shape(rnd.choice(("circle", "square")), rnd).save(root / name / f"{i:03d}.png")
    return root


@pytest.mark.slow
def test_random_labels_get_the_warning(tmp_path) -> None:
    root = random_label_folder(tmp_path / "noise", per_class=60, seed=5)
    result = train(TWO_CLASS_SPEC, str(root), seed=0, val_split=0.4, device="cpu")
    val = result.metrics["val_acc"]
    assert result.metrics["n_val"] == 48
    assert result.warning is not None, val
    assert f"{100 * val:.1f}% (48 pictures) is close to chance (50.0%, 2 classes)" in result.warning
    assert "class folder holds its own kind of picture" in result.warning
