"""Bundled data (scikit-learn's digits, scikit-image's sample photos) and image files."""

from workbench.data.digits import DIGITS_MEAN, DIGITS_STD, load_digits32
from workbench.data.images import SAMPLE_PHOTOS, load_image, load_reference, load_sample, load_source, prepare_image

__all__ = ["DIGITS_MEAN", "DIGITS_STD", "load_digits32", "SAMPLE_PHOTOS", "load_image", "load_reference", "load_sample", "load_source",
           "prepare_image"]
