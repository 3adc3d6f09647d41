"""Temporary: the old path of the table's data types; imports move to cnnviz.core.analysis.types."""

from cnnviz.core.analysis.types import LayerRow, Pair, ReceptiveField, Summary  # noqa: F401
