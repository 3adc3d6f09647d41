"""Hostile model files through ``cnnviz.load_model``, ``cnnviz summary`` and ``cnnviz rf``.

Payload pickles write a marker file when unpickled; without ``trust=True`` the marker must never appear.
Positive controls (loading the same files with plain ``torch.load(weights_only=False)`` /
``torch.export.load`` afterwards) prove each payload is live, so a missing marker means something.
"""

from __future__ import annotations

import json
import pickle
import random
import shutil
from collections.abc import Callable
from pathlib import Path

import fuzz_corpus as corpus
import pytest
import torch
from fuzz_harness import Worker, api_problem, check_all, cli_problem

from cnnviz.core.resources import resource_path


@pytest.fixture(scope="module")
def pt2_bytes() -> bytes:
    return corpus.tiny_pt2()


def _markers(folder: Path) -> Callable[[str], Path]:
    folder.mkdir(exist_ok=True)
    return lambda name: folder / f"{name}.ran"


def _payload_files(tmp: Path, pt2: bytes) -> tuple[dict[str, Path], Path]:
    marks = tmp / "markers"
    marker = _markers(marks)
    files: dict[str, bytes] = {}
    files["raw pickle"] = pickle.dumps(corpus.Payload(marker("raw")), protocol=2)
    files["raw pickle protocol 5"] = pickle.dumps(corpus.Payload(marker("raw5")), protocol=5)
    files["torch.save payload"] = corpus.torch_save_bytes(corpus.Payload(marker("save")))
    files["torch.save legacy payload"] = corpus.torch_save_bytes(
        corpus.Payload(marker("legacy")), _use_new_zipfile_serialization=False
    )
    files["payload inside a state_dict"] = corpus.torch_save_bytes(
        {"state_dict": {"0.weight": torch.zeros(2)}, "extra": corpus.Payload(marker("nested"))}
    )
    digits = resource_path("models", "digits.pt").read_bytes()
    files["checkpoint with data.pkl replaced"] = corpus.rewrite_zip(
        digits, {"data.pkl": pickle.dumps(corpus.Payload(marker("ckpt")), protocol=2)}
    )
    ts = corpus.tiny_torchscript()
    files["torchscript data.pkl payload"] = corpus.rewrite_zip(
        ts, {"data.pkl": pickle.dumps(corpus.Payload(marker("ts-data")), protocol=2)}
    )
    files["torchscript constants.pkl payload"] = corpus.rewrite_zip(
        ts, {"constants.pkl": pickle.dumps(corpus.Payload(marker("ts-const")), protocol=2)}
    )
    files.update(corpus.pt2_payloads(pt2, marker))
    out: dict[str, Path] = {}
    for i, (name, data) in enumerate(files.items()):
        suffixes = [".pt"]
        if name.startswith("pt2"):
            suffixes = [".pt2", ".pt", ""]  # the same archive renamed
        elif name.startswith("raw"):
            suffixes = [".pt", ".pkl", ""]
        for suffix in suffixes:
            path = tmp / f"payload-{i}{suffix or '-nosuffix'}"
            if suffix == "":
                path = tmp / f"payload{i}"
            path.write_bytes(data)
            out[f"{name} as {path.name}"] = path
    return out, marks


def test_payloads_never_run(
    worker: Callable[[str], Worker], tmp_path: Path, pt2_bytes: bytes
) -> None:
    """No payload runs through load_model, summary --model, rf --model or --weights without trust."""
    files, marks = _payload_files(tmp_path, pt2_bytes)
    spec = str(resource_path("models", "digits_arch.json"))
    w = worker("models")
    problems: list[str | None] = []
    for name, path in files.items():
        p = str(path)
        jobs = {
            f"load_model({name})": {"kind": "api", "func": "load_model", "args": [p]},
            f"load_model({name}, weights=none)": {
                "kind": "api",
                "func": "load_model",
                "args": [p],
                "kwargs": {"weights": "none"},
            },
            f"load_model(spec, weights={name})": {
                "kind": "api",
                "func": "load_model",
                "args": [spec],
                "kwargs": {"weights": p},
            },
            f"cnnviz summary --model ({name})": {"kind": "cli", "argv": ["summary", "--model", p]},
            f"cnnviz rf --model ({name})": {
                "kind": "cli",
                "argv": ["rf", "--model", p, "--layer", "0", "--unit", "0,0"],
            },
            f"cnnviz summary --weights ({name})": {
                "kind": "cli",
                "argv": ["summary", "--model", spec, "--weights", p],
            },
        }
        for case, job in jobs.items():
            outcome = w.run(case, job)
            check = api_problem if job["kind"] == "api" else cli_problem
            problems.append(check(outcome))
            ran = sorted(m.name for m in marks.glob("*.ran"))
            if ran:
                problems.append(f"{case}: PAYLOAD RAN without trust (markers {ran})")
                for m in marks.glob("*.ran"):
                    m.unlink()
    check_all(problems, len(problems))


