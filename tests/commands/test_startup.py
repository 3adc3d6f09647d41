"""`cnnviz --version` and `--help` load none of the heavy libraries (torch, numpy, PIL, Qt)."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest

HEAVY = ("torch", "numpy", "PIL", "PySide6")

# Runs the CLI in a fresh interpreter and reports which heavy packages it loaded.
RUN_CLI = """
import contextlib, io, json, sys
from cnnviz.cli import main
out = io.StringIO()
with contextlib.redirect_stdout(out):
    try:
        main(sys.argv[1:])
    except SystemExit:
        pass
heavy = sorted(m for m in {HEAVY!r} if m in sys.modules)
print(json.dumps({{"heavy": heavy, "out": out.getvalue()}}))
"""


def _run(*argv: str) -> dict:
    code = RUN_CLI.format(HEAVY=HEAVY)
    done = subprocess.run(
        [sys.executable, "-c", code, *argv], capture_output=True, text=True, check=True
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("argv", [["--version"], ["--help"], ["export", "--help"]])
def test_cli_starts_without_heavy_libraries(argv):
    result = _run(*argv)
    assert result["heavy"] == [], result
    assert result["out"]


def test_version_text():
    from cnnviz import __version__

    assert _run("--version")["out"].strip() == f"cnnviz {__version__}"


def test_import_time_of_the_parser_stays_small():
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", "import cnnviz.cli as c; c.build_parser()"],
        capture_output=True,
        text=True,
        check=True,
    )
    total = 0
    for line in done.stderr.splitlines():
        match = re.match(r"import time:\s+(\d+)\s+\|\s+\d+\s+\|\s*(\S+)", line)
        if match and match.group(2).split(".")[0] == "cnnviz":
            total += int(match.group(1))
    assert total <= 300_000, f"cnnviz modules took {total} µs to import"


def test_convolve_help_lists_the_presets(capsys):
    from cnnviz.cli import main

    with pytest.raises(SystemExit):
        main(["convolve", "--help"])
    out = capsys.readouterr().out
    assert "Presets: identity" in out and "zeros, reflect" in out
