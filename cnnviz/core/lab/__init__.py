"""The convolution lab: small, exact computations behind the lessons on convolution.

``kernels`` holds the presets, the named colour filters and kernels read from files; ``convolution`` convolves, pads, pools and steps
through one output pixel; ``counts`` counts parameters and multiply-accumulates with their formulas and mixes channels (1x1);
``growth`` follows the receptive field through a stack; ``display`` turns signed outputs into pictures.
Every public name is re-exported here.

Every number here comes from torch's own operators (``F.conv2d``, ``F.max_pool2d``, ``F.avg_pool2d``) or from
the closed formulas that describe them, so a lesson never shows something a real layer would not do.

Conventions
-----------
* Images and maps are NumPy arrays ``H x W`` (one channel) or ``H x W x C`` (channels last, as pictures are
  stored); computations run in float64 on the values as given. The GUI scales uint8 pictures to 0..1 first; the CLI
  works on 0..255.
* ``kernel[u, v]`` is row ``u``, column ``v``. Deep-learning layers compute *cross-correlation*:
  ``out[i, j] = sum_uv in[i*s + u*d - p, j*s + v*d - p] * kernel[u, v]``; ``flip=True`` turns it into the true
  (mathematical) convolution by rotating the kernel 180 degrees first (``torch.flip``).
* The centre of a kernel is cell ``(k_h // 2, k_w // 2)``: with padding ``k // 2`` that cell lies on the input
  pixel with the output pixel's index. Even sizes are allowed; they have no middle cell, so this "centre" is the
  cell just below and right of the geometric middle, and padding ``k // 2`` makes the output one pixel larger.
"""

from __future__ import annotations

from cnnviz.core.lab.convolution import (
    MAX_STEPS,
    PADDING_MODES,
    IntPair,
    Step,
    StepThrough,
    axis_formula,
    convolve,
    output_size,
    output_size_formula,
    pad_image,
    pool,
    step_windows,
)
from cnnviz.core.lab.counts import (
    BottleneckComparison,
    ChannelMix,
    ConvVsDense,
    Count,
    MultiFilter,
    bottleneck_comparison,
    conv_param_count,
    conv_rows,
    conv_vs_dense,
    conv_vs_dense_shapes,
    dense_param_count,
    macs_conv,
    mix_channels,
    multi_filter,
)
from cnnviz.core.lab.display import (
    DISPLAY_RULES,
    display_rule,
    image_to_float,
    sample_image,
    to_uint8,
)
from cnnviz.core.lab.growth import DEMO_STACKS, RFPoint, StackLayer, rf_growth, rf_stack
from cnnviz.core.lab.kernels import (
    KERNEL_PRESETS,
    RGB_FILTERS,
    KernelPreset,
    RGBFilter,
    kernel_centre,
    kernel_from_json,
    kernel_from_rows,
    resolve_kernel,
)

__all__ = [
    "BottleneckComparison",
    "ChannelMix",
    "ConvVsDense",
    "Count",
    "DEMO_STACKS",
    "DISPLAY_RULES",
    "IntPair",
    "KERNEL_PRESETS",
    "KernelPreset",
    "MAX_STEPS",
    "MultiFilter",
    "PADDING_MODES",
    "RGB_FILTERS",
    "RGBFilter",
    "RFPoint",
    "StackLayer",
    "Step",
    "StepThrough",
    "axis_formula",
    "bottleneck_comparison",
    "conv_param_count",
    "conv_rows",
    "conv_vs_dense",
    "conv_vs_dense_shapes",
    "convolve",
    "dense_param_count",
    "display_rule",
    "image_to_float",
    "kernel_centre",
    "kernel_from_json",
    "kernel_from_rows",
    "macs_conv",
    "mix_channels",
    "multi_filter",
    "output_size",
    "output_size_formula",
    "pad_image",
    "pool",
    "resolve_kernel",
    "rf_growth",
    "rf_stack",
    "sample_image",
    "step_windows",
    "to_uint8",
]
