"""A torch.export archive whose inner pickles run code is refused unless trusted: API, CLI and .pt renames.

Each hostile archive is first shown to run its payload through plain ``torch.export.load``, so the refusal
is proven against a file that really is dangerous.
"""

from __future__ import annotations

import shutil
import zipfile
from pathlib import Path

import pytest
import torch
from hostile import VARIANTS, hostile_archive, rewrite_archive, tiny_program

from cnnviz.cli import main as cli_main
from cnnviz.core.errors import ModelLoadError, UntrustedFileError
from cnnviz.core.models import load_model


@pytest.fixture(scope="module")
def program(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("program") / "ok.pt2"
    tiny_program(path)
    return path


@pytest.fixture(params=sorted(VARIANTS))
def hostile(request, program, tmp_path) -> tuple[Path, Path]:
    """(archive, marker): an archive whose payload creates ``marker``."""
    marker = tmp_path / "marker"
    return hostile_archive(request.param, program, tmp_path / "evil.pt2", marker), marker


@pytest.mark.parametrize("suffix", [".pt2", ".pt", ""])
def test_api_refuses_hostile_archive_without_trust(hostile, suffix):
    path, marker = hostile
    if suffix != ".pt2":
        path = Path(shutil.copy(path, path.with_name("renamed" + suffix)))
    with pytest.raises(UntrustedFileError, match="arbitrary code"):
        load_model(str(path))
    assert not marker.exists()


@pytest.mark.parametrize("command", ["summary", "rf", "predict"])
def test_cli_refuses_hostile_archive_without_trust(hostile, command, capsys, tmp_path):
    path, marker = hostile
    argv = [command, "--model", str(path)]
    if command == "rf":
        argv += ["--layer", "0", "--unit", "0,0"]
    if command == "predict":
        picture = tmp_path / "p.png"
        from PIL import Image

        Image.new("L", (8, 8), 128).save(picture)
        argv += [str(picture)]
    assert cli_main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--trust" in err[0] and "Traceback" not in err[0]
    assert not marker.exists()


def test_trust_lets_the_archive_be_loaded_as_torch_would(hostile):
    path, marker = hostile
    try:
        load_model(str(path), trust=True)
    except ModelLoadError:
        pass  # the payload replaced real data; the point is that trust hands the file to torch
    assert marker.exists()


def test_native_code_in_an_archive_is_refused(program, tmp_path):
    path = tmp_path / "aoti.pt2"
    rewrite_archive(
        program, path, lambda rel, b: None, {"data/aotinductor/model/model.so": b"\x7fELF"}
    )
    with pytest.raises(UntrustedFileError, match="native code"):
        load_model(str(path))


def test_plain_archive_loads_without_trust_and_matches_torch(program):
    loaded = load_model(str(program))
    reference = torch.export.load(str(program)).module()
    x = torch.randn(1, 1, 8, 8)
    assert loaded.source == "export" and loaded.input_shape == (1, 8, 8)
    assert torch.equal(loaded.module(x), reference(x))


@pytest.mark.parametrize("cut", [0.1, 0.5, 0.9])
def test_truncated_archive_is_one_clean_error(program, tmp_path, cut):
    data = program.read_bytes()
    path = tmp_path / "cut.pt2"
    path.write_bytes(data[: int(len(data) * cut)])
    with pytest.raises(ModelLoadError) as info:
        load_model(str(path))
    assert not isinstance(info.value, UntrustedFileError)


def test_archive_with_a_member_twice_is_refused(program, tmp_path):
    from hostile import duplicate_table

    marker = tmp_path / "marker"
    path = tmp_path / "twice.pt2"
    duplicate_table(marker, program, path)
    with pytest.raises(UntrustedFileError, match="twice"):
        load_model(str(path))
    assert not marker.exists()


def test_members_outside_the_archive_folder_are_refused(program, tmp_path):
    path = tmp_path / "outside.pt2"
    rewrite_archive(program, path, lambda rel, b: None, {})
    with zipfile.ZipFile(path, "a") as zf:
        zf.writestr("elsewhere/data.pkl", b"\x80\x02}q\x00.")
    with pytest.raises(UntrustedFileError, match="one archive folder"):
        load_model(str(path))
