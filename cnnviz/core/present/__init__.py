"""Presentation of core results: the view state and its choices, colormaps, mosaics, figures, captions,
the per-layer tables and export.

Deliberately empty, so that importing :mod:`cnnviz.core.present.view` (the command line's choices) pulls
in neither numpy nor PIL.
"""
