"""The tree keeps the shape docs/ARCHITECTURE.md describes: short modules with docstrings, every package shipped."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "cnnviz"
MAX_LINES = 800


def _modules() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*.py") if "__pycache__" not in p.parts)


def test_no_module_does_several_jobs():
    long = {
        str(p.relative_to(ROOT)): n
        for p in _modules()
        if (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_LINES
    }
    assert not long, f"split these by job (over {MAX_LINES} lines): {long}"


def test_every_package_is_listed_for_the_wheel():
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    listed = set(config["tool"]["setuptools"]["packages"])
    found = {
        ".".join(p.parent.relative_to(ROOT).parts)
        for p in PACKAGE.rglob("__init__.py")
        if "__pycache__" not in p.parts and "resources" not in p.parts
    }
    assert found - listed == set(), "add these to [tool.setuptools] packages"
    assert (PACKAGE / "py.typed").is_file()


def test_every_module_says_what_it_is_for():
    missing = [
        str(p.relative_to(ROOT))
        for p in _modules()
        if p.name not in ("__main__.py", "_version.py")
        and not re.match(
            r'\s*(#[^\n]*\n\s*)*(from __future__[^\n]*\n\s*)?[rRbB]?"""', p.read_text("utf-8")
        )
    ]
    assert not missing, f"give these a module docstring: {missing}"