def test_payload_controls_are_live(
    worker: Callable[[str], Worker], tmp_path: Path, pt2_bytes: bytes
) -> None:
    """The payloads above do run when a loader unpickles fully: the negative test is not vacuous."""
    files, marks = _payload_files(tmp_path, pt2_bytes)
    w = worker("controls")
    for name, path in files.items():
        if "torchscript" in name:
            continue  # TorchScript's own unpickler never calls arbitrary globals
        func = "torch.export.load" if name.startswith("pt2") else "torch.load"
        kwargs = {} if func == "torch.export.load" else {"weights_only": False}
        w.run(
            f"control {name}", {"kind": "api", "func": func, "args": [str(path)], "kwargs": kwargs}
        )
    ran = {m.stem for m in marks.glob("*.ran")}
    expected = {
        "raw",
        "raw5",
        "save",
        "legacy",
        "nested",
        "ckpt",
        "pt2-sample",
        "pt2-weight",
        "pt2-constant",
    }
    assert expected <= ran, f"payloads that never ran even with full unpickling: {expected - ran}"
    # and cnnviz itself runs them only when trusted
    for m in marks.glob("*.ran"):
        m.unlink()
    saved = next(p for n, p in files.items() if n.startswith("torch.save payload"))
    w.run(
        "trusted",
        {"kind": "api", "func": "load_model", "args": [str(saved)], "kwargs": {"trust": True}},
    )
    assert (marks / "save.ran").exists()


