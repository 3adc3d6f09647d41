"""Predictions: probabilities against an independent softmax, input kinds, the CLI, the default model."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from cnnviz.cli import main
from cnnviz.core.analysis.capture import ForwardError
from cnnviz.core.analysis.predict import Prediction, predict, rank_output
from cnnviz.core.errors import CnnvizError
from cnnviz.core.images import Preprocess, load_image
from cnnviz.core.models import LoadedModel
from cnnviz.core.models.checkpoint import save_checkpoint
from cnnviz.core.models.spec import build_model

SPEC = {
    "input_shape": [1, 12, 12],
    "labels": ["a", "b", "c", "d"],
    "layers": [
        {"type": "Conv2d", "out_channels": 4, "kernel_size": 3},
        {"type": "ReLU"},
        {"type": "Flatten"},
        {"type": "Linear", "out_features": 4},
    ],
}
PRE = Preprocess(1, (12, 12), "resize", None, (0.5,), (0.25,))


def loaded(module: nn.Module, labels=("a", "b", "c", "d")) -> LoadedModel:
    return LoadedModel(
        module.eval(), "tiny", (1, 12, 12), PRE, list(labels) if labels else None, SPEC, "module"
    )


@pytest.fixture
def model() -> LoadedModel:
    torch.manual_seed(0)
    return loaded(build_model(SPEC))


def test_probabilities_match_an_independent_softmax(model):
    x = torch.randn(1, 1, 12, 12)
    preds = predict(model, x, top=4)
    with torch.no_grad():
        logits = model.module(x)[0]
    expected = torch.exp(logits - logits.max()) / torch.exp(logits - logits.max()).sum()
    order = sorted(range(4), key=lambda i: -float(expected[i]))
    assert [p.index for p in preds] == order
    assert [p.label for p in preds] == ["abcd"[i] for i in order]
    for p in preds:
        assert p.probability == pytest.approx(float(expected[p.index]), abs=1e-6)
    assert sum(p.probability for p in preds) == pytest.approx(1.0, abs=1e-5)


def test_top_is_clamped_and_checked(model):
    x = torch.randn(1, 12, 12)  # C x H x W also accepted
    assert len(predict(model, x, top=10)) == 4
    assert len(predict(model, x, top=2)) == 2
    with pytest.raises(CnnvizError, match="top 0"):
        predict(model, x, top=0)


def test_softmax_is_not_applied_twice():
    torch.manual_seed(1)
    module = nn.Sequential(nn.Flatten(), nn.Linear(144, 4), nn.Softmax(dim=1))
    m = loaded(module)
    x = torch.randn(1, 1, 12, 12)
    with torch.no_grad():
        probs = module(x)[0]
    preds = predict(m, x, top=4)
    for p in preds:
        assert p.probability == pytest.approx(float(probs[p.index]), abs=1e-7)


def test_log_softmax_outputs_are_exponentiated():
    torch.manual_seed(2)
    module = nn.Sequential(nn.Flatten(), nn.Linear(144, 4), nn.LogSoftmax(dim=1))
    preds = predict(loaded(module), torch.randn(1, 1, 12, 12), top=4)
    assert sum(p.probability for p in preds) == pytest.approx(1.0, abs=1e-5)


def test_path_pil_and_loaded_image_agree(model, tmp_path):
    arr = (np.random.default_rng(0).random((30, 20)) * 255).astype(np.uint8)
    path = tmp_path / "x.png"
    Image.fromarray(arr).save(path)
    from_tensor = predict(model, load_image(path, PRE).tensor, top=4)
    assert predict(model, path, top=4) == from_tensor
    assert predict(model, str(path), top=4) == from_tensor
    assert predict(model, Image.open(path), top=4) == from_tensor
    assert predict(model, load_image(path, PRE), top=4) == from_tensor


def test_without_labels_indices_name_classes(model):
    m = loaded(model.module, labels=None)
    preds = predict(m, torch.zeros(1, 1, 12, 12), top=4)
    assert sorted(p.label for p in preds) == ["0", "1", "2", "3"]
    assert all(p.label == str(p.index) for p in preds)


def test_rank_output_ranks_a_captured_output_like_predict(model):
    x = torch.randn(1, 1, 12, 12)
    with torch.no_grad():
        out = model.module(x)
    assert rank_output(model, (out,), top=3) == predict(model, x, top=3)
    assert [p.label for p in rank_output(loaded(model.module, labels=None), out, 2)] == [
        str(p.index) for p in predict(model, x, top=2)
    ]
    with pytest.raises(ForwardError, match="does not return a tensor"):
        rank_output(model, {"logits": out})
    with pytest.raises(ForwardError, match="not one score per class"):
        rank_output(model, torch.zeros(1, 0))


def test_prediction_to_dict():
    assert Prediction("3", 3, 0.5).to_dict() == {"label": "3", "index": 3, "probability": 0.5}


def test_bad_tensor_shape(model):
    with pytest.raises(CnnvizError, match="one image"):
        predict(model, torch.zeros(2, 1, 12, 12))


@pytest.fixture
def checkpoint(model, tmp_path):
    """The tiny model saved as a cnnviz checkpoint, for the command line."""
    path = tmp_path / "tiny.pt"
    save_checkpoint(
        path,
        spec=SPEC,
        state_dict=model.module.state_dict(),
        labels=SPEC["labels"],
        preprocess=PRE,
        metrics={},
    )
    return path


def test_cli_predict_json_and_a_bad_image(model, checkpoint, tmp_path, capsys):
    ckpt = checkpoint
    good = tmp_path / "good.png"
    Image.fromarray(np.full((12, 12), 200, np.uint8)).save(good)
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"no picture here")
    code = main(
        ["predict", "--model", str(ckpt), "--top", "2", "--format", "json", str(good), str(bad)]
    )
    captured = capsys.readouterr()
    assert code != 0
    result = json.loads(captured.out)
    assert [r["image"] for r in result] == [str(good)]
    expected = predict(model, good, top=2)
    assert result[0]["predictions"] == [p.to_dict() for p in expected]
    errors = [line for line in captured.err.splitlines() if line.startswith("cnnviz: error:")]
    assert len(errors) == 1 and str(bad) in errors[0]


def test_cli_predict_text(checkpoint, tmp_path, capsys):
    ckpt = checkpoint
    good = tmp_path / "good.png"
    Image.fromarray(np.zeros((12, 12), np.uint8)).save(good)
    assert main(["predict", "--model", str(ckpt), "--top", "3", str(good)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == str(good) and len(lines) == 4


def test_default_model_reads_the_sample_digits():
    from cnnviz.core.models import load_model
    from cnnviz.core.resources import resource_path

    assert resource_path("models", "digits.pt").is_file()
    samples = sorted(resource_path("samples", "digits").glob("*.png"))
    assert len(samples) >= 10
    model = load_model("default")
    wrong = []
    for path in samples:
        truth = path.name.split("_")[1]  # digit_<label>_<kind>...png
        top = predict(model, path, top=1)[0]
        if top.label != truth:
            wrong.append((path.name, top.label))
    assert not wrong


def test_default_model_on_hand_drawn_digits():
    from cnnviz.core.models import load_model
    from cnnviz.core.resources import resource_path
    from cnnviz.core.training.digits import sketch_digit

    assert resource_path("models", "digits.pt").is_file()
    model = load_model("default")
    rng = np.random.default_rng(77)
    labels = [i % 10 for i in range(100)]
    hits = sum(
        predict(model, sketch_digit(d, rng, (96, 80)), top=1)[0].label == str(d) for d in labels
    )
    assert hits >= 90


def test_spatial_outputs_are_not_ranked_as_classes():
    conv_head = nn.Sequential(nn.Conv2d(1, 4, 12))  # N x 4 x 1 x 1: one score per class
    preds = predict(loaded(conv_head), torch.zeros(1, 1, 12, 12), top=4)
    assert len(preds) == 4
    segmenter = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1))  # N x 4 x 12 x 12
    with pytest.raises(CnnvizError, match="not one score per class"):
        predict(loaded(segmenter), torch.zeros(1, 1, 12, 12))


# ---------------------------------------------------------------------------------------------- every model


def _small_cnn() -> nn.Module:
    torch.manual_seed(3)
    return nn.Sequential(
        nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(), nn.Linear(400, 5)
    ).eval()


def test_an_exported_program_predicts_like_itself(tmp_path):
    from cnnviz.core.models import load_model

    path = tmp_path / "net.pt2"
    program = torch.export.export(_small_cnn(), (torch.randn(1, 1, 12, 12),))
    torch.export.save(program, str(path))
    loaded_model = load_model(path)
    x = torch.randn(1, 1, 12, 12)
    preds = predict(loaded_model, x, top=5)
    with torch.no_grad():
        truth = torch.softmax(program.module()(x), dim=1)[0]
    assert [p.index for p in preds] == torch.argsort(truth, descending=True).tolist()
    for p in preds:
        assert p.probability == pytest.approx(float(truth[p.index]), abs=1e-6)
    assert loaded_model.module.training is program.module().training  # flags restored untouched


def test_a_forward_that_fails_names_the_layer_and_the_shape(model):
    from cnnviz.core.analysis.capture import ForwardError

    # 13x13 reaches the Linear layer with 4*11*11 features instead of 4*10*10
    with pytest.raises(ForwardError) as caught:
        predict(model, torch.zeros(1, 1, 13, 13))
    text = str(caught.value)
    assert "layer '3' (Linear)" in text and "[1, 484]" in text
    assert "takes 1×12×12 inputs but this one is 1×13×13" in text
    assert "\n" not in text and isinstance(caught.value.__cause__, RuntimeError)


@pytest.mark.filterwarnings("ignore::FutureWarning")
def test_a_torchscript_mlp_on_a_picture_says_which_shape_it_got(tmp_path):
    from cnnviz.core.analysis.capture import ForwardError
    from cnnviz.core.models import load_model

    torch.manual_seed(4)
    mlp = nn.Sequential(nn.Linear(144, 16), nn.ReLU(), nn.Linear(16, 3))
    path = tmp_path / "mlp.pt"
    torch.jit.script(mlp).save(str(path))
    loaded_model = load_model(path, input_shape=(1, 12, 12))
    with pytest.raises(ForwardError) as caught:
        predict(loaded_model, torch.zeros(1, 1, 12, 12))
    text = str(caught.value)
    assert "compiled model" in text and "[1, 1, 12, 12]" in text and "\n" not in text


def test_a_checkpoint_whose_preprocessing_disagrees_with_its_input(model, tmp_path, capsys):
    ckpt = tmp_path / "tiny.pt"
    wrong = Preprocess(1, (16, 16), "resize", None, (0.5,), (0.25,))
    save_checkpoint(
        ckpt,
        spec=SPEC,
        state_dict=model.module.state_dict(),
        labels=SPEC["labels"],
        preprocess=wrong,
        metrics={},
    )
    good = tmp_path / "good.png"
    Image.fromarray(np.full((20, 20), 90, np.uint8)).save(good)
    assert main(["predict", "--model", str(ckpt), str(good)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and err.startswith("cnnviz: error:")
    assert "(Linear)" in err and "takes 1×12×12 inputs but this one is 1×16×16" in err


def test_cli_input_size_the_model_was_not_built_for(model, tmp_path, capsys):
    ckpt = tmp_path / "tiny.pt"
    save_checkpoint(
        ckpt, spec=SPEC, state_dict=model.module.state_dict(), labels=None, preprocess=PRE
    )
    good = tmp_path / "good.png"
    Image.fromarray(np.full((12, 12), 90, np.uint8)).save(good)
    assert main(["predict", "--model", str(ckpt), "--input-size", "1,14,14", str(good)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "built for 1×12×12 inputs, not 1×14×14" in err


@pytest.mark.parametrize(
    ("kwargs", "kind", "words"),
    [
        ({"top": "abc"}, TypeError, "whole number"),
        ({"top": 1.5}, TypeError, "whole number"),
        ({"top": None}, TypeError, "whole number"),
        ({"top": 0}, ValueError, "top=1 or more"),
        ({"image": None}, TypeError, "Cannot predict from None"),
        ({"image": 5}, TypeError, "Cannot predict from 5"),
        ({"image": torch.zeros(1, 1, 0, 12)}, ValueError, "no pixels"),
    ],
)
def test_bad_arguments_are_sentences(model, kwargs, kind, words):
    args = {"image": torch.zeros(1, 1, 12, 12), "top": 3, **kwargs}
    with pytest.raises(CnnvizError, match=words) as caught:
        predict(model, args["image"], top=args["top"])
    assert isinstance(caught.value, kind)


def test_a_bare_module_is_refused_with_the_way_to_load_it(model):
    with pytest.raises(CnnvizError, match=r"cnnviz\.load_model\(module\)") as caught:
        predict(model.module, torch.zeros(1, 1, 12, 12))  # type: ignore[arg-type]
    assert isinstance(caught.value, TypeError)
