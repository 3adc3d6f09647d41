"""Generated argument lists for every sub-command, run through ``cnnviz.cli.main`` in the capped worker.

Exit status 0, or 2 with one ``cnnviz: error:`` line (argparse's usage errors as argparse prints them); never
a traceback, a hang or a payload that runs.
"""

from __future__ import annotations

import itertools
import json
import os
import pickle
from collections.abc import Callable
from pathlib import Path

import fuzz_corpus as corpus
import pytest
from fuzz_harness import Worker, check_all, cli_problem
from hypothesis import given, settings
from hypothesis import strategies as st

FUZZ = settings(settings.get_profile("fuzz-worker"), max_examples=25, deadline=None)
_COUNTER = itertools.count()


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Named inputs the argument lists pick from, made once per module."""
    tmp = tmp_path_factory.mktemp("cli-files")
    marks = tmp / "markers"
    marks.mkdir()
    out: dict[str, str] = {}

    def write(name: str, data: bytes | str) -> None:
        path = tmp / name
        path.write_bytes(data.encode() if isinstance(data, str) else data)
        out[name] = str(path)

    write("digit.png", corpus.encode(corpus.noise_image("L", (28, 28), corpus.SEED), "PNG"))
    write("photo.jpg", corpus.encode(corpus.noise_image("RGB", (40, 30), corpus.SEED), "JPEG"))
    write("broken.png", corpus.encode(corpus.noise_image("RGB", (40, 30), 1), "PNG")[:60])
    write("bomb.png", corpus.png_header(50000, 50000))
    write(
        "spec.json",
        json.dumps(
            {
                "input_shape": [1, 12, 12],
                "labels": ["a", "b"],
                "layers": [
                    {"type": "Conv2d", "out_channels": 2, "kernel_size": 3},
                    {"type": "ReLU"},
                    {"type": "Flatten"},
                    {"type": "Linear", "out_features": 2},
                ],
            }
        ),
    )
    write("bad.json", "{not json")
    write(
        "huge-spec.json",
        json.dumps(
            {
                "input_shape": [1, 8, 8],
                "layers": [{"type": "Conv2d", "out_channels": 2**33, "kernel_size": 1}],
            }
        ),
    )
    write("payload.pt", pickle.dumps(corpus.Payload(marks / "cli.ran"), protocol=2))
    write("kernel.json", "[[0, -1, 0], [-1, 5, -1], [0, -1, 0]]")
    write("kernel-nan.json", "[[NaN, 1], [1, 1]]")
    write("kernel-empty.json", "[[]]")
    write("kernel-huge.json", json.dumps([[1] * 300] * 300))
    write("kernel-deep.json", "[" * 50000 + "]" * 50000)
    write("kernel-text.json", '[["a", "b"], ["c", "d"]]')
    fifo = tmp / "fifo"
    os.mkfifo(fifo)
    out["fifo"] = str(fifo)
    folder = tmp / "folder"
    folder.mkdir()
    out["folder"] = str(folder)
    out["missing"] = str(tmp / "missing.png")
    data = tmp / "dataset"
    for label in ("a", "b"):
        (data / label).mkdir(parents=True)
        for i in range(3):
            img = corpus.noise_image("L", (12, 12), corpus.SEED + i + (label == "b") * 10)
            img.save(data / label / f"{i}.png")
    out["dataset"] = str(data)
    out["tmp"] = str(tmp)
    out["markers"] = str(marks)
    return out


INTS = [
    "0",
    "1",
    "2",
    "-1",
    "3",
    "99999999999999999999",
    "x",
    "",
    "1.5",
    "nan",
    "1e309",
    "9" * 5000,
]
PAIRS = [
    "0,0",
    "1,2",
    "-1,0",
    "0,-1",
    "99999,0",
    "1",
    "1,2,3",
    "a,b",
    "",
    "0x1,1",
    "9" * 5000 + ",0",
]
SHAPES = ["1,28,28", "3,224,224", "1,1,1", "0,28,28", "1,100000,100000", "x", "1,28", "1x28x28"]


def pick(files: dict[str, str], *names: str) -> st.SearchStrategy[str]:
    return st.sampled_from([files.get(n, n) for n in names])


def model_options(files: dict[str, str]) -> dict[str, st.SearchStrategy[str]]:
    return {
        "--model": pick(
            files,
            "default",
            "default",
            "spec.json",
            "bad.json",
            "huge-spec.json",
            "payload.pt",
            "missing",
            "folder",
            "fifo",
            "nosuchmodel",
            "",
            "digit.png",
        ),
        "--weights": pick(files, "none", "none", "default", "payload.pt", "missing", "fifo", ""),
        "--input-size": st.sampled_from(SHAPES),
    }


def argv_for(command: str, files: dict[str, str], draw: st.DrawFn) -> list[str]:
    images = pick(
        files,
        "digit.png",
        "photo.jpg",
        "broken.png",
        "bomb.png",
        "fifo",
        "folder",
        "missing",
        "spec.json",
        "/dev/zero",
        "",
    )
    options: dict[str, st.SearchStrategy[str]] = {}
    flags: list[str] = []
    required: list[str] = []
    if command in ("summary", "rf", "predict", "export"):
        options.update(model_options(files))
        flags.append("--trust")
        if command != "predict":
            required.append("--model")
    if command == "summary":
        options["--format"] = st.sampled_from(["table", "csv", "markdown", "json", "xml"])
    if command == "rf":
        options.update(
            {
                "--layer": st.sampled_from(["0", "3", "12", "nope", "", "0@1", "16"]),
                "--unit": st.sampled_from(PAIRS),
                "--image": images,
                "--format": st.sampled_from(["text", "json"]),
            }
        )
        required += ["--layer", "--unit"]
    if command == "predict":
        options.update(
            {"--top": st.sampled_from(INTS), "--format": st.sampled_from(["text", "json"])}
        )
    if command == "export":
        out_dir = str(Path(files["tmp"]) / f"export-{next(_COUNTER)}")
        options.update(
            {
                "--image": images,
                "--layer": st.sampled_from(["0", "2", "nope", ""]),
                "--unit": st.sampled_from(PAIRS),
                "--out": st.sampled_from(
                    [
                        out_dir,
                        files["digit.png"],
                        files["fifo"],
                        files["missing"] + "/sub/dir",
                        "/proc/x",
                    ]
                ),
                "--cmap": st.sampled_from(["viridis", "gray", "nope"]),
                "--norm": st.sampled_from(["channel", "layer", "nope"]),
            }
        )
        flags += ["--all-layers", "--sort", "--svg", "--no-erf"]
        required += ["--image", "--out"]
    if command == "train":
        data = draw(
            st.sampled_from(["dataset", "synthetic-digits", "missing", "fifo", "folder", ""])
        )
        # real training only on the six-picture folder; other data sources with refused epoch counts
        epochs = ["1", "2", "0", "-1", "x", "1.5"] if data == "dataset" else ["0", "-1", "x", ""]
        options.update(
            {
                "--arch": pick(
                    files,
                    "default",
                    "spec.json",
                    "bad.json",
                    "payload.pt",
                    "huge-spec.json",
                    "missing",
                    "fifo",
                ),
                "--data": st.just(files.get(data, data)),
                "--epochs": st.sampled_from(epochs),
                "--out": st.sampled_from(
                    [
                        str(Path(files["tmp"]) / f"ckpt-{next(_COUNTER)}.pt"),
                        files["folder"],
                        files["fifo"],
                        files["missing"] + "/x.pt",
                    ]
                ),
                "--batch-size": st.sampled_from(["0", "-1", "1", "4", "99999999999999999999"]),
                "--lr": st.sampled_from(["0.01", "0", "-1", "nan", "inf", "x"]),
                "--val-split": st.sampled_from(["0", "0.5", "1", "-0.5", "1.5", "nan"]),
                "--seed": st.sampled_from(["0", "-1", "99999999999999999999", "x"]),
                "--format": st.sampled_from(["text", "json"]),
                "--device": st.sampled_from(["cpu", "auto", "cuda"]),
            }
        )
        required += ["--arch", "--data", "--epochs", "--out"]
    if command == "convolve":
        options.update(
            {
                "--image": images,
                "--kernel": pick(
                    files,
                    "sobel_x",
                    "blur",
                    "identity",
                    "nope",
                    "kernel.json",
                    "kernel-nan.json",
                    "kernel-empty.json",
                    "kernel-huge.json",
                    "kernel-deep.json",
                    "kernel-text.json",
                    "fifo",
                    "missing",
                ),
                "--stride": st.sampled_from(INTS + PAIRS),
                "--padding": st.sampled_from(INTS + PAIRS + ["same", "valid"]),
                "--dilation": st.sampled_from(INTS + PAIRS),
                "--out": st.sampled_from(
                    [
                        str(Path(files["tmp"]) / f"conv-{next(_COUNTER)}.png"),
                        files["folder"],
                        files["fifo"],
                        files["missing"] + "/x.png",
                        str(Path(files["tmp"]) / "o.unknownext"),
                    ]
                ),
                "--format": st.sampled_from(["text", "json"]),
            }
        )
        flags += ["--flip", "--gray", "--list-kernels"]
        required += ["--image", "--kernel"]
    chosen = [o for o in options if o in required or draw(st.integers(0, 2)) == 0]
    if draw(st.integers(0, 9)) == 0 and required:
        chosen.remove(draw(st.sampled_from(required)))  # a required option left out
    argv = [command]
    for option in chosen:
        argv += [option, draw(options[option])]
    argv += [f for f in flags if draw(st.integers(0, 3)) == 0]
    if command == "predict":
        argv += draw(st.lists(images, min_size=1, max_size=3))
    if draw(st.integers(0, 14)) == 0:
        argv.append(draw(st.sampled_from(["--bogus", "-", "--", "--help", "extra"])))
    return argv


@st.composite
def argvs(draw: st.DrawFn, command: str, files: dict[str, str]) -> list[str]:
    return argv_for(command, files, draw)


COMMANDS = ["summary", "rf", "predict", "export", "train", "convolve"]


@pytest.mark.parametrize("command", COMMANDS)
def test_cli_arguments(
    command: str, files: dict[str, str], worker: Callable[[str], Worker]
) -> None:
    w = worker("cli")
    marker = Path(files["markers"]) / "cli.ran"

    @FUZZ
    @given(data=st.data())
    def run(data: st.DataObject) -> None:
        argv = data.draw(argvs(command, files))
        outcome = w.run(
            f"cnnviz {' '.join(a[:80] for a in argv)}", {"kind": "cli", "argv": argv}, deadline=60
        )
        # predict prints one error line per picture it could not read
        images = len([a for a in argv[1:] if not a.startswith("-")]) if command == "predict" else 1
        problems = [cli_problem(outcome, max_error_lines=max(1, images))]
        if marker.exists() and "--trust" not in argv:
            marker.unlink()
            problems.append(f"{outcome.case}: PAYLOAD RAN without --trust")
        marker.unlink(missing_ok=True)
        check_all(problems, len(problems))

    run()
