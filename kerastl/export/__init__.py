"""Export a trained classifier: SavedModel for TF Serving, TFLite (LiteRT), ONNX.

Every export is checked against the Keras model on real images where they are
at hand and writes ``export_report.json``.
"""

from kerastl.export.exporter import FORMATS, ExportResult, export_model

__all__ = ["FORMATS", "ExportResult", "export_model"]
