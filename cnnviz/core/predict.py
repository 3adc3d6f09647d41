"""Temporary: the old path of class predictions; imports move to cnnviz.core.analysis.predict."""

from cnnviz.core.analysis.predict import (  # noqa: F401
    Prediction,
    predict,
    probabilities,
    rank_output,
)
