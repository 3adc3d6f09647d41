"""Training, datasets and checkpoints on tiny generated image folders; the shipped default model."""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path

import pytest
import torch
from PIL import Image
from shape_folders import SHAPES, TINY_SPEC, make_folder

from cnnviz.core.errors import CnnvizError, ModelLoadError
from cnnviz.core.images import Preprocess
from cnnviz.core.models.checkpoint import VERSION, is_checkpoint, read_checkpoint, save_checkpoint
from cnnviz.core.models.spec import build_model
from cnnviz.core.training import Callbacks, evaluate, train
from cnnviz.core.training.datasets import image_folder, open_dataset
from cnnviz.core.training.plan import auto_batch_size, auto_epochs


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """One thread: on a shared machine a tiny net's steps are many times faster than on two."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def shapes_dir(tmp_path_factory) -> Path:
    return make_folder(tmp_path_factory.mktemp("shapes"))


@pytest.fixture(scope="module")
def trained(shapes_dir):
    # The defaults: batch size and epochs follow the 81 training pictures, one-cycle schedule.
    return train(TINY_SPEC, str(shapes_dir), seed=0, device="cpu")


def test_training_learns_shapes_well_above_chance(trained, tmp_path):
    epochs = auto_epochs(81, auto_batch_size(81))
    assert trained.epochs_completed == epochs and trained.metrics["batch_size"] == 8
    assert not trained.cancelled
    assert trained.labels == list(SHAPES)
    fresh = image_folder(
        make_folder(tmp_path / "fresh", per_class=20, seed=99), TINY_SPEC["input_shape"]
    )
    acc = evaluate(trained.model, fresh.train, trained.preprocess)["acc"]
    assert acc >= 0.8  # chance is 1/3
    assert len(trained.history) == epochs
    assert trained.warning is None
    assert {"train_loss", "train_acc", "val_loss", "val_acc"} <= set(trained.history[-1])


def test_callbacks_see_every_batch_and_epoch(shapes_dir):
    events = []

    class Recorder(Callbacks):
        def on_epoch_start(self, epoch, n_epochs):
            events.append(("start", epoch, n_epochs))

        def on_batch_end(self, epoch, batch, n_batches, loss, acc):
            events.append(("batch", epoch, batch, n_batches))

        def on_epoch_end(self, epoch, metrics):
            events.append(("end", epoch, round(metrics["val_acc"], 6)))

    data = image_folder(shapes_dir, TINY_SPEC["input_shape"])
    result = train(
        TINY_SPEC, data, epochs=2, batch_size=32, seed=1, val_split=0.2, callbacks=Recorder()
    )
    n_train = len(data.train) - round(len(data.train) * 0.2)
    n_batches = -(-n_train // 32)
    assert [e for e in events if e[0] == "start"] == [("start", 1, 2), ("start", 2, 2)]
    assert sum(1 for e in events if e[0] == "batch") == 2 * n_batches
    assert events[-1] == ("end", 2, round(result.history[-1]["val_acc"], 6))


def test_same_seed_same_weights(shapes_dir):
    data = image_folder(shapes_dir, TINY_SPEC["input_shape"])
    a = train(TINY_SPEC, data, epochs=2, batch_size=16, seed=7)
    b = train(TINY_SPEC, data, epochs=2, batch_size=16, seed=7)
    for (ka, va), (kb, vb) in zip(
        a.model.state_dict().items(), b.model.state_dict().items(), strict=True
    ):
        assert ka == kb
        assert torch.equal(va, vb)
    assert a.history[-1]["val_acc"] == b.history[-1]["val_acc"]


def test_fine_tune_an_existing_module(shapes_dir):
    data = image_folder(shapes_dir, TINY_SPEC["input_shape"])
    module = build_model(TINY_SPEC)
    result = train(TINY_SPEC, data, epochs=1, batch_size=16, model=module)
    assert result.model is module


def test_checkpoint_round_trip(trained, tmp_path):
    path = tmp_path / "model.pt"
    save_checkpoint(
        path,
        spec=trained.spec,
        state_dict=trained.model.state_dict(),
        labels=trained.labels,
        preprocess=trained.preprocess,
        metrics=trained.metrics,
    )
    # Loadable without trusting the file.
    raw = torch.load(path, weights_only=True)
    assert is_checkpoint(raw)
    ckpt = read_checkpoint(path)
    assert ckpt is not None and ckpt["version"] == VERSION
    module = build_model(ckpt["spec"])
    module.load_state_dict(ckpt["state_dict"])
    module.eval()
    x = torch.randn(4, *TINY_SPEC["input_shape"])
    with torch.no_grad():
        assert torch.equal(module(x), trained.model(x))
    assert ckpt["labels"] == list(SHAPES)
    assert Preprocess.from_dict(ckpt["preprocess"]) == trained.preprocess
    assert ckpt["metrics"]["val_acc"] == trained.metrics["val_acc"]
    assert [p.name for p in tmp_path.iterdir()] == ["model.pt"]


def test_read_checkpoint_other_files(tmp_path):
    plain = tmp_path / "weights.pt"
    torch.save(build_model(TINY_SPEC).state_dict(), plain)
    assert read_checkpoint(plain) is None
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a torch file at all")
    assert read_checkpoint(junk) is None
    with pytest.raises(ModelLoadError, match="does not exist"):
        read_checkpoint(tmp_path / "missing.pt")
    future = tmp_path / "future.pt"
    torch.save({"format": "cnnviz-checkpoint", "version": VERSION + 1}, future)
    with pytest.raises(ModelLoadError, match="upgrade cnnviz"):
        read_checkpoint(future)


def test_failed_save_keeps_the_old_file(trained, tmp_path, monkeypatch):
    path = tmp_path / "model.pt"
    kwargs = dict(
        spec=trained.spec, labels=trained.labels, preprocess=trained.preprocess, metrics={}
    )
    save_checkpoint(path, state_dict=trained.model.state_dict(), **kwargs)
    before = path.read_bytes()

    def broken_save(obj, fh):
        fh.write(b"half a file")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(ModelLoadError, match="disk full; the previous file there is unchanged"):
        save_checkpoint(path, state_dict=trained.model.state_dict(), **kwargs)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["model.pt"]


def test_cancel_returns_what_was_trained(shapes_dir):
    cancel = threading.Event()

    class StopAfterThree(Callbacks):
        def on_batch_end(self, epoch, batch, n_batches, loss, acc):
            if epoch == 2 and batch == 3:
                cancel.set()

    result = train(
        TINY_SPEC,
        str(shapes_dir),
        epochs=5,
        batch_size=8,
        callbacks=StopAfterThree(),
        cancel=cancel,
    )
    assert result.cancelled
    assert result.epochs_completed == 1
    assert len(result.history) == 1
    # A callable works as well as an Event.
    result = train(TINY_SPEC, str(shapes_dir), epochs=3, batch_size=8, cancel=lambda: True)
    assert result.cancelled and result.epochs_completed == 0


def test_unreadable_images_are_skipped_and_counted(tmp_path):
    root = make_folder(tmp_path / "data", per_class=6)
    (root / "circle" / "broken.png").write_bytes(b"\x89PNG but not really")
    (root / "cross" / "empty.jpg").write_bytes(b"")
    (root / "square" / "notes.txt").write_text("not an image, ignored")
    data = image_folder(root, TINY_SPEC["input_shape"])
    assert data.skipped == 2
    assert len(data.train) == 18
    assert sorted(Path(p).name for p in data.skipped_files) == ["broken.png", "empty.jpg"]


def test_train_and_val_folders(tmp_path):
    root = tmp_path / "split"
    make_folder(root / "train", per_class=5, seed=1)
    make_folder(root / "val", per_class=3, seed=2)
    data = open_dataset(str(root), TINY_SPEC["input_shape"])
    assert data.labels == list(SHAPES)
    assert len(data.train) == 15 and data.val is not None and len(data.val) == 9
    result = train(TINY_SPEC, data, epochs=1, batch_size=8)
    assert result.metrics["n_val"] == 9


def test_image_folder_takes_every_picture_the_decoder_opens(tmp_path):
    make_folder(tmp_path, per_class=2, seed=3)
    # Formats an image folder once skipped, though load_image opens them.
    for kind, suffix, fmt in (("circle", ".tga", "TGA"), ("square", ".jfif", "JPEG")):
        Image.new("L", (24, 24), 200).save(tmp_path / kind / f"extra{suffix}", fmt)
    data = image_folder(tmp_path, TINY_SPEC["input_shape"])
    assert len(data.train) + (len(data.val) if data.val is not None else 0) == 8


def test_data_errors(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(CnnvizError, match="no class sub-folders"):
        open_dataset(str(empty), [1, 16, 16])
    one = make_folder(tmp_path / "one", per_class=3, classes=("circle",))
    with pytest.raises(CnnvizError, match="only one class"):
        open_dataset(str(one), [1, 16, 16])
    with pytest.raises(CnnvizError, match="does not exist"):
        open_dataset(str(tmp_path / "missing"), [1, 16, 16])
    with pytest.raises(CnnvizError, match="Unknown data"):
        open_dataset("imagenet-21k", [1, 16, 16])


def test_class_count_mismatch_says_what_to_change(shapes_dir):
    spec = json.loads(json.dumps(TINY_SPEC))
    spec["layers"][-1]["out_features"] = 10
    with pytest.raises(CnnvizError) as info:
        train(spec, str(shapes_dir), epochs=1)
    assert str(info.value) == (
        "The model ends in 10 outputs but the data has 3 classes: change the last Linear's out_features to 3."
    )


def test_offline_torchvision_dataset_suggests_a_folder(tmp_path, monkeypatch):
    import torchvision.datasets as tvd

    def offline(*args, **kwargs):
        raise RuntimeError("Error downloading train-images-idx3-ubyte.gz: network unreachable")

    monkeypatch.setattr(tvd, "MNIST", offline)
    monkeypatch.setenv("CNNVIZ_CACHE", str(tmp_path))
    with pytest.raises(CnnvizError, match="Could not download MNIST.*image folder"):
        open_dataset("mnist", [1, 28, 28])


def test_shipped_default_model_reads_fresh_digits():
    from cnnviz.core.resources import resource_path
    from cnnviz.core.training.digits import generate_digits

    path = resource_path("models", "digits.pt")
    assert path.stat().st_size <= 2 * 1024 * 1024
    ckpt = read_checkpoint(path)
    assert ckpt is not None
    metrics = ckpt["metrics"]
    assert metrics["command"].startswith("cnnviz train --arch default --data synthetic-digits")
    assert metrics["heldout_synthetic_acc"] >= 0.98
    assert "heldout_fonts_acc" in metrics
    model = build_model(ckpt["spec"])
    model.load_state_dict(ckpt["state_dict"])
    model.eval()
    preprocess = Preprocess.from_dict(ckpt["preprocess"])
    # A seed never used in training or in the stored evaluations.
    images, labels = generate_digits(1000, "train", seed=424242)
    x = (images.float() / 255 - preprocess.mean[0]) / preprocess.std[0]
    with torch.no_grad():
        acc = float((model(x).argmax(1) == labels).float().mean())
    assert acc >= 0.98


def test_synthetic_digits_dataset_in_other_shapes():
    from cnnviz.core.training.datasets import synthetic_digits

    data = synthetic_digits([3, 32, 24], n=60, n_eval=20, seed=2)
    assert data.labels == [str(d) for d in range(10)]
    assert data.train.images.shape == (60, 3, 32, 24)
    assert set(data.evaluations) == {"heldout_synthetic", "heldout_fonts"}
    assert all(len(e) == 20 for e in data.evaluations.values())
    pre = data.preprocess
    assert pre.channels == 3 and tuple(pre.size) == (32, 24)
    assert pre.mode == "letterbox" and pre.auto_invert
    x = data.train.batch(torch.arange(60)).double()
    # The stored mean/std are those of the training images themselves.
    assert pre.mean[0] == pytest.approx(float(x[:, 0].mean()), abs=1e-3)
    assert pre.std[0] == pytest.approx(float(x[:, 0].std()), abs=1e-3)


def test_save_checkpoint_where_even_root_cannot_write(tmp_path):
    if not os.path.isdir("/proc/self"):
        pytest.skip("needs Linux /proc")
    model = build_model(TINY_SPEC)
    with pytest.raises(ModelLoadError, match="does not accept new files"):
        save_checkpoint("/proc/cnnviz-test.pt", spec=TINY_SPEC, state_dict=model.state_dict(),
                        labels=list(SHAPES), preprocess=None)  # fmt: skip
    with pytest.raises(ModelLoadError, match="FIFO"):
        os.mkfifo(tmp_path / "pipe.pt")
        save_checkpoint(tmp_path / "pipe.pt", spec=TINY_SPEC, state_dict=model.state_dict(),
                        labels=list(SHAPES), preprocess=None)  # fmt: skip
