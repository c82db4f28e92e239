"""Metrics: classification reports; FID and KID of generated images against real ones."""

from kerastl.metrics.classification import classification_report
from kerastl.metrics.generative import FeatureExtractor, fid_kid, frechet_distance, \
    kernel_inception_distance

__all__ = ["FeatureExtractor", "classification_report", "fid_kid", "frechet_distance",
           "kernel_inception_distance"]
