"""Temporary: the old path of the app's state; imports move to cnnviz.gui.state and cnnviz.core.images.samples."""

from cnnviz.core.images.samples import default_sample, fallback_picture
from cnnviz.gui.state import RunResult, Session, UnitSelection

__all__ = ["RunResult", "Session", "UnitSelection", "default_sample", "fallback_picture"]
