"""Temporary: the old path of class predictions; imports move to cnnviz.core.analysis.predict."""

from cnnviz.core.analysis.predict import Prediction, predict, probabilities  # noqa: F401
