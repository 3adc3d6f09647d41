"""The one JSON reader for anything a user gives (spec files, kernel files): hostile input gets a sentence.

Python's ``json`` accepts things that are not JSON (``NaN``, ``Infinity``), turns ``1e999`` into infinity,
raises ``RecursionError`` on deep nesting and ``ValueError`` on integers of thousands of digits, keeps the
last of two equal keys silently, lets lone surrogates through (which later fail to print) and reads a file
of any size. Here each of those is refused with one line that says what is wrong and where, and files are
opened with :func:`cnnviz.core.fileio.open_regular_file` (never a FIFO or device) and read up to a cap.
"""

from __future__ import annotations

import json
import math
import os
import re
from typing import Any

from cnnviz.core.errors import CnnvizError
from cnnviz.core.fileio import open_regular_file, regular_file_problem

MAX_JSON_BYTES = 16 << 20
"""Largest JSON file read (16 MiB): specs and kernels are a few kilobytes."""

MAX_JSON_DEPTH = 64
"""Deepest nesting of lists and objects accepted; specs need four levels."""

MAX_NUMBER_DIGITS = 100
"""Longest integer accepted, in digits; no layer size or kernel weight needs more."""

_SURROGATE = re.compile("[\ud800-\udfff]")


class _Refused(Exception):
    """Raised inside the parser's hooks; carries the reason to the reader."""


def _parse_int(text: str) -> int:
    digits = len(text.lstrip("-"))
    if digits > MAX_NUMBER_DIGITS:
        raise _Refused(
            f"it holds an integer of {digits:,} digits (at most {MAX_NUMBER_DIGITS} are accepted)"
        )
    return int(text)


def _parse_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise _Refused(f"the number {text[:40]} is too large to be finite; use ordinary numbers")
    return value


def _parse_constant(name: str) -> Any:
    raise _Refused(
        f"it holds {name}, which is not finite and not standard JSON; use ordinary numbers"
    )


def _object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise _Refused(f"the key {json.dumps(key)[:60]} appears twice in one object; keep one")
        result[key] = value
    return result


def _check_tree(data: Any) -> None:
    """Depth and lone surrogates, walked without recursion (the tree may be deep)."""
    stack: list[tuple[Any, int]] = [(data, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, str):
            if _SURROGATE.search(value):
                raise _Refused("it holds a text with a lone surrogate escape (\\ud800-\\udfff)")
            continue
        if isinstance(value, (list, tuple, dict)):
            if depth > MAX_JSON_DEPTH:
                raise _Refused(f"it is nested more than {MAX_JSON_DEPTH} levels deep")
            items = list(value.items()) if isinstance(value, dict) else [(None, v) for v in value]
            for key, item in items:
                if key is not None and _SURROGATE.search(key):
                    raise _Refused("it holds a key with a lone surrogate escape (\\ud800-\\udfff)")
                stack.append((item, depth + 1))


def structure_problem(data: Any) -> str | None:
    """Why a value built in Python (not parsed) is no JSON document cnnviz accepts: too deep, or None.

    The same limits as :func:`parse_json`, for specs handed to the API as dicts.
    """
    try:
        _check_tree(data)
    except _Refused as exc:
        return str(exc)
    return None


def parse_json(
    data: str | bytes,
    what: str,
    *,
    error: type[CnnvizError] = CnnvizError,
    hint: str = "",
    max_bytes: int = MAX_JSON_BYTES,
) -> Any:
    """Parse ``data`` (text, or UTF-8 bytes) as strict JSON.

    ``what`` names the source in messages (``"net.json"``); ``error`` is the CnnvizError subclass raised;
    ``hint`` is appended to syntax errors (e.g. what the file should hold); ``max_bytes`` caps the size.
    """
    tail = f"; {hint}" if hint else ""
    if len(data) > max_bytes:
        raise error(
            f"{what} is larger than {max_bytes / (1 << 20):g} MiB, far more than this JSON needs; "
            "check that it is the right file"
        )
    if isinstance(data, (bytes, bytearray)):
        try:
            text = bytes(data).decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise error(
                f"{what} is not a text file: byte {exc.start + 1:,} is not UTF-8; a JSON file is UTF-8 text"
            ) from None
    else:
        text = data.removeprefix("\ufeff")
    try:
        result = json.loads(
            text,
            parse_int=_parse_int,
            parse_float=_parse_float,
            parse_constant=_parse_constant,
            object_pairs_hook=_object,
        )
        _check_tree(result)
    except _Refused as exc:
        raise error(f"{what} cannot be used: {exc}") from None
    except json.JSONDecodeError as exc:
        raise error(
            f"{what} is not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}{tail}"
        ) from None
    except RecursionError:
        raise error(f"{what} cannot be used: it is nested far too deeply") from None
    except ValueError as exc:  # e.g. a float literal Python cannot convert
        raise error(f"{what} cannot be used: {str(exc).splitlines()[0][:200]}") from None
    return result


def read_json(
    path: str | os.PathLike[str],
    what: str | None = None,
    *,
    error: type[CnnvizError] = CnnvizError,
    hint: str = "",
    max_bytes: int = MAX_JSON_BYTES,
) -> Any:
    """Read and parse the JSON file ``path`` (see :func:`parse_json`); at most ``max_bytes`` are read.

    ``what`` names the file in messages (default: the path). Missing files, folders, FIFOs and devices
    are refused with the reason from :func:`cnnviz.core.fileio.regular_file_problem`.
    """
    label = what or str(path)
    problem = regular_file_problem(path)
    if problem is not None:
        advice = "; check the path" if problem == "does not exist" else ""
        raise error(f"{label} {problem}{advice}")
    try:
        with open_regular_file(path) as handle:
            data = handle.read(max_bytes + 1)
    except OSError as exc:
        if (
            exc.errno == 0 and exc.strerror
        ):  # refused by the regular-file check: strerror is the reason
            raise error(f"{label} {exc.strerror}") from None
        raise error(f"{label} cannot be read ({exc.strerror or exc})") from None
    return parse_json(data, label, error=error, hint=hint, max_bytes=max_bytes)


__all__ = [
    "MAX_JSON_BYTES",
    "MAX_JSON_DEPTH",
    "MAX_NUMBER_DIGITS",
    "parse_json",
    "read_json",
    "structure_problem",
]