def _damaged_files(tmp: Path, pt2: bytes) -> dict[str, Path]:
    rng = random.Random(corpus.SEED)
    digits = resource_path("models", "digits.pt").read_bytes()
    ts = corpus.tiny_torchscript()
    files: dict[str, tuple[str, bytes]] = {}
    for label, data, suffix in (
        ("checkpoint", digits, ".pt"),
        ("torchscript", ts, ".pt"),
        ("pt2", pt2, ".pt2"),
    ):
        n = len(data)
        for cut in sorted({0, 4, 100, n // 2, n - 22, n - 1}):
            files[f"{label} cut at {cut}/{n}"] = (suffix, data[:cut])
        for k in range(3):
            buf = bytearray(data)
            for _ in range(rng.choice((1, 8, 64))):
                buf[rng.randrange(n)] ^= 1 << rng.randrange(8)
            files[f"{label} byte flips #{k}"] = (suffix, bytes(buf))
    for version in (b"999999", b"-1", b"abc", b"", b"9" * 40):
        files[f"checkpoint version record {version[:8]!r}"] = (
            ".pt",
            corpus.rewrite_zip(digits, {".format_version": version, "/version": version}),
        )
    files["checkpoint without data.pkl"] = (".pt", corpus.rewrite_zip(digits, {"data.pkl": None}))
    files["checkpoint without storages"] = (".pt", corpus.rewrite_zip(digits, {"data/0": None}))
    files["pt2 archive_format garbage"] = (
        ".pt2",
        corpus.rewrite_zip(pt2, {"archive_format": b"zz"}),
    )
    files["pt2 model.json garbage"] = (
        ".pt2",
        corpus.rewrite_zip(pt2, {"models/model.json": b"{not json"}),
    )
    files["pt2 model.json nested 100000 deep"] = (
        ".pt2",
        corpus.rewrite_zip(pt2, {"models/model.json": b"[" * 100000 + b"]" * 100000}),
    )
    files["pt2 weights config garbage"] = (
        ".pt2",
        corpus.rewrite_zip(pt2, {"_weights_config.json": b'{"config": 5}'}),
    )
    files["torchscript without code"] = (".pt", corpus.rewrite_zip(ts, {"code/__torch__.py": None}))
    files["zip of text"] = (".pt", corpus._zip_bytes({"a/data.pkl": b"hello"}))
    files["text named .pt"] = (".pt", b"not a model\n")
    files["text named .pt2"] = (".pt2", b"not a model\n")
    files["protocol-0 text pickle"] = (".pt", b"cos\nsystem\n(S'true'\ntR.")
    out = {}
    for i, (name, (suffix, data)) in enumerate(files.items()):
        path = tmp / f"damaged-{i}{suffix}"
        path.write_bytes(data)
        out[name] = path
    return out


def _state_dict_files(tmp: Path) -> dict[str, Path]:
    from cnnviz.core.models import load_model

    good = load_model("default").module.state_dict()
    first = next(iter(good))
    variants: dict[str, object] = {
        "wrong keys": {f"x{k}": v for k, v in good.items()},
        "wrong shapes": {k: torch.zeros(tuple(s + 1 for s in v.shape)) for k, v in good.items()},
        "int64 tensors": {k: v.to(torch.int64) for k, v in good.items()},
        "bool tensors": {k: v.bool() for k, v in good.items()},
        "complex tensors": {k: v.to(torch.complex64) for k, v in good.items()},
        "float16 tensors": {k: v.half() for k, v in good.items()},
        "nan weights": {
            k: torch.full_like(v, float("nan")) if v.is_floating_point() else v
            for k, v in good.items()
        },
        "scalar tensors": {k: torch.tensor(1.0) for k in good},
        "another model's tensors": {
            "conv1.weight": torch.zeros(64, 3, 7, 7),
            "fc.bias": torch.zeros(9),
        },
        "empty dict": {},
        "non-tensor values": {k: 1.5 for k in good},
        "list of tensors": list(good.values()),
        "one tensor": good[first],
        "nested state_dict": {"state_dict": {"state_dict": dict(good)}},
        "module prefix and wrong shapes": {f"module.{k}": torch.zeros(3) for k in good},
    }
    out = {}
    for i, (name, obj) in enumerate(variants.items()):
        path = tmp / f"state-{i}.pt"
        torch.save(obj, path)
        out[name] = path
    return out


NOT_SPECS = {
    "list": "[]",
    "null": "null",
    "number": "42",
    "string": '"layers"',
    "empty object": "{}",
    "invalid JSON": '{"input_shape": [1, 2, 3], "layers": [',
    "BOM": "\ufeff" + json.dumps({"input_shape": [1, 8, 8], "layers": []}),
    "nested 100000 deep": "[" * 100000 + "]" * 100000,
    "object nested 50000 deep": '{"a":' * 50000 + "1" + "}" * 50000,
    "5000-digit input_shape": '{"input_shape": [1, ' + "9" * 5000 + ', 3], "layers": []}',
    "1e999": '{"input_shape": [1e999, 8, 8], "layers": []}',
    "NaN": '{"input_shape": [NaN, 8, 8], "layers": []}',
    "huge layer list": json.dumps({"input_shape": [1, 8, 8], "layers": [{"type": "ReLU"}] * 3000}),
    "wide conv": json.dumps(
        {
            "input_shape": [3, 8, 8],
            "layers": [{"type": "Conv2d", "out_channels": 2**40, "kernel_size": 1}],
        }
    ),
    "giant input": json.dumps({"input_shape": [3, 10**6, 10**6], "layers": [{"type": "ReLU"}]}),
    "giant linear": json.dumps(
        {
            "input_shape": [1, 4, 4],
            "layers": [{"type": "Flatten"}, {"type": "Linear", "out_features": 10**10}],
        }
    ),
}


def test_damaged_and_wrong_files(
    worker: Callable[[str], Worker], tmp_path: Path, pt2_bytes: bytes
) -> None:
    """Truncated, corrupted and mismatched model files: a model or one clear error, in bounded memory."""
    w = worker("models")
    spec = str(resource_path("models", "digits_arch.json"))
    problems: list[str | None] = []
    for name, path in _damaged_files(tmp_path, pt2_bytes).items():
        p = str(path)
        problems.append(
            api_problem(
                w.run(f"load_model({name})", {"kind": "api", "func": "load_model", "args": [p]})
            )
        )
        problems.append(
            cli_problem(
                w.run(
                    f"cnnviz summary --model ({name})",
                    {"kind": "cli", "argv": ["summary", "--model", p]},
                )
            )
        )
    for name, path in _state_dict_files(tmp_path).items():
        p = str(path)
        for model in (spec,) if name != "wrong shapes" else (spec, "default"):
            outcome = w.run(
                f"load_model({Path(model).name}, weights={name})",
                {"kind": "api", "func": "load_model", "args": [model], "kwargs": {"weights": p}},
            )
            problems.append(api_problem(outcome))
        problems.append(
            cli_problem(
                w.run(
                    f"cnnviz summary --model spec --weights ({name})",
                    {"kind": "cli", "argv": ["summary", "--model", spec, "--weights", p]},
                )
            )
        )
    resnet_weights = tmp_path / "state-1.pt"
    problems.append(
        api_problem(
            w.run(
                "load_model(resnet18, weights=wrong shapes)",
                {
                    "kind": "api",
                    "func": "load_model",
                    "args": ["resnet18"],
                    "kwargs": {"weights": str(resnet_weights)},
                },
            )
        )
    )
    for name, text in NOT_SPECS.items():
        path = tmp_path / f"spec-{len(problems)}.json"
        path.write_text(text, encoding="utf-8")
        p = str(path)
        problems.append(
            api_problem(
                w.run(
                    f"load_model(spec: {name})", {"kind": "api", "func": "load_model", "args": [p]}
                )
            )
        )
        problems.append(
            cli_problem(
                w.run(
                    f"cnnviz summary --model (spec: {name})",
                    {"kind": "cli", "argv": ["summary", "--model", p]},
                )
            )
        )
    latin = tmp_path / "latin1.json"
    latin.write_bytes('{"name": "caf\xe9"}'.encode("latin-1"))
    problems.append(
        api_problem(
            w.run(
                "load_model(latin-1 spec)",
                {"kind": "api", "func": "load_model", "args": [str(latin)]},
            )
        )
    )
    check_all(problems, len(problems))


def test_copy_of_default_still_loads(tmp_path: Path) -> None:
    """The corpus's base file is a working checkpoint (so damage, not the base, explains failures)."""
    from cnnviz.core.models import load_model

    copy = tmp_path / "digits-copy.pt"
    shutil.copy(resource_path("models", "digits.pt"), copy)
    assert load_model(str(copy)).source == "checkpoint"
