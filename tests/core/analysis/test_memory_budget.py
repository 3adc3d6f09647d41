"""The memory budget: sizes that cannot fit are refused with one sentence, before anything is allocated.

Truth is computed here: output shapes from real forward passes or the convolution formula, parameter bytes from
``numel()``, and the refusals are run in a child process whose address space is capped at 4 GiB, so a case that
allocated what it asks for could not exit cleanly.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import torchvision
from PIL import Image
from torch import nn

from cnnviz.cli import main
from cnnviz.core import budget, lab
from cnnviz.core.analysis import forward_budget
from cnnviz.core.analysis.capture import capture
from cnnviz.core.analysis.summary import summarize
from cnnviz.core.budget import format_bytes, parse_size
from cnnviz.core.errors import CnnvizError, MemoryBudgetError, SpecError
from cnnviz.core.models.spec import build_model, validate_spec
from cnnviz.core.training.datasets import synthetic_digits
from cnnviz.core.training.digits import generate_digits


@pytest.fixture(autouse=True)
def _default_budget(monkeypatch):
    """Every test starts from the documented default; a --memory-budget given in one does not leak out."""
    monkeypatch.delenv(budget.ENV_VAR, raising=False)
    budget.set_budget(None)
    yield
    budget.set_budget(None)


def run_cli(capsys, *argv: object) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    out = capsys.readouterr()
    return code, out.out, out.err


def assert_one_line_error(err: str, *needles: str) -> None:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("cnnviz: error: "), err
    assert "Traceback" not in err and "alloc_cpu" not in err
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])


def write_spec(path, input_shape, layers):
    path.write_text(json.dumps({"input_shape": list(input_shape), "layers": layers}))
    return path


# ------------------------------------------------------------------------------------------------------------
# Sizes and the budget in effect


def test_parse_size_units():
    assert parse_size("16GiB") == 16 * 2**30
    assert parse_size("16GB") == 16 * 10**9
    assert parse_size("512M") == 512 * 2**20
    assert parse_size("1.5 KiB") == 1536
    assert parse_size("2e10") == 2 * 10**10
    assert parse_size(4096) == 4096
    for unlimited in ("none", "None", "unlimited", "0", 0):
        assert parse_size(unlimited) is None
    for bad in ("lots", "16 parsecs", "-1GB", "GB", "nan"):
        with pytest.raises(CnnvizError) as info:
            parse_size(bad)
        assert isinstance(info.value, ValueError)


def test_environment_and_flag(monkeypatch):
    assert budget.memory_budget() == budget.DEFAULT_BUDGET == 8 * 2**30
    monkeypatch.setenv(budget.ENV_VAR, "2GiB")
    assert budget.memory_budget() == 2 * 2**30
    budget.set_budget("none")  # the command-line flag wins over the environment
    assert budget.memory_budget() is None
    budget.set_budget(None)
    monkeypatch.setenv(budget.ENV_VAR, "plenty")
    with pytest.raises(CnnvizError, match=budget.ENV_VAR):
        budget.memory_budget()


def test_format_bytes():
    assert format_bytes(512) == "512 bytes"
    assert format_bytes(1536) == "1.5 KiB"
    assert format_bytes(8 * 2**30) == "8 GiB"
    assert format_bytes(3 * 2**40) == "3 TiB"


def test_bad_flag_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as info:
        main(["summary", "--model", "resnet18", "--weights", "none", "--memory-budget", "lots"])
    assert info.value.code == 2
    assert "not a memory size" in capsys.readouterr().err


# ------------------------------------------------------------------------------------------------------------
# Models: the table, a capture, a prediction


def _real_outputs(model: nn.Module, x: torch.Tensor) -> dict[str, torch.Tensor]:
    """Every leaf module's output from a real forward pass (the truth for shapes)."""
    outputs: dict[str, torch.Tensor] = {}
    handles = [
        m.register_forward_hook(lambda _m, _i, out, name=name: outputs.setdefault(name, out))
        for name, m in model.named_modules()
        if name and not list(m.children())
    ]
    try:
        with torch.no_grad():
            model.eval()(x)
    finally:
        for h in handles:
            h.remove()
    return outputs


