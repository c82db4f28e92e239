"""Commands that use a trained model: ``evaluate``, ``predict``, ``explain``."""

from __future__ import annotations

import json
import os
import sys

import click

from kerastl_cli.main import cli
from kerastl_cli.output import print_table
from kerastl_cli.train import BACKBONE_CHOICE, selection_options


@cli.command()
@click.argument("model", type=click.Path(exists=True))
@click.argument("data")
@click.option("--split", type=click.Choice(["train", "val", "test"]),
              help="Split to evaluate [default: test, else val, else all images].")
@click.option("--batch-size", type=click.IntRange(min=1), default=64)
@click.option("--json", "as_json", is_flag=True, help="Print the whole report as JSON.")
@click.option("--errors", "errors_plot", type=click.Path(dir_okay=False),
              help="Save a grid of the most confident mistakes to this PNG.")
@click.option("--tta", is_flag=True,
              help="Test-time augmentation: average each image's probabilities with its "
                   "mirror image's (for models trained with mirroring).")
@click.option("--overwrite", is_flag=True, help="Replace an existing --errors file.")
@click.option("--seed", type=int, default=0, help="Seeds --per-class and --limit.")
@selection_options
def evaluate(model, data, split, batch_size, as_json, errors_plot, tta, overwrite, seed,
             classes, per_class, limit) -> None:
    """Evaluate MODEL (a run directory, .keras file or export) on DATA."""
    from kerastl.inference import evaluate as run_evaluate

    report = run_evaluate(model, data, batch_size=batch_size, split=split,
                          errors_plot=errors_plot, tta=tta, overwrite=overwrite,
                          classes=classes, per_class=per_class, limit=limit, seed=seed)
    if as_json:
        click.echo(json.dumps(report, indent=2))
        return
    click.echo(f"{data} ({report['split']}, {report['n']} images"
               f"{', mirror TTA' if tta else ''}): "
               f"accuracy {report['accuracy']:.4f}, macro F1 {report['macro_f1']:.4f}"
               + (f", top-5 {report['top5_accuracy']:.4f}" if "top5_accuracy" in report else ""))
    print_table([{"class": name, **values} for name, values in report["per_class"].items()])
    if report.get("errors_plot"):
        click.echo(f"Most confident mistakes: {report['errors_plot']}")


@cli.command()
@click.argument("inputs", nargs=-1, required=True, type=click.Path(exists=True),
                metavar="[MODEL] IMAGES...")
@click.option("--backbone", type=BACKBONE_CHOICE,
              help="No MODEL: predict ImageNet's 1,000 classes with this backbone's pretrained "
                   "network (with --weights imagenet; efficientnetlite0-2 work offline).")
@click.option("--weights", type=click.Choice(["imagenet"]), default="imagenet",
              help="With --backbone: the pretrained weights.")
@click.option("--image-size", type=click.IntRange(min=8),
              help="With --backbone: the side images are resized to [default: the backbone's].")
@click.option("--top-k", type=click.IntRange(min=1), default=3)
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@click.option("--csv", "csv_path", type=click.Path(dir_okay=False),
              help="Write file,label,probability rows to this CSV ('-' for stdout).")
@click.option("--overwrite", is_flag=True, help="Replace an existing --csv file (never an "
              "input).")
def predict(inputs, backbone, weights, image_size, top_k, as_json, csv_path, overwrite) -> None:
    """Top-k classes for IMAGES (files or folders) from MODEL (run directory, .keras or an
    export), or, with --backbone, from an ImageNet-pretrained network.

    \b
    Examples:
      kerastl predict runs/finetune-resnet50-20261128-101010 photos/ --top-k 3
      kerastl predict --backbone efficientnetlite0 --weights imagenet cat.jpg
    """
    from kerastl.inference import predict as run_predict, write_predictions

    model, images = _model_and_images(inputs, backbone, image_size)
    to_file = csv_path if csv_path not in (None, "-") else None
    results = run_predict(model, images, top_k=top_k, csv=to_file, overwrite=overwrite)
    if as_json:
        click.echo(json.dumps(results, indent=2))
    elif csv_path == "-":
        write_predictions(results, sys.stdout)
    elif to_file:
        click.echo(f"wrote {len(results)} prediction(s) to {to_file}")
    else:
        print_table([_table_row(r) for r in results])
    bad = sum("error" in r for r in results)
    if bad:
        click.echo(f"{bad} file(s) could not be read as images.", err=True)


@cli.command()
@click.argument("inputs", nargs=-1, required=True, type=click.Path(exists=True),
                metavar="[MODEL] IMAGES...")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False),
              help="Folder for NAME_gradcam.png per image and gradcam.png, a grid of all.")
@click.option("--class", "class_name", help="Explain this class instead of each image's top "
              "class.")
@click.option("--backbone", type=BACKBONE_CHOICE,
              help="No MODEL: explain this backbone's ImageNet classifier (--weights imagenet).")
@click.option("--weights", type=click.Choice(["imagenet"]), default="imagenet",
              help="With --backbone: the pretrained weights.")
@click.option("--image-size", type=click.IntRange(min=8),
              help="With --backbone: the side images are resized to [default: the backbone's].")
@click.option("--overwrite", is_flag=True, help="Replace existing files in --out (never an "
              "input).")
def explain(inputs, out_dir, class_name, backbone, weights, image_size, overwrite) -> None:
    """Grad-CAM heat maps: where in each image MODEL (a run or .keras file) finds its top
    class (or --class), over the backbone's last convolutional block, as overlays.

    \b
    Examples:
      kerastl explain runs/finetune-resnet50-20261128-101010 photos/ --out cam/
      kerastl explain --backbone efficientnetlite0 --weights imagenet cat.jpg --out cam/
    """
    from kerastl.explain import GRID_FILE, explain as run_explain

    model, images = _model_and_images(inputs, backbone, image_size)
    results, skipped = run_explain(model, images, out_dir, class_name=class_name,
                                   overwrite=overwrite)
    print_table([{"file": str(r.source), "class": r.label, "probability": r.probability,
                  "overlay": str(r.output)} for r in results])
    click.echo(f"Grid: {os.path.join(out_dir, GRID_FILE)}")
    for path, reason in skipped.items():
        click.echo(f"skipped {path}: {reason}", err=True)


def _model_and_images(inputs, backbone, image_size):
    """(MODEL, IMAGES) from the arguments, or an ImageNet classifier when --backbone."""
    if backbone:
        from kerastl.serving import load_imagenet_classifier

        return load_imagenet_classifier(backbone, image_size), inputs
    if len(inputs) < 2:
        raise click.UsageError("give MODEL and IMAGES, or --backbone NAME --weights imagenet "
                               "and IMAGES")
    return inputs[0], inputs[1:]


def _table_row(result: dict) -> dict:
    if "error" in result:
        return {"file": result["file"], "prediction": f"(skipped: {result['error']})"}
    top = result["top"]
    return {"file": result["file"], "prediction": top[0]["label"],
            "probability": top[0]["probability"],
            "others": ", ".join(f"{t['label']} {t['probability']:.2f}" for t in top[1:])}
