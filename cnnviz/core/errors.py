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
