"""Data specs, loading, splits and the tf.data pipeline."""

from kerastl.data.bundle import DataBundle, load_data
from kerastl.data.images import BadImage, SkippedFiles, load_image
from kerastl.data.imageset import ImageSet, parse_classes

__all__ = ["DataBundle", "ImageSet", "BadImage", "SkippedFiles", "load_data", "load_image",
           "parse_classes"]