def test_low_budget_refuses_resnet18_at_its_first_layer(monkeypatch):
    model = torchvision.models.resnet18(weights=None).eval()
    outputs = _real_outputs(model, torch.zeros(1, 3, 224, 224))
    conv1 = outputs["conv1"]
    params = sum(t.numel() * t.element_size() for t in [*model.parameters(), *model.buffers()])
    input_bytes = 3 * 224 * 224 * 4
    conv1_bytes = conv1.numel() * 4
    # room for the parameters, the input and half of conv1's output: conv1 is where it goes over
    monkeypatch.setenv(budget.ENV_VAR, str(params + input_bytes + conv1_bytes // 2))
    for call in (
        lambda: summarize(model, (3, 224, 224)),
        lambda: capture(model, torch.zeros(1, 3, 224, 224)),
    ):
        with pytest.raises(MemoryBudgetError) as info:
            call()
        message = str(info.value)
        shape = "×".join(str(s) for s in conv1.shape)
        assert message.startswith("layer 'conv1' (Conv2d) would bring the forward pass to"), message
        assert f"its {shape} output {format_bytes(conv1_bytes)}" in message
        assert "memory budget" in message and "\n" not in message
    # a budget just large enough for everything a full capture holds lets it run
    with budget.budget_override(None):
        kept = capture(model, torch.zeros(1, 3, 224, 224))
    storages = {v.untyped_storage().data_ptr(): v.untyped_storage().nbytes() for v in kept.values()}
    held = params + sum(storages.values())  # the input is among them (the capture's "input" layer)
    monkeypatch.setenv(budget.ENV_VAR, str(held + input_bytes))
    assert set(capture(model, torch.zeros(1, 3, 224, 224))) == set(kept)


def test_default_budget_refuses_a_huge_input_naming_a_layer():
    model = torchvision.models.resnet18(weights=None)
    with pytest.raises(MemoryBudgetError) as info:
        summarize(model, (3, 6000, 6000))
    assert "layer '" in str(info.value) and "8 GiB memory budget" in str(info.value)


def _upsampler(scale: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(1, 64, 3), nn.Upsample(scale_factor=scale))


def test_capture_refuses_a_huge_upsample_before_running():
    model = _upsampler(1000)
    x = torch.zeros(1, 1, 28, 28)
    conv_out = model[0](x)  # truth: the real convolution's output, then the scale
    shape = (1, conv_out.shape[1], conv_out.shape[2] * 1000, conv_out.shape[3] * 1000)
    with pytest.raises(MemoryBudgetError) as info:
        capture(model, x)
    message = str(info.value)
    assert "layer '1' (Upsample)" in message
    assert "×".join(map(str, shape)) in message
    assert format_bytes(4 * int(np.prod(shape))) in message


def test_raised_budget_lets_a_fitting_case_through(monkeypatch):
    model = _upsampler(8)
    x = torch.rand(1, 1, 64, 64)
    with torch.no_grad():
        truth = model(x)
    monkeypatch.setenv(budget.ENV_VAR, "4MiB")
    with pytest.raises(MemoryBudgetError, match="layer '1' \\(Upsample\\)"):
        capture(model, x)
    monkeypatch.setenv(budget.ENV_VAR, str(4 * truth.numel() * 4))
    result = capture(model, x)
    assert torch.equal(result["1"], truth)
    with budget.budget_override(None):  # and no limit at all
        assert torch.equal(capture(model, x)["1"], truth)


def test_cli_summary_and_predict(tmp_path, capsys):
    code, out, err = run_cli(
        capsys, "summary", "--model", "resnet18", "--weights", "none", "--input-size", "3,6000,6000"
    )
    assert code == 2 and out == ""
    assert_one_line_error(err, "layer '", "8 GiB memory budget", "--memory-budget")

    spec = write_spec(
        tmp_path / "up.json",
        (1, 28, 28),
        [
            {"type": "Conv2d", "out_channels": 64, "kernel_size": 3},
            {"type": "Upsample", "scale_factor": 10},
        ],
    )
    picture = tmp_path / "digit.png"
    Image.fromarray(np.zeros((28, 28), dtype=np.uint8)).save(picture)
    code, out, err = run_cli(
        capsys, "predict", "--model", spec, "--input-size", "1,2000,2000", picture
    )
    side = (2000 - 3 + 1) * 10
    assert code == 2
    assert_one_line_error(err, "layer '1' (Upsample)", f"1×64×{side}×{side}")

    code, out, err = run_cli(
        capsys, "summary", "--model", "resnet18", "--weights", "none", "--memory-budget", "1MB"
    )
    assert code == 2
    assert_one_line_error(err, "parameters", "977 KiB memory budget")  # 10**6 bytes


# ------------------------------------------------------------------------------------------------------------
# Specs: refused from the hyperparameters, before torch allocates a weight


def test_spec_conv_with_ten_million_channels(tmp_path, capsys):
    spec = {
        "input_shape": [3, 32, 32],
        "layers": [{"type": "Conv2d", "out_channels": 10**7, "kernel_size": 3}],
    }
    report = validate_spec(spec)
    assert not report.ok
    side = 32 - 3 + 1
    assert f"1×{10**7}×{side}×{side}" in report.message and "memory budget" in report.message
    with pytest.raises(MemoryBudgetError) as info:
        build_model(spec)
    assert isinstance(info.value, SpecError) and info.value.index == 0

    heavy = {  # parameters dominate: 512 * 10**7 weights on a 1×1 map
        "input_shape": [512, 1, 1],
        "layers": [{"type": "Conv2d", "out_channels": 10**7, "kernel_size": 1, "bias": False}],
    }
    with pytest.raises(MemoryBudgetError) as info:
        build_model(heavy)
    assert f"{512 * 10**7:,} parameters would take {format_bytes(512 * 10**7 * 4)}" in str(
        info.value
    )

    path = tmp_path / "wide.json"
    path.write_text(json.dumps(spec))
    code, _out, err = run_cli(capsys, "summary", "--model", path)
    assert code == 2
    assert_one_line_error(err, "layer 0 (Conv2d)", "memory budget")


def test_spec_upsample_by_ten_thousand(tmp_path, capsys):
    layers = [
        {"type": "Conv2d", "out_channels": 64, "kernel_size": 3},
        {"type": "Upsample", "scale_factor": 10000},
    ]
    path = write_spec(tmp_path / "up.json", (3, 28, 28), layers)
    code, _out, err = run_cli(capsys, "summary", "--model", path)
    side = (28 - 3 + 1) * 10000
    assert code == 2
    assert_one_line_error(err, "layer 1 (Upsample)", f"1×64×{side}×{side}")
    # with the budget lifted, the table (computed on meta tensors) is shown
    code, out, _err = run_cli(capsys, "summary", "--model", path, "--memory-budget", "none")
    assert code == 0 and f"64×{side}×{side}" in out


def test_spec_within_budget_is_unchanged():
    spec = {
        "input_shape": [1, 28, 28],
        "layers": [{"type": "Conv2d", "out_channels": 8, "kernel_size": 3}],
    }
    model = build_model(spec)
    assert sum(p.numel() for p in model.parameters()) == 8 * 9 + 8


# ------------------------------------------------------------------------------------------------------------
# The convolution lab


def test_convolve_padding_refused_from_the_output_size(tmp_path, capsys):
    image = np.zeros((20, 30), dtype=np.float32)
    with pytest.raises(MemoryBudgetError, match="padding 100000"):
        lab.convolve(image, np.ones((3, 3)), padding=100000, precision="float32")
    with pytest.raises(MemoryBudgetError):
        lab.pad_image(image, 100000)
    picture = tmp_path / "pic.png"
    Image.fromarray(np.zeros((20, 30, 3), dtype=np.uint8)).save(picture)
    code, _out, err = run_cli(
        capsys, "convolve", "--image", picture, "--kernel", "blur", "--padding", "100000"
    )
    out_h, out_w = 20 + 2 * 100000 - 2, 30 + 2 * 100000 - 2
    assert code == 2
    assert_one_line_error(err, f"{out_w}×{out_h} output", "memory budget")


def test_circular_padding_larger_than_the_picture(tmp_path, capsys):
    rng = np.random.default_rng(0)
    image = rng.random((5, 7))
    with pytest.raises(CnnvizError, match="Circular padding") as info:
        lab.convolve(image, np.ones((3, 3)), padding=6, padding_mode="circular")
    assert "wrapping" not in str(info.value)  # torch's own words
    # padding equal to the size is what torch allows: the result matches F.pad + F.conv2d done here
    got = lab.convolve(image, np.ones((3, 3)), padding=5, padding_mode="circular")
    x = F.pad(torch.tensor(image)[None, None], (5, 5, 5, 5), mode="circular")
    want = F.conv2d(x, torch.ones(1, 1, 3, 3, dtype=torch.float64))[0, 0].numpy()
    np.testing.assert_allclose(got, want)

    picture = tmp_path / "pic.png"
    Image.fromarray(np.zeros((20, 30, 3), dtype=np.uint8)).save(picture)
    code, _out, err = run_cli(
        capsys, "convolve", "--image", picture, "--kernel", "sobel_x", "--padding", "40",
        "--padding-mode", "circular",
    )  # fmt: skip
    assert code == 2
    assert_one_line_error(err, "Circular padding", "20 rows, 30 columns")


# ------------------------------------------------------------------------------------------------------------
# Synthetic digits


def test_synthetic_digits_refused_from_the_size(tmp_path, capsys):
    with pytest.raises(MemoryBudgetError, match="4000×4000"):
        synthetic_digits((1, 4000, 4000))
    with pytest.raises(MemoryBudgetError, match="4000×4000"):
        generate_digits(10, size=(4000, 4000))
    images, _labels = generate_digits(3, size=(28, 28))  # the usual size still works
    assert tuple(images.shape) == (3, 1, 28, 28)
    spec = write_spec(
        tmp_path / "big.json",
        (1, 4000, 4000),
        [
            {"type": "AdaptiveAvgPool2d", "output_size": 1},
            {"type": "Flatten"},
            {"type": "Linear", "out_features": 10},
        ],
    )
    code, out, err = run_cli(
        capsys, "train", "--arch", spec, "--data", "synthetic-digits", "--epochs", "1",
        "--out", tmp_path / "m.pt", "--format", "json",
    )  # fmt: skip
    assert code == 2 and out == ""
    assert_one_line_error(err, "synthetic digits of 4000×4000", "memory budget")
    assert not (tmp_path / "m.pt").exists()


# ------------------------------------------------------------------------------------------------------------
# Refused without allocating: the worst cases in a process capped at 4 GiB of address space

_CAPPED = textwrap.dedent(
    """
    import resource, sys
    resource.setrlimit(resource.RLIMIT_AS, (4 << 30, 4 << 30))
    from cnnviz.cli import main
    code = main(sys.argv[1:])
    # VmHWM is this process's own peak; ru_maxrss would carry the forking parent's peak over exec
    peak = next(l for l in open("/proc/self/status") if l.startswith("VmHWM:")).split()[1]
    sys.stdout.write(f"maxrss_kb={peak}\\n")
    raise SystemExit(code)
    """
)


def _capped_run(*argv: object) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    env.pop(budget.ENV_VAR, None)
    # fewer threads and malloc arenas: each reserves address space that the cap would count
    env.update(OMP_NUM_THREADS="1", MALLOC_ARENA_MAX="2")
    return subprocess.run(
        [sys.executable, "-c", _CAPPED, *map(str, argv)],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )


@pytest.mark.slow
def test_worst_cases_exit_cleanly_under_a_4_gib_cap(tmp_path):
    wide = write_spec(
        tmp_path / "wide.json",
        (3, 32, 32),
        [{"type": "Conv2d", "out_channels": 10**7, "kernel_size": 3}],
    )
    up = write_spec(
        tmp_path / "up.json",
        (3, 28, 28),
        [
            {"type": "Conv2d", "out_channels": 64, "kernel_size": 3},
            {"type": "Upsample", "scale_factor": 10000},
        ],
    )
    big = write_spec(
        tmp_path / "big.json",
        (1, 4000, 4000),
        [
            {"type": "AdaptiveAvgPool2d", "output_size": 1},
            {"type": "Flatten"},
            {"type": "Linear", "out_features": 10},
        ],
    )
    picture = tmp_path / "pic.png"
    Image.fromarray(np.zeros((20, 30, 3), dtype=np.uint8)).save(picture)
    cases = [
        ("summary", "--model", "resnet18", "--weights", "none", "--input-size", "3,6000,6000"),
        ("summary", "--model", wide),
        ("summary", "--model", up),
        ("export", "--model", up, "--image", picture, "--all-layers", "--out", tmp_path / "out"),
        ("convolve", "--image", picture, "--kernel", "blur", "--padding", "100000"),
        ("train", "--arch", big, "--data", "synthetic-digits", "--epochs", "1", "--out", tmp_path / "m.pt",
         "--format", "json"),
    ]  # fmt: skip
    for argv in cases:
        done = _capped_run(*argv)
        assert done.returncode == 2, (argv, done.stderr[-2000:])
        assert_one_line_error(done.stderr, "memory budget")
        rss = int(done.stdout.rsplit("maxrss_kb=", 1)[1])
        assert rss < 2 * 2**20, (argv, rss)  # KiB: well under 2 GiB, most of it torch itself


# ------------------------------------------------------------------------------------------------------------
# The default admits every torchvision classifier


def _meta_model(name: str) -> nn.Module:
    """A torchvision classifier with its parameters on the meta device (nothing allocated)."""
    from torch.nn.modules import module as torch_module

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            with torch.device("meta"):
                return torchvision.models.get_model(name, weights=None)
        except NotImplementedError:
            pass  # RegNets compute their widths with tensors while building: move each weight instead

        def param(_m, _name, p):
            return nn.Parameter(torch.empty_like(p, device="meta"), requires_grad=p.requires_grad)

        def buf(_m, _name, b):
            return None if b is None else torch.empty_like(b, device="meta")

        hooks = [
            torch_module.register_module_parameter_registration_hook(param),
            torch_module.register_module_buffer_registration_hook(buf),
        ]
        try:
            return torchvision.models.get_model(name, weights=None)
        finally:
            for h in hooks:
                h.remove()


@pytest.mark.slow
def test_default_budget_admits_every_torchvision_classifier():
    names = torchvision.models.list_models(module=torchvision.models)
    assert len(names) >= 80
    peaks = {}
    for name in names:
        model = _meta_model(name)
        size = 299 if name == "inception_v3" else 224
        estimate = forward_budget.estimate_forward(model, (3, size, size))
        assert estimate.complete, name
        truth = sum(p.numel() * p.element_size() for p in model.parameters())
        assert estimate.params >= truth, name
        peaks[name] = estimate.peak
        forward_budget.check_forward(model, (3, size, size))  # does not raise
    worst = max(peaks, key=peaks.__getitem__)
    # comfortably inside: the heaviest full capture needs less than half the default
    assert peaks[worst] < budget.DEFAULT_BUDGET / 2, (worst, format_bytes(peaks[worst]))
