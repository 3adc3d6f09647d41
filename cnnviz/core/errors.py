"""User-facing errors: one clear sentence, never a traceback."""

from __future__ import annotations


class CnnvizError(Exception):
    """An error caused by user input (a file, a name, a number).

    The message is a complete sentence that says what is wrong and, where possible,
    what to do. The CLI prints it as one line; the GUI shows it in a dialog.
    """

    def __str__(self) -> str:
        text = super().__str__()
        return " ".join(text.split())


class ModelLoadError(CnnvizError):
    """A model could not be loaded (unknown name, wrong file, missing weights)."""


class UntrustedFileError(ModelLoadError):
    """A file needs full unpickling, which can run arbitrary code; refused unless trusted."""


class ImageLoadError(CnnvizError):
    """An image could not be read or converted."""


class SpecError(CnnvizError):
    """An architecture spec is invalid; names the layer (index, type) and the reason."""

    def __init__(self, message: str, index: int | None = None, layer_type: str | None = None):
        super().__init__(message)
        self.index = index
        self.layer_type = layer_type


class LayerError(CnnvizError):
    """An unknown layer name, a unit outside a map, a layer without a spatial map."""


class InvalidArgumentError(CnnvizError, ValueError):
    """An argument has the right type but a value the function cannot use."""


class ArgumentTypeError(CnnvizError, TypeError):
    """An argument has the wrong type (a number where a path or picture is expected)."""


class MemoryBudgetError(CnnvizError, ValueError):
    """A size (input, layer output, parameters, padding, data set) would not fit the memory budget.

    Raised before anything is allocated; see :mod:`cnnviz.core.budget`.
    """


class SpecBudgetError(SpecError, MemoryBudgetError):
    """A spec layer whose parameters or output would not fit the memory budget."""


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message (its type name when it has none)."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def is_out_of_memory(exc: BaseException) -> bool:
    """True for Python's MemoryError and torch's failed allocations (which arrive as RuntimeError)."""
    if isinstance(exc, MemoryError):
        return True
    if not isinstance(exc, RuntimeError):
        return False
    text = str(exc)
    return any(
        marker in text
        for marker in ("can't allocate memory", "not enough memory", "out of memory", "Allocator")
    )


_OUT_OF_MEMORY = "the computer ran out of memory; use a smaller input or close other programs"


def one_line(exc: BaseException | str, limit: int | None = None, *, whole: bool = False) -> str:
    """An error's message as one line for a sentence: its first non-empty line, whitespace collapsed.

    ``whole=True`` keeps every line (joined by spaces) instead of the first. A failed allocation reads as
    the advice to use a smaller input, since torch's allocator text names C++ files, not what to do. An
    exception without a message gives its type name. ``limit`` cuts the text to that many characters,
    ending in "…".
    """
    if isinstance(exc, BaseException) and is_out_of_memory(exc):
        return _OUT_OF_MEMORY
    raw = str(exc)
    if whole:
        text = " ".join(raw.split())
    else:
        lines = [line for line in raw.splitlines() if line.strip()]
        text = " ".join(lines[0].split()) if lines else ""
    if not text and isinstance(exc, BaseException):
        text = type(exc).__name__
    if limit is not None and len(text) > limit:
        text = text[: max(limit - 1, 0)] + "…"
    return text


def describe_error(exc: BaseException) -> str:
    """One line for the user: the message of a CnnvizError, or the kind and message of anything else."""
    if isinstance(exc, CnnvizError):
        return str(exc)
    text = " ".join(str(exc).split()) or type(exc).__name__
    return f"unexpected {type(exc).__name__}: {text}"
