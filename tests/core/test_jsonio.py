"""The JSON reader for user files: hostile input becomes one sentence, good input parses as json does."""

from __future__ import annotations

import json
import os

import pytest

from cnnviz.core import lab
from cnnviz.core.errors import CnnvizError, SpecError
from cnnviz.core.jsonio import MAX_JSON_BYTES, MAX_JSON_DEPTH, parse_json, read_json
from cnnviz.core.models.spec import load_spec


@pytest.mark.parametrize(
    ("content", "words"),
    [
        ("[" * 100_000 + "]" * 100_000, "nested far too deeply"),
        (
            "[" * (MAX_JSON_DEPTH + 1) + "]" * (MAX_JSON_DEPTH + 1),
            f"more than {MAX_JSON_DEPTH} levels",
        ),
        ('{"input_shape": [' + "9" * 5000 + "]}", "integer of 5,000 digits"),
        ('{"input_shape": [1, NaN, 2]}', "NaN, which is not finite"),
        ('{"x": -Infinity}', "-Infinity, which is not finite"),
        ('{"x": 1e999}', "too large to be finite"),
        ('{"a": 1, "a": 2}', 'the key "a" appears twice'),
        ('{"name": "\\ud800"}', "lone surrogate"),
        ('{"\\udfff": 1}', "lone surrogate"),
        ('{"a": [1, 2,]}', "line 1, column 13"),
    ],
)
def test_hostile_json_is_refused_with_a_sentence(tmp_path, content, words):
    path = tmp_path / "x.json"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(SpecError, match=words) as caught:
        load_spec(path)
    assert "\n" not in str(caught.value) and "x.json" in str(caught.value)


def test_non_utf8_bytes_name_the_byte(tmp_path):
    path = tmp_path / "latin1.json"
    path.write_bytes(b'{"name": "caf\xe9"}')
    with pytest.raises(SpecError, match="byte 14 is not UTF-8"):
        load_spec(path)


def test_a_giant_file_is_refused_without_reading_it_all(tmp_path):
    path = tmp_path / "giant.json"
    with path.open("w") as handle:
        handle.write("[" + "0," * (MAX_JSON_BYTES // 2) + "0]")
    assert path.stat().st_size > MAX_JSON_BYTES
    with pytest.raises(SpecError, match="larger than 16 MiB"):
        load_spec(path)
    with pytest.raises(CnnvizError, match="larger than"):
        lab.kernel_from_json(path)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="named pipes are POSIX")
def test_a_fifo_is_refused_without_blocking(tmp_path):
    fifo = tmp_path / "pipe.json"
    os.mkfifo(fifo)
    with pytest.raises(SpecError, match="FIFO"):
        load_spec(fifo)
    with pytest.raises(CnnvizError, match="FIFO"):
        lab.kernel_from_json(fifo)


def test_good_json_parses_as_the_json_module_does(tmp_path):
    data = {"input_shape": [1, 28, 28], "layers": [{"type": "Conv2d", "weight": -1.5e-3}], "é": "ü"}
    text = json.dumps(data, ensure_ascii=False)
    assert parse_json(text, "text") == json.loads(text)
    path = tmp_path / "bom.json"
    path.write_bytes(b"\xef\xbb\xbf" + text.encode("utf-8"))
    assert read_json(path) == data
    assert parse_json(b"[" * MAX_JSON_DEPTH + b"]" * MAX_JSON_DEPTH, "deep enough") == json.loads(
        "[" * MAX_JSON_DEPTH + "]" * MAX_JSON_DEPTH
    )


def test_kernels_read_through_the_same_reader(tmp_path):
    path = tmp_path / "k.json"
    path.write_text("[[1, 2], [3, 1e400]]")
    with pytest.raises(CnnvizError, match="too large to be finite"):
        lab.kernel_from_json(path)
    path.write_text("[[1, 2], [3, 4]]")
    assert lab.kernel_from_json(path).tolist() == [[1.0, 2.0], [3.0, 4.0]]
