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
