"""Temporary: the old path of the capture; imports move to cnnviz.core.analysis.capture."""

from cnnviz.core.analysis.capture import CaptureResult, capture, keep_freed_memory  # noqa: F401
from cnnviz.core.analysis.failures import ForwardError  # noqa: F401
from cnnviz.core.analysis.graph import (  # noqa: F401
    model_device,
    resolve_layer,
    unwrap_input,
    unwrap_module,
)
