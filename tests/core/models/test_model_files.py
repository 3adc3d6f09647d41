"""Model files that are not what they seem: non-regular files, damaged zips, weights for the bundled model."""

from __future__ import annotations

import os
import socket
import struct
import threading
import urllib.error
import warnings

import pytest
import torch
from torch import nn

from cnnviz.cli import main as cli_main
from cnnviz.core.errors import ModelLoadError
from cnnviz.core.models import load_model
from cnnviz.core.models.torchvision import _network_reason


def _load_within(path: str, seconds: float = 20.0) -> BaseException | None:
    """Load ``path`` in a thread; a hang fails the test instead of blocking the suite."""
    outcome: list[BaseException | None] = []

    def run() -> None:
        try:
            load_model(path)
            outcome.append(None)
        except BaseException as exc:  # noqa: BLE001 - handed to the test
            outcome.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(seconds)
    assert outcome, f"loading {path} did not return within {seconds} s"
    return outcome[0]


@pytest.fixture
def fifo(tmp_path):
    path = tmp_path / "model.pt"
    os.mkfifo(path)
    return path


def test_fifo_as_model_is_refused_at_once(fifo):
    exc = _load_within(str(fifo))
    assert isinstance(exc, ModelLoadError) and "FIFO" in str(exc)


def test_socket_and_device_as_model_are_refused(tmp_path):
    sock_path = tmp_path / "model.pt2"
    server = socket.socket(socket.AF_UNIX)
    server.bind(str(sock_path))
    try:
        exc = _load_within(str(sock_path))
        assert isinstance(exc, ModelLoadError) and "socket" in str(exc)
    finally:
        server.close()
    exc = _load_within("/dev/zero")
    assert isinstance(exc, ModelLoadError) and "device" in str(exc)


def test_symlink_loop_is_named(tmp_path, capsys):
    a, b = tmp_path / "a.pt", tmp_path / "b.pt"
    a.symlink_to(b)
    b.symlink_to(a)
    exc = _load_within(str(a))
    assert isinstance(exc, ModelLoadError) and "symlink loop" in str(exc)
    assert cli_main(["summary", "--model", str(a)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "symlink loop" in err[0]


def test_fifo_as_weights_is_refused(fifo):
    with pytest.raises(ModelLoadError, match="FIFO"):
        load_model("default", weights=str(fifo))


def _with_zip_version(data: bytes, version: int) -> bytes:
    out = bytearray(data)
    at = 0
    while (at := out.find(b"PK\x01\x02", at)) != -1:
        out[at + 6 : at + 8] = struct.pack("<H", version)
        at += 4
    return bytes(out)


@pytest.mark.parametrize("suffix", [".pt", ".pt2", ".pth"])
def test_zip_with_unknown_version_is_one_clean_error(tmp_path, suffix, capsys):
    plain = tmp_path / "plain.pt"
    torch.save(nn.Linear(2, 2).state_dict(), plain)
    path = tmp_path / f"damaged{suffix}"
    path.write_bytes(_with_zip_version(plain.read_bytes(), 99))
    with pytest.raises(ModelLoadError):
        load_model(str(path))
    assert cli_main(["summary", "--model", str(path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("cnnviz: error:")


def test_weights_file_for_the_bundled_model_is_loaded(tmp_path):
    bundled = load_model("default")
    state = {
        k: v + 1 if v.is_floating_point() else v for k, v in bundled.module.state_dict().items()
    }
    path = tmp_path / "mine.pt"
    torch.save(state, path)
    mine = load_model("default", weights=str(path))
    for key, value in mine.module.state_dict().items():
        assert torch.equal(value, state[key]), key
    assert mine.metadata["weights"] == str(path)


def test_weights_that_do_not_fit_the_bundled_model_are_refused(tmp_path):
    path = tmp_path / "other.pt"
    torch.save(nn.Linear(3, 3).state_dict(), path)
    with pytest.raises(ModelLoadError, match="do not fit"):
        load_model("default", weights=str(path))


def test_torchscript_load_prints_no_deprecation_warning(tmp_path):
    net = nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU()).eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        scripted = torch.jit.script(net)
    path = tmp_path / "net.torchscript"
    scripted.save(str(path))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        load_model(str(path), input_shape=(1, 8, 8))
    assert not [w for w in caught if issubclass(w.category, FutureWarning)]


def test_download_failures_are_said_in_words():
    lookup = urllib.error.URLError(socket.gaierror(-2, "Name or service not known"))
    assert "errno" not in _network_reason(lookup).lower()
    assert "looked up" in _network_reason(lookup)
    assert "timed out" in _network_reason(urllib.error.URLError(TimeoutError()))
    http = urllib.error.HTTPError("https://x", 404, "Not Found", {}, None)  # type: ignore[arg-type]
    assert "404" in _network_reason(http)
