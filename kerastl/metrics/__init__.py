"""Metrics: classification reports (and, later, FID / KID)."""

from kerastl.metrics.classification import classification_report

__all__ = ["classification_report"]
