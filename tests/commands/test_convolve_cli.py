"""``cnnviz convolve`` end to end: real picture files, results checked against F.conv2d computed here."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from cnnviz.cli import main

SOBEL_X = [[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]]


@pytest.fixture
def picture(tmp_path):
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, (13, 17, 3), dtype=np.uint8)
    path = tmp_path / "pic.png"
    Image.fromarray(pixels).save(path)
    return path, pixels


def conv_channels(pixels: np.ndarray, kernel, **kw) -> np.ndarray:
    """Per-channel F.conv2d in float32, the arithmetic of Conv2d layers (and of the command)."""
    x = torch.tensor(pixels, dtype=torch.float32)
    x = x[None, None] if x.ndim == 2 else x.permute(2, 0, 1)[None]
    c = x.shape[1]
    w = torch.tensor(np.asarray(kernel, dtype=np.float32))[None, None].repeat(c, 1, 1, 1)
    y = F.conv2d(x, w, groups=c, **kw)[0]
    out = y[0].numpy() if pixels.ndim == 2 else y.permute(1, 2, 0).numpy()
    return out.astype(np.float64)


def run_cli(capsys, *argv):
    code = main(["convolve", *map(str, argv)])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_identity_reproduces_the_picture(capsys, picture, tmp_path):
    path, pixels = picture
    out = tmp_path / "same.png"
    code, stdout, _ = run_cli(
        capsys, "--image", path, "--kernel", "identity", "--padding", "1", "--out", out
    )
    assert code == 0
    assert np.array_equal(np.asarray(Image.open(out)), pixels)
    assert "wrote" in stdout


def test_box_blur_equals_conv2d_and_formula_is_printed(capsys, picture, tmp_path):
    path, pixels = picture
    out = tmp_path / "blur.png"
    code, stdout, _ = run_cli(
        capsys, "--image", path, "--kernel", "box_blur", "--stride", "2", "--out", out
    )
    assert code == 0
    want = conv_channels(pixels, np.ones((3, 3)) / 9, stride=2)
    got = np.asarray(Image.open(out))
    assert got.shape == want.shape
    np.testing.assert_array_equal(got, np.rint(np.clip(want, 0, 255)).astype(np.uint8))
    ho, wo = want.shape[:2]
    assert f"H_out = floor((13 + 2*0 - 1*(3-1) - 1)/2) + 1 = {ho}" in stdout
    assert f"W_out = floor((17 + 2*0 - 1*(3-1) - 1)/2) + 1 = {wo}" in stdout
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_edge_kernel_uses_absolute_values_and_flip_negates(capsys, picture, tmp_path):
    path, pixels = picture
    plain, flipped = tmp_path / "a.png", tmp_path / "b.png"
    code, out1, _ = run_cli(
        capsys, "--image", path, "--kernel", "sobel_x", "--out", plain, "--format", "json"
    )
    assert code == 0
    code, out2, _ = run_cli(
        capsys,
        "--image",
        path,
        "--kernel",
        "sobel_x",
        "--flip",
        "--out",
        flipped,
        "--format",
        "json",
    )
    assert code == 0
    a, b = json.loads(out1), json.loads(out2)
    want = conv_channels(pixels, SOBEL_X)
    assert (
        a["scale"] == "abs"
        and a["operation"] == "cross-correlation"
        and b["operation"] == "convolution"
    )
    assert a["min"] == want.min() and a["max"] == want.max()
    assert b["min"] == -a["max"] and b["max"] == -a["min"]
    expected = np.rint(np.clip(np.abs(want), 0, 255)).astype(np.uint8)
    np.testing.assert_array_equal(np.asarray(Image.open(plain)), expected)
    np.testing.assert_array_equal(np.asarray(Image.open(flipped)), expected)  # |-x| == |x|


def test_json_report_and_padding_same(capsys, picture):
    path, pixels = picture
    code, stdout, stderr = run_cli(
        capsys,
        "--image",
        path,
        "--kernel",
        "gaussian_5x5",
        "--padding",
        "same",
        "--dilation",
        "2,1",
        "--format",
        "json",
    )
    assert code == 0
    report = json.loads(stdout)
    want = conv_channels(pixels, np.ones((5, 5)), padding=2, dilation=(2, 1))
    assert report["output_size"] == list(want.shape[:2])
    assert report["padding"] == [2, 2] and report["dilation"] == [2, 1]
    assert report["out"] is None and stderr == ""
    code, stdout, stderr = run_cli(capsys, "--image", path, "--kernel", "sharpen")
    assert code == 0 and "nothing written; add --out" in stderr and "H_out" in stdout
    assert report["mode"] == "RGB" and report["kernel"]["size"] == [5, 5]


def test_grey_picture_stays_one_channel(capsys, tmp_path):
    pixels = np.arange(64, dtype=np.uint8).reshape(8, 8) * 3
    path, out = tmp_path / "g.png", tmp_path / "o.png"
    Image.fromarray(pixels, mode="L").save(path)
    code, stdout, _ = run_cli(
        capsys, "--image", path, "--kernel", "laplacian", "--scale", "signed", "--out", out
    )
    assert code == 0
    lap = [[0, 1, 0], [1, -4, 1], [0, 1, 0]]
    want = conv_channels(pixels.astype(float), lap)
    got = Image.open(out)
    assert got.mode == "L"
    np.testing.assert_array_equal(
        np.asarray(got), np.rint(np.clip(0.5 + want / 510, 0, 1) * 255).astype(np.uint8)
    )


def test_kernel_from_json_file(capsys, picture, tmp_path):
    path, pixels = picture
    kfile = tmp_path / "k.json"
    kfile.write_text("[[1, 0], [0, -1]]")
    code, stdout, _ = run_cli(capsys, "--image", path, "--kernel", kfile, "--format", "json")
    assert code == 0
    report = json.loads(stdout)
    want = conv_channels(pixels, [[1, 0], [0, -1]])
    assert report["output_size"] == [12, 16] == list(want.shape[:2])
    assert report["scale"] == "abs" and report["max"] == want.max()


def test_list_kernels(capsys):
    code, stdout, _ = run_cli(capsys, "--list-kernels")
    assert code == 0
    for name in (
        "identity",
        "box_blur",
        "gaussian_3x3",
        "gaussian_5x5",
        "sharpen",
        "emboss",
        "sobel_x",
        "sobel_y",
    ):
        assert name in stdout


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (
            ["--kernel", "wobble"],
            "Unknown kernel 'wobble'; use one of the presets (identity, box_blur",
        ),
        (["--kernel", "sobel_x", "--stride", "x"], "stride 'x' is not a whole number"),
        (["--kernel", "sobel_x", "--stride", "0"], "stride must be at least 1"),
        (["--kernel", "gaussian_5x5", "--dilation", "4"], "spans 17 pixels"),
        (["--kernel", "sobel_x", "--out", "x.jpg"], "must end in .png"),
        (
            ["--kernel", "sobel_x", "--padding-mode", "reflect", "--padding", "20"],
            "Reflect padding",
        ),
        ([], "Missing --kernel"),
    ],
)
def test_user_errors_are_one_line(capsys, picture, extra, message):
    path, _ = picture
    code, stdout, stderr = run_cli(capsys, "--image", path, *extra)
    assert code == 2
    assert stderr.startswith("cnnviz: error: ") and stderr.count("\n") == 1
    assert message in stderr


def test_bad_kernel_file_and_missing_image(capsys, picture, tmp_path):
    path, _ = picture
    bad = tmp_path / "bad.json"
    bad.write_text("[[1, 2], [3]]")
    code, _, stderr = run_cli(capsys, "--image", path, "--kernel", bad)
    assert code == 2 and "all rows must have the same length" in stderr
    code, _, stderr = run_cli(capsys, "--image", tmp_path / "none.png", "--kernel", "identity")
    assert code == 2 and stderr.startswith("cnnviz: error: ")


def test_help(capsys):
    with pytest.raises(SystemExit) as info:
        main(["convolve", "--help"])
    assert info.value.code == 0
    assert "--flip" in capsys.readouterr().out
