"""What a model does to a picture, computed without drawing anything.

The traced layer graph (``graph``), output shapes on meta tensors (``shapes``), the memory a forward pass would
hold (``forward_budget``), one forward pass that keeps every layer's output (``capture``), the per-layer table
(``summary``, its plain data types in ``types``), receptive fields (``receptive``) and class predictions
(``predict``). Modules lower in that list never import the ones above them; failures of a forward pass are
described in one place (``failures``).
"""
