"""The command line ends every failure in one line: user errors exit 2, bugs exit 1, --verbose shows why."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from cnnviz import cli
from cnnviz.core.errors import SpecError


@pytest.fixture
def deep_spec(tmp_path):
    path = tmp_path / "deep.json"
    path.write_text("[" * 50_000 + "]" * 50_000)
    return str(path)


def _lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.strip()]


def test_a_user_error_is_one_line_and_exit_2(capsys, deep_spec):
    assert cli.main(["summary", "--model", deep_spec]) == 2
    err = _lines(capsys.readouterr().err)
    assert len(err) == 1 and err[0].startswith("cnnviz: error: ") and "nested" in err[0]


@pytest.mark.parametrize("where", ["before", "after"])
def test_verbose_before_or_after_the_command_shows_the_traceback(capsys, deep_spec, where):
    args = ["summary", "--model", deep_spec]
    args = ["--verbose", *args] if where == "before" else [*args, "--verbose"]
    assert cli.main(args) == 2
    err = capsys.readouterr().err
    assert err.startswith("cnnviz: error: ") and "Traceback (most recent call last)" in err
    assert "SpecError" in err


def test_internal_errors_are_one_line_exit_1_with_a_hint(capsys):
    try:
        {}["missing"]
    except KeyError as exc:
        bug = exc
    assert cli._report(bug, verbose=False) == 1
    err = _lines(capsys.readouterr().err)
    assert err == [
        "cnnviz: internal error: KeyError: 'missing' (run with --verbose for the details)"
    ]
    assert cli._report(bug, verbose=True) == 1
    err = capsys.readouterr().err
    assert "Traceback (most recent call last)" in err and "--verbose for" not in err


def test_running_out_of_memory_is_a_user_error(capsys):
    assert cli._report(MemoryError(), verbose=False) == 2
    assert _lines(capsys.readouterr().err) == [
        "cnnviz: error: ran out of memory; use a smaller model, input or batch, or close other programs"
    ]
    assert cli._report(SpecError("x is wrong"), verbose=False) == 2


def test_a_convolution_far_too_large_for_memory_ends_in_one_line(capsys, tmp_path):
    picture = tmp_path / "p.png"
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(picture)
    args = ["convolve", "--image", str(picture), "--kernel", "sobel_x", "--padding", "99999999"]
    code = cli.main([*args, "--out", str(tmp_path / "o.png")])
    assert code == 2
    assert len(_lines(capsys.readouterr().err)) == 1


@pytest.mark.parametrize(
    "argv",
    [
        ["summary", "--format", "xml"],
        ["rf", "--unit"],
        ["no-such-command"],
        ["summary", "--no-such-option"],
        ["predict", "--top"],
    ],
)
def test_usage_errors_are_one_line_and_exit_2(capsys, argv):
    with pytest.raises(SystemExit) as info:
        cli.main(argv)
    assert info.value.code == 2
    captured = capsys.readouterr()
    err = _lines(captured.err)
    assert len(err) == 1 and err[0].startswith("cnnviz: error:") and "--help" in err[0]
    assert captured.out == ""


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["--bogus"], "cnnviz: error: unrecognized arguments: --bogus (see 'cnnviz --help')"),
        (
            ["summary", "--model", "default", "--bogus"],
            "cnnviz: error: cnnviz summary: unrecognized arguments: --bogus "
            "(see 'cnnviz summary --help')",
        ),
    ],
)
def test_unknown_arguments_name_the_command_they_were_given_to(capsys, argv, expected):
    with pytest.raises(SystemExit):
        cli.main(argv)
    assert _lines(capsys.readouterr().err) == [expected]


def test_the_models_note_goes_to_stderr(capsys, monkeypatch):
    import dataclasses

    from cnnviz.core import models

    real = models.load_model

    def with_note(*args, **kwargs):
        return dataclasses.replace(real("default"), note="the bundled weights are missing")

    monkeypatch.setattr(models, "load_model", with_note)
    assert cli.main(["summary", "--model", "default", "--format", "json"]) == 0
    captured = capsys.readouterr()
    assert _lines(captured.err) == ["cnnviz: note: the bundled weights are missing"]
    assert captured.out.startswith("{")


def test_predict_names_a_bad_picture_once(capsys, tmp_path):
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not a picture at all")
    assert cli.main(["predict", "--model", "default", str(bad)]) == 2
    err = _lines(capsys.readouterr().err)
    assert len(err) == 1 and err[0].count(str(bad)) == 1, err
