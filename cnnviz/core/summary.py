"""Temporary: the old path of the per-layer table; imports move to cnnviz.core.analysis.summary."""

from cnnviz.core.analysis.summary import default_layer, summarize  # noqa: F401
