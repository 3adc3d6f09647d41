"""The app's state: the current model, picture, activations, layer, unit and effective receptive field.

Views never compute: they read the session and listen to its signals. The session never draws: it submits work
to a :class:`~cnnviz.gui.workers.JobRunner` and publishes results when they arrive on the GUI thread.

Flow: ``load_model`` -> (worker) load, table, receptive-field index -> ``modelChanged`` -> ``run`` the current
picture -> (worker) preprocess, capture every layer, predictions -> ``activationsChanged`` -> views redraw the
selected layer. ``select_unit`` computes the unit's box on the GUI thread where it is derived (well under a
millisecond) and on the worker where it is measured (a backward pass); when enabled, it queues the effective
receptive field.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from PySide6.QtCore import QObject, Signal

from cnnviz.core.errors import (
    CnnvizError,
    LayerError,
    ModelLoadError,
    UntrustedFileError,
    describe_error,
)
from cnnviz.gui.workers import CancelToken, JobRunner

if TYPE_CHECKING:
    from cnnviz.core.present.export import ExportSnapshot
    from cnnviz.core.present.view import ViewState

__all__ = ["ModelBundle", "PictureCandidate", "RunResult", "Session", "UnitSelection"]


@dataclass(frozen=True)
class PictureCandidate:
    """A picture to run: its ``source`` (a path, bytes or a PIL image), display ``name`` and whether it is
    the model's sample (``default``)."""

    source: Any
    name: str | None
    default: bool = False


@dataclass
class UnitSelection:
    """The selected unit: ``unit`` (y, x) of ``layer``, the clicked ``channel`` (or None), and its receptive
    field ``box`` (a :class:`cnnviz.core.analysis.receptive.UnitBox`; None where it cannot be derived, ``note`` says why)."""

    layer: str
    unit: tuple[int, int]
    channel: int | None
    box: Any = None
    note: str | None = None


@dataclass
class RunResult:
    """One forward pass: the preprocessed picture, every layer's output (NumPy, batch axis kept, each converted
    when first read), predictions."""

    image: Any
    activations: Mapping[str, np.ndarray]
    predictions: list[Any] | None
    prediction_note: str | None
    method: str
    note: str | None


@dataclass
class ModelBundle:
    """What loading a model prepares off the GUI thread: the model, its table and its receptive-field index."""

    model: Any
    summary: Any
    rf_index: Any
    rf_note: str | None


