"""Architecture specs: a JSON description of a sequence of layers <-> ``torch.nn.Sequential``.

``schema`` holds the results and the argument table, ``rules`` the shape rules of each type, ``check`` the
validation, ``build`` the model building and ``io`` the files and conversions; the layer types themselves
come from :mod:`cnnviz.core.models.layertypes`.

The format
==========

A spec is a JSON object::

    {
      "name": "tiny digits CNN",
      "input_shape": [1, 28, 28],
      "labels": ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"],
      "layers": [
        {"type": "Conv2d", "out_channels": 16, "kernel_size": 3, "stride": 1, "padding": 1},
        {"type": "ReLU"},
        {"type": "MaxPool2d", "kernel_size": 2},
        {"type": "Flatten"},
        {"type": "Linear", "out_features": 10}
      ]
    }

Top-level keys:

- ``input_shape`` (required): ``[C, H, W]``, three positive integers, without the batch dimension.
- ``layers`` (required): a list of layer objects, applied in order. Layer ``i`` becomes the module named
  ``"i"`` of the ``nn.Sequential``, so its parameters are ``"i.weight"``, ``"i.bias"`` in the state dict.
- ``labels`` (optional): class names, one per output of the last layer (which must then be flat, ``[N]``).
- ``name``, ``description`` (optional): strings for display.
- ``preprocess`` (optional): an object describing how pictures become inputs; it is carried along
  unchanged and read by :mod:`cnnviz.core.images`, not here.

Any other top-level key is an error (a typo such as ``"label"`` would otherwise be silently ignored).

Each layer object has a ``"type"``, the name of a ``torch.nn`` class from :data:`SUPPORTED_TYPES`,
and any of that class's constructor arguments (see ``help(torch.nn.Conv2d)``). Values are JSON
scalars, ``null`` for ``None``, or lists for tuples (``"kernel_size": [3, 5]`` means ``(3, 5)``, height
first). An argument the class does not take is an error, as is a value of the wrong type.
``device`` and ``dtype`` are not accepted.

These arguments are inferred from the shape that reaches the layer and may be left out; if given they
must agree with it:

- ``in_channels`` of ``Conv2d`` and ``ConvTranspose2d``: the number of input channels;
- ``in_features`` of ``Linear``: the length of the flat input;
- ``num_features`` of ``BatchNorm2d`` and ``BatchNorm1d``: the number of input channels/features.

Dimension arguments (``Flatten``'s ``start_dim``/``end_dim``, ``Softmax``'s ``dim``) count the batch
dimension as torch does: for an input of shape ``[C, H, W]`` the module sees ``[N, C, H, W]``.

Where cnnviz is stricter than torch
-----------------------------------

Shapes are always those torch computes. A few things torch accepts are refused because in a
sequence of layers over ``[C, H, W]`` inputs they are almost certainly mistakes:

- 2-D layers (convolutions, pooling, ``BatchNorm2d``, ``ZeroPad2d``) need a ``[C, H, W]`` input
  (torch would read a ``[N, L]`` input as an unbatched image and mix up samples);
- ``Linear`` needs a flat ``[N]`` input (torch would apply it to the last axis of an image);
- ``Flatten`` must not fold, and ``Softmax`` must not normalise over, the batch dimension;
- a layer whose output would be empty (a zero-sized axis) is an error;
- ``return_indices`` must stay false (the next layer cannot take a ``(values, indices)`` pair).

Validation
==========

:func:`validate_spec` checks a spec layer by layer and never raises for a bad spec; it returns a
:class:`SpecReport` with one :class:`LayerCheck` per layer (shapes in and out, the constructor
arguments with inferred values filled in, the parameter count, or the reason the layer is invalid).
Shapes are found without computing anything: each layer is built on the ``meta`` device and run on a
meta tensor. Layers whose output shape is certain once their checks pass skip the meta run: those that
keep their input's shape (activations, dropout, batch norm) and ``Linear`` (``[out_features]``), whose
meta kernels are slow (up to a millisecond a call, a second on first use) for a result already known. Results
are cached per (layer, input shape), so the live editor's re-validation on each keystroke only pays for
layers whose input changed.
"""

from cnnviz.core.models.layertypes import ACTIVATION_TYPES, DROPOUT_TYPES, SUPPORTED_TYPES
from cnnviz.core.models.spec.build import build_model, infer_output_shape, warm_up
from cnnviz.core.models.spec.check import validate_spec
from cnnviz.core.models.spec.io import load_spec, save_spec, spec_from_sequential, spec_preprocess
from cnnviz.core.models.spec.schema import LayerCheck, SpecReport, accepted_arguments

__all__ = [
    "ACTIVATION_TYPES",
    "DROPOUT_TYPES",
    "SUPPORTED_TYPES",
    "LayerCheck",
    "SpecReport",
    "accepted_arguments",
    "build_model",
    "infer_output_shape",
    "load_spec",
    "save_spec",
    "spec_from_sequential",
    "spec_preprocess",
    "validate_spec",
    "warm_up",
]
