"""`cnnviz samples`: the bundled pictures listed (checked against the files themselves) and copied into a folder."""

from __future__ import annotations

import json

import pytest
from PIL import Image

from cnnviz.cli import main
from cnnviz.core.resources import resource_path

SUFFIXES = {".png", ".jpg", ".jpeg"}


def _bundled() -> dict[str, bytes]:
    root = resource_path("samples")
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in root.rglob("*")
        if p.suffix.lower() in SUFFIXES
    }


def _run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_json_lists_every_bundled_picture_with_its_real_size(capsys):
    code, out, _ = _run(capsys, "samples", "--format", "json")
    assert code == 0
    listed = json.loads(out)
    files = _bundled()
    assert sorted(e["name"] for e in listed) == sorted(files) and len(files) >= 10
    for entry in listed:
        with Image.open(resource_path("samples", entry["name"])) as im:
            assert (entry["width"], entry["height"]) == im.size
        assert entry["bytes"] == len(files[entry["name"]])
        assert entry["kind"] == entry["name"].split("/")[0] and entry["shows"]
    digits = [e for e in listed if e["kind"] == "digits"]
    assert listed[: len(digits)] == digits  # digits first, as the app offers them
    for entry in digits:
        label = entry["name"].split("_")[1]
        assert entry["shows"].startswith(f"the digit {label}, ")
    chelsea = next(e for e in listed if e["name"] == "photos/chelsea.jpg")
    assert "cat" in chelsea["shows"] and "CC0" in chelsea["shows"]


def test_text_lists_names_sizes_and_subjects(capsys):
    code, out, _ = _run(capsys, "samples")
    assert code == 0
    for name in _bundled():
        line = next(line for line in out.splitlines() if line.strip().startswith(name))
        with Image.open(resource_path("samples", name)) as im:
            assert f"{im.size[0]}×{im.size[1]}" in line
    assert "--copy DIR" in out


def test_copy_writes_identical_files_and_keeps_identical_ones(capsys, tmp_path):
    dest = tmp_path / "new" / "samples"
    code, out, _ = _run(capsys, "samples", "--copy", dest)
    files = _bundled()
    assert code == 0 and f"copied {len(files)} sample picture(s)" in out
    copied = {
        p.relative_to(dest).as_posix(): p.read_bytes() for p in dest.rglob("*") if p.is_file()
    }
    assert copied == files  # nothing else either: no temporary files left behind
    code, out, _ = _run(capsys, "samples", "--copy", dest, "--format", "json")
    report = json.loads(out)
    assert code == 0 and report["written"] == [] and len(report["unchanged"]) == len(files)


def test_copy_refuses_to_overwrite_a_different_file_unless_forced(capsys, tmp_path):
    dest = tmp_path / "mine"
    (dest / "photos").mkdir(parents=True)
    own = dest / "photos" / "chelsea.jpg"
    own.write_bytes(b"my own cat")
    code, out, err = _run(capsys, "samples", "--copy", dest)
    assert code == 2 and out == "" and err.count("\n") == 1
    assert "photos/chelsea.jpg" in err and "--force" in err
    # Refused before anything was written.
    assert [p for p in dest.rglob("*") if p.is_file()] == [
        own
    ] and own.read_bytes() == b"my own cat"
    code, out, err = _run(capsys, "samples", "--copy", dest, "--force")
    assert code == 0 and own.read_bytes() == _bundled()["photos/chelsea.jpg"]


@pytest.mark.parametrize("where", ["file", "under-file", "empty"])
def test_copy_into_a_folder_that_cannot_be_written_is_one_line(capsys, tmp_path, where):
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    target = {"file": blocker, "under-file": blocker / "sub", "empty": " "}[where]
    code, out, err = _run(capsys, "samples", "--copy", target)
    assert code == 2 and out == "" and err.startswith("cnnviz: error: ") and err.count("\n") == 1
    assert blocker.read_text() == "x"


def test_force_without_copy_is_an_error(capsys):
    code, _, err = _run(capsys, "samples", "--force")
    assert code == 2 and "--copy" in err