class Session(QObject):
    """State of one window; see the module docstring."""

    modelLoading = Signal(str)
    modelChanged = Signal(object)
    summaryChanged = Signal(object)
    imageChanged = Signal(object)
    activationsChanged = Signal()
    predictionsChanged = Signal(object, object)  # predictions | None, note | None
    layerChanged = Signal(str)
    unitChanged = Signal(object)  # UnitSelection | None
    erfChanged = Signal(object)  # EffectiveRF | None
    erfEnabledChanged = Signal(bool)
    errorOccurred = Signal(str, str)  # title, message
    statusMessage = Signal(str)
    trustRequested = Signal(str, object, str)  # spec, weights, message
    architectureNeeded = Signal(
        str, str
    )  # weights file, message: a state_dict alone names no architecture

    def __init__(self, runner: JobRunner | None = None, parent: QObject | None = None):
        super().__init__(parent)
        self.runner = runner or JobRunner(self)
        self.model: Any = None
        self.summary: Any = None
        self.rf_index: Any = None
        self.rf_note: str | None = None
        self.image: Any = None
        self.image_source: Any = None
        self.image_name: str | None = None
        self.image_is_default = False
        # A picture given before a model is ready: it becomes current only once it has decoded and run.
        self._queued: PictureCandidate | None = None
        self.activations: Mapping[str, np.ndarray] = {}
        self.predictions: list[Any] | None = None
        self.layer: str | None = None
        self.selection: UnitSelection | None = None
        self.erf: Any = None
        self.erf_enabled = False
        self.rows: dict[str, Any] = {}  # the table's rows by layer name

    # ------------------------------------------------------------------------------------------------------------
    # Models

    def load_model(
        self,
        spec: str,
        weights: Any = "default",
        trust: bool = False,
        *,
        input_shape: tuple[int, int, int] | None = None,
        label: str | None = None,
    ) -> None:
        """Load a model in the background (a torchvision name, "default" or a file); supersedes earlier loads."""
        from cnnviz.core.models import load_model

        self.runner.cancel("run")
        self.runner.cancel("erf")
        name = label or (Path(spec).name if os.sep in str(spec) else str(spec))
        self.modelLoading.emit(name)

        def job(token: CancelToken) -> ModelBundle:
            def progress(done: int, total: int) -> None:
                token.progress(done, total, f"downloading weights for {name}")

            model = load_model(
                spec, weights=weights, trust=trust, input_shape=input_shape, progress=progress
            )
            token.check()
            return self._prepare(model, token)

        def failed(exc: BaseException) -> None:
            if isinstance(exc, UntrustedFileError):
                self.trustRequested.emit(str(spec), weights, str(exc))
                return
            if isinstance(exc, ModelLoadError) and "holds only weights" in str(exc):
                self.architectureNeeded.emit(str(spec), str(exc))
                return
            self.errorOccurred.emit("Could not load the model", describe_error(exc))

        def done(bundle: ModelBundle) -> None:
            self._install(bundle)

        self.runner.submit(
            "model",
            job,
            on_done=done,
            on_error=failed,
            on_cancel=lambda: self.statusMessage.emit(f"Loading {name} was cancelled."),
            label=f"Loading {name}",
        )

    def set_model(self, model: Any) -> None:
        """Use an already loaded model (a LoadedModel); the table and index are built in the background."""
        self.runner.cancel("run")
        self.runner.cancel("erf")
        self.modelLoading.emit(model.name)
        self.runner.submit(
            "model",
            lambda token: self._prepare(model, token),
            on_done=self._install,
            on_error=lambda exc: self.errorOccurred.emit(
                "Could not use the model", describe_error(exc)
            ),
            label=f"Preparing {model.name}",
        )

    @staticmethod
    def _prepare(model: Any, token: CancelToken) -> ModelBundle:
        from cnnviz.core.analysis.receptive import ReceptiveFieldIndex
        from cnnviz.core.analysis.summary import summarize

        summary = summarize(model)
        token.check()
        rf_index, rf_note = None, None
        try:
            rf_index = ReceptiveFieldIndex(model)
        except CnnvizError as exc:
            rf_note = str(exc)
        return ModelBundle(model, summary, rf_index, rf_note)

    def _install(self, bundle: ModelBundle) -> None:
        self.model = bundle.model
        self.summary = bundle.summary
        self.rf_index = bundle.rf_index
        self.rf_note = bundle.rf_note
        self.rows = {r.name: r for r in bundle.summary.rows}
        self.activations = {}
        self.predictions = None
        self._clear_unit()
        self.modelChanged.emit(bundle.model)
        self.summaryChanged.emit(bundle.summary)
        for note in (getattr(bundle.model, "note", None), bundle.summary.note):
            if note:
                self.statusMessage.emit(note)
        if self._queued is not None:
            self.run(self._queued)
        elif self.image_source is None or self.image_is_default:
            self.open_default_image()
        else:
            self.run()

    # ------------------------------------------------------------------------------------------------------------
    # Pictures

    def open_default_image(self) -> None:
        """Show the sample picture that suits the model (a digit or a photo)."""
        from cnnviz.core.images.samples import default_sample, fallback_picture

        channels = self.model.input_shape[0] if self.model is not None else 1

        path = default_sample(channels)
        if path is not None:
            self.open_image(str(path), default=True)
        else:
            self.open_image(fallback_picture(channels), name="built-in example", default=True)

    def queue_image(self, source: Any, *, name: str | None = None, default: bool = False) -> None:
        """Open ``source`` (a path, bytes or a PIL image) with the next :meth:`run` (for one, when a model
        finishes loading); it becomes the current picture only once it has decoded and run."""
        self._queued = self._candidate(source, name, default)

    def open_image(self, source: Any, *, name: str | None = None, default: bool = False) -> None:
        """Show ``source`` (a path, bytes or a PIL image) and run the model on it (in the background).

        The current picture changes only once ``source`` has decoded and run: a failure reports an error
        and leaves the previous picture, its maps and predictions as they were.
        """
        self.run(self._candidate(source, name, default))

    @staticmethod
    def _candidate(source: Any, name: str | None, default: bool) -> PictureCandidate:
        if isinstance(source, os.PathLike):
            source = os.fspath(source)
        if name is None:
            name = Path(source).name if isinstance(source, str) else "pasted picture"
        return PictureCandidate(source, name, default)

    def set_image_array(self, array: np.ndarray, name: str = "drawing") -> None:
        """Use a uint8 array (HxW gray or HxWx3 RGB), e.g. from the drawing canvas."""
        from PIL import Image

        self.open_image(Image.fromarray(np.ascontiguousarray(array)), name=name)

    def run(self, candidate: PictureCandidate | None = None) -> None:
        """Preprocess ``candidate`` (default: the current picture) for the current model and capture every
        layer (in the background); ``candidate`` becomes the current picture when that succeeds."""
        if candidate is None:
            if self.image_source is None:
                return
            candidate = PictureCandidate(self.image_source, self.image_name, self.image_is_default)
        if self.model is None:
            self._queued = candidate
            return
        # Kept until the run ends, so a model load that cancels it runs this picture instead.
        self._queued = candidate
        model, source, name = self.model, candidate.source, candidate.name

        def job(token: CancelToken) -> RunResult:
            from cnnviz.core.analysis.capture import LayerArrays, capture
            from cnnviz.core.analysis.failures import ForwardError
            from cnnviz.core.analysis.predict import rank_output
            from cnnviz.core.images import load_image, open_image, preprocess_pil

            if isinstance(source, str):
                image = load_image(source, model.preprocess)
            else:
                image = preprocess_pil(open_image(source), model.preprocess, path=None)
            token.check()
            result = capture(model, image)
            token.check()
            # Layers are converted (and elementwise ones computed) when shown; the one on screen is read here,
            # off the GUI thread.
            activations = LayerArrays(result)
            shown = self.layer
            if shown is not None and shown in activations:
                activations.get(shown)
            predictions: list[Any] | None = None
            note: str | None = None
            try:
                predictions = rank_output(model, result.output)
            except ForwardError as exc:
                note = str(exc)  # a model without class scores still shows its maps
            return RunResult(image, activations, predictions, note, result.method, result.note)

        self.runner.cancel("erf")
        self.runner.submit(
            "run",
            job,
            on_done=lambda result: self._ran(result, candidate),
            on_error=lambda exc: self._run_failed(exc, candidate),
            label=f"Running {model.name} on {name}",
        )

    def _run_failed(self, exc: BaseException, candidate: PictureCandidate) -> None:
        if self._queued is candidate:
            self._queued = None
        self.errorOccurred.emit(f"Could not use {candidate.name}", describe_error(exc))
        if self.image_source is None and not candidate.default:
            # Nothing was shown yet (a bad picture at start-up): show a sample instead of an empty window.
            self.open_default_image()

    def _ran(self, result: RunResult, candidate: PictureCandidate) -> None:
        if self._queued is candidate:
            self._queued = None
        self.image_source = candidate.source
        self.image_name = candidate.name
        self.image_is_default = candidate.default
        self.image = result.image
        self.activations = result.activations
        self.predictions = result.predictions
        self.imageChanged.emit(result.image)
        if self.layer not in self.activations:
            self.layer = self.default_layer()
            self._clear_unit()
            self.layerChanged.emit(self.layer or "")
        self.activationsChanged.emit()
        note = result.prediction_note
        if result.predictions and note is None:
            note = self.prediction_caveat()
        self.predictionsChanged.emit(result.predictions, note)
        if self.selection is not None:
            self.select_unit(*self.selection.unit, channel=self.selection.channel)
        if result.note:
            self.statusMessage.emit(result.note)

    def prediction_caveat(self) -> str | None:
        """A sentence that goes with the predictions when the weights make them meaningless, else None."""
        origin = getattr(self.model, "weights_origin", None)
        if origin == "random":
            return (
                "Random weights: these predictions mean nothing and change every time the model is "
                "loaded. Load trained weights to see real ones."
            )
        if origin == "partly random":
            return (
                "Some layers were re-initialised by an edit: these are not the trained model's "
                "predictions. Train the model or load its weights again."
            )
        return None

    # ------------------------------------------------------------------------------------------------------------
    # Layers and units

    def row(self, name: str | None) -> Any:
        """The table row of a layer (None when unknown)."""
        return self.rows.get(name) if name is not None else None

    def activation(self, name: str | None = None) -> np.ndarray | None:
        """The output of ``name`` (default: the selected layer) as a NumPy array, or None."""
        key = self.layer if name is None else name
        return self.activations.get(key) if key is not None else None

    def activation_shapes(self) -> dict[str, tuple[int, ...]]:
        """Every captured layer's output shape, without converting any output."""
        acts = self.activations
        shape = getattr(acts, "shape", None)
        if shape is not None:
            return {name: tuple(shape(name)) for name in acts}
        return {name: tuple(arr.shape) for name, arr in acts.items()}

    def default_layer(self) -> str | None:
        """The first convolution's output, else the first layer with a spatial map, else the first layer."""
        from cnnviz.core.analysis.summary import default_layer

        return default_layer(
            self.activation_shapes(), {name: row.type for name, row in self.rows.items()}
        )

    def select_layer(self, name: str) -> None:
        """Show ``name``'s maps; a selected unit moves to the unit of the new layer that looks at the same spot."""
        if name == self.layer or name not in self.activations:
            return
        previous, old = self.selection, self.layer
        had_erf = self.erf is not None
        self.layer = name
        self._clear_unit(emit=False)
        self.layerChanged.emit(name)
        if had_erf:
            # The heatmap belongs to the old layer's unit: it must go whether or not a unit is carried over.
            self.erfChanged.emit(None)
        if previous is not None and old is not None:
            unit = self._carry_unit(old, previous.unit, name)
            if unit is not None:
                self.select_unit(*unit, channel=None)
                return
        self.unitChanged.emit(None)

    def _carry_unit(self, old: str, unit: tuple[int, int], new: str) -> tuple[int, int] | None:
        """The unit of ``new`` whose receptive-field centre is nearest that of ``unit`` in ``old``."""
        from cnnviz.core.analysis.receptive.mapping import carry_unit

        a, b = self.row(old), self.row(new)
        if a is None or b is None:
            return None
        return carry_unit(a.rf, unit, b.rf, self.map_size(new))

    def map_size(self, name: str | None = None) -> tuple[int, int] | None:
        """(H, W) of a layer with a spatial map (batch, channels, H, W), else None."""
        arr = self.activation(name)
        if arr is None or arr.ndim != 4:
            return None
        return (int(arr.shape[2]), int(arr.shape[3]))

    def channels(self, name: str | None = None) -> int:
        arr = self.activation(name)
        if arr is None:
            return 0
        return int(arr.shape[1]) if arr.ndim >= 2 else 1

    def select_unit(self, y: int, x: int, channel: int | None = None) -> None:
        """Select unit (y, x) of the current layer (``channel``: the feature map it was picked in)."""
        if self.layer is None or self.activation() is None:
            return
        size = self.map_size()
        layer = self.layer
        if size is None:
            selection = UnitSelection(layer, (int(y), int(x)), channel, None, "this layer has no spatial map: each "
                                      "of its units depends on the whole input")  # fmt: skip
        else:
            y = min(max(int(y), 0), size[0] - 1)
            x = min(max(int(x), 0), size[1] - 1)
            selection = UnitSelection(layer, (y, x), channel)
            if self.rf_index is None:
                selection.note = self.rf_note or "receptive fields are not available for this model"
            elif self.rf_index.is_measured(layer):
                selection.note = "measuring this unit's receptive field …"
                self._request_measured_box(selection)
            else:
                geometry = self.image.geometry if self.image is not None else None
                try:
                    selection.box = self.rf_index.box(layer, (y, x), geometry)
                except LayerError as exc:
                    selection.note = str(exc)
        self.selection = selection
        self.unitChanged.emit(selection)
        self._request_erf()

    def _request_measured_box(self, selection: UnitSelection) -> None:
        """Measure the selected unit's box (gradient support: a backward pass) on the worker, not the GUI thread."""
        index, layer, unit = self.rf_index, selection.layer, selection.unit
        geometry = self.image.geometry if self.image is not None else None

        def job(_token: CancelToken) -> Any:
            return index.box(layer, unit, geometry)

        def settle(box: Any, note: str | None) -> None:
            if self.selection is not selection:  # another unit was selected meanwhile
                return
            selection.box, selection.note = box, note
            self.unitChanged.emit(selection)

        self.runner.submit(
            "rfbox",
            job,
            on_done=lambda box: settle(box, None),
            on_error=lambda exc: settle(None, describe_error(exc)),
            label="Measuring the receptive field",
        )

    def select_unit_at_input(self, y: float, x: float) -> None:
        """Select the unit of the current layer whose receptive field is centred nearest model-input point (y, x)."""
        from cnnviz.core.analysis.receptive.mapping import unit_at_input

        row = self.row(self.layer)
        unit = unit_at_input(row.rf if row is not None else None, (y, x), self.map_size())
        if unit is None:
            return
        channel = self.selection.channel if self.selection is not None else None
        self.select_unit(unit[0], unit[1], channel=channel)

    def move_unit(self, dy: int, dx: int) -> None:
        """Move the selected unit by (dy, dx), staying inside the map (the arrow keys)."""
        if self.selection is None:
            size = self.map_size()
            if size is None:
                return
            self.select_unit(size[0] // 2, size[1] // 2)
            return
        y, x = self.selection.unit
        self.select_unit(y + dy, x + dx, channel=self.selection.channel)

    def _clear_unit(self, emit: bool = True) -> None:
        self.runner.cancel("erf")
        self.runner.cancel("rfbox")
        changed = self.selection is not None or self.erf is not None
        self.selection = None
        self.erf = None
        if emit and changed:
            self.unitChanged.emit(None)
            self.erfChanged.emit(None)

    # ------------------------------------------------------------------------------------------------------------
    # Effective receptive field

    def set_erf_enabled(self, enabled: bool) -> None:
        if enabled == self.erf_enabled:
            return
        self.erf_enabled = enabled
        self.erfEnabledChanged.emit(enabled)
        if enabled:
            self._request_erf()
        else:
            self.runner.cancel("erf")
            self.erf = None
            self.erfChanged.emit(None)

    def _request_erf(self) -> None:
        self.erf = None
        self.erfChanged.emit(None)
        sel = self.selection
        if not self.erf_enabled or sel is None or self.model is None or self.image is None:
            self.runner.cancel("erf")
            return
        if self.map_size(sel.layer) is None:
            self.runner.cancel("erf")
            return
        model, image = self.model, self.image

        def job(token: CancelToken) -> Any:
            from cnnviz.core.analysis.receptive import effective_receptive_field

            return effective_receptive_field(model, image, sel.layer, sel.unit, channel=sel.channel)

        def done(erf: Any) -> None:
            self.erf = erf
            self.erfChanged.emit(erf)
            if erf.support_box is None:
                self.statusMessage.emit(
                    "The gradient of this unit is zero everywhere: it is inactive for this picture."
                )

        self.runner.submit(
            "erf",
            job,
            on_done=done,
            on_error=lambda exc: self.statusMessage.emit(
                f"Effective receptive field: {describe_error(exc)}"
            ),
            label="Effective receptive field",
        )

    # ------------------------------------------------------------------------------------------------------------
    def snapshot(self, view: ViewState | None = None) -> ExportSnapshot:
        """What an export of the current view needs, taken at once (``view``: colormap, order and channel of
        the feature maps; its layer and unit are the session's)."""
        from cnnviz.core.present.export import ExportSnapshot
        from cnnviz.core.present.view import ViewState

        sel, erf = self.selection, self.erf
        box = sel.box if sel is not None else None
        heatmap = None
        if erf is not None and box is not None and erf.layer == self.layer and erf.unit == box.unit:
            heatmap = erf.heatmap
        row = self.row(self.layer)
        return ExportSnapshot(
            model_name=self.model.name if self.model is not None else "model",
            layer=self.layer,
            view=(view or ViewState()).replace(
                layer=self.layer, unit=sel.unit if sel is not None else None
            ),
            layer_type=row.type if row is not None else None,
            activation=self.activation(),
            box=box,
            unit_channel=sel.channel if sel is not None else None,
            erf_heatmap=heatmap,
            image=self.image,
            summary=self.summary,
        )

    def shutdown(self) -> None:
        self.runner.shutdown()
