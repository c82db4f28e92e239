"""``kerastl export``: SavedModel for TF Serving, TFLite, ONNX, checked against Keras."""

from __future__ import annotations

import json

import click

from kerastl_cli.main import cli

FORMATS = ("savedmodel", "tflite", "onnx")
QUANTIZATIONS = ("none", "dynamic", "float16", "int8")


@cli.command("export")
@click.argument("model", type=click.Path(exists=True))
@click.option("--format", "format_", type=click.Choice(FORMATS), default="savedmodel")
@click.option("--quantize", type=click.Choice(QUANTIZATIONS), default="none",
              help="TFLite only: dynamic-range, float16 or full-integer (int8) quantization.")
@click.option("--int8-io", is_flag=True, help="With int8: uint8 input and output tensors.")
@click.option("--exact-hard-swish", is_flag=True,
              help="With int8: keep TFLite's HARD_SWISH op (MobileNetV3) instead of a form "
                   "XNNPACK runs in int8: closer to Keras, much slower on CPU.")
@click.option("--float-ops", type=click.IntRange(min=0), default=0,
              help="With int8: keep this many ops in float, those whose int8 output strays "
                   "most from float (measured on calibration images): closer to Keras at "
                   "nearly the same size.")
@click.option("--name", help="Model name under --out [default: the run's name].")
@click.option("--version", "version", type=click.IntRange(min=1),
              help="Version number [default: the next free integer].")
@click.option("--data", help="Images for int8 calibration and the parity check when the "
              "run's own data is not at hand (a bare .keras file).")
@click.option("--out", type=click.Path(file_okay=False), default="saved_models")
@click.option("--check-images", type=click.IntRange(min=1), default=64,
              help="Validation images to compare the export with Keras on.")
def export(model, format_, quantize, int8_io, exact_hard_swish, float_ops, name, version, data,
           out, check_images) -> None:
    """Export MODEL (a run directory or .keras file) and check it against Keras.

    \b
    SavedModel: saved_models/NAME/VERSION/, signatures serving_default (encoded
    image bytes) and predict_pixels (float32 pixels), a model card and a TF
    Serving warm-up request. TFLite/ONNX: saved_models/NAME/NAME-vVERSION.tflite.
    Each export writes an export report: size, max difference and top-1
    agreement with Keras, latency per image.
    """
    from kerastl.export import export_model

    result = export_model(model, format_, quantize, name, version, data, out, check_images,
                          int8_io, exact_hard_swish, float_ops)
    report = result.report
    click.echo(json.dumps(report, indent=2))
    click.echo(f"\nExported version {result.version}: {result.path}")
    if "top1_agreement" in report:
        largest = report["max_abs_diff"]
        click.echo(f"Top-1 agreement with Keras {report['top1_agreement']:.1%} on "
                   f"{report['check_images']} images ({report['check_images_from']}); "
                   + (f"max |diff| {largest:.2e}" if largest is not None else
                      f"{report['non_finite_rows']} export output(s) NOT FINITE"))
    else:
        click.echo(f"Colour parameters: max |diff| from Keras {report['params_max_abs_diff']:.2e} "
                   f"on {report['check_images']} images ({report['check_images_from']})")
