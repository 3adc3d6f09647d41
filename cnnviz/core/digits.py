"""Temporary: the old path of the synthetic digits; imports move to cnnviz.core.training.digits."""

from cnnviz.core.training.digits import (
    DIGIT_LABELS,
    HELDOUT_FONTS,
    TRAIN_FONTS,
    DigitAugment,
    SyntheticDigits,
    digits_bytes,
    font_paths,
    fonts_dir,
    generate_digits,
    glyph_bank,
    sketch_digit,
)

__all__ = [
    "DIGIT_LABELS",
    "HELDOUT_FONTS",
    "TRAIN_FONTS",
    "DigitAugment",
    "SyntheticDigits",
    "digits_bytes",
    "font_paths",
    "fonts_dir",
    "generate_digits",
    "glyph_bank",
    "sketch_digit",
]
