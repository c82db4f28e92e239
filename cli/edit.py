"""Editing commands: ``edit train-color``, ``edit color``, ``edit style``."""

from __future__ import annotations

import dataclasses

import click

from kerastl.edit.color_config import DEFAULT_SIZE, ColorConfig
from kerastl.transfer.config import DEFAULT_BACKBONE
from kerastl.transfer.schedule import SCHEDULES
from kerastl_cli.main import cli
from kerastl_cli.output import print_table
from kerastl_cli.train import BACKBONE_CHOICE, RATE, run_options, scale_options, \
    selection_options


#: ColorConfig's defaults: the options show (and get) the library's own.
COLOR = {field.name: field.default for field in dataclasses.fields(ColorConfig)}


@cli.group()
def edit() -> None:
    """Editing models built by transfer: colour correction and style transfer."""


@edit.command("train-color")
@click.argument("data", required=False)
@click.option("--backbone", type=BACKBONE_CHOICE, default=None,
              help=f"Registered backbone [default: {DEFAULT_BACKBONE}, or the one in a "
                   "--weights run].")
@click.option("--weights", default=COLOR["weights"],
              help="imagenet, none, a .weights.h5 file, or a 'kerastl pretrain' run.")
@click.option("--image-size", type=click.IntRange(min=16),
              help=f"Side the model sees [default: {DEFAULT_SIZE}, or a pretrained run's size].")
@click.option("--strength", type=click.FloatRange(0.05, 1.0), default=COLOR["strength"],
              help="Degradations are drawn within each adjustment's range times this.")
@click.option("--copies", type=click.IntRange(min=1), default=COLOR["copies"],
              help="Differently degraded copies of each image per epoch.")
@click.option("--frozen-epochs", type=click.IntRange(min=0), default=COLOR["frozen_epochs"])
@click.option("--finetune-epochs", type=click.IntRange(min=0),
              default=COLOR["finetune_epochs"])
@click.option("--lr", type=RATE, default=COLOR["lr"])
@click.option("--finetune-lr", type=RATE, help="[default: --lr / 10]")
@click.option("--unfreeze", default=COLOR["unfreeze"],
              help="What phase 2 unfreezes (as in finetune).")
@click.option("--schedule", type=click.Choice(SCHEDULES), default=COLOR["schedule"],
              help="Rate within each phase (as in finetune).")
@click.option("--patience", type=click.IntRange(min=1), default=COLOR["patience"],
              help="End a phase after this many epochs without a lower validation loss.")
@click.option("--batch-size", type=click.IntRange(min=1), default=COLOR["batch_size"])
@click.option("--image-loss-weight", type=click.FloatRange(0),
              default=COLOR["image_loss_weight"],
              help="Weight of the corrected image's Lab L1 loss beside the parameter loss.")
@click.option("--val-fraction", type=click.FloatRange(0.05, 0.9), default=COLOR["val_fraction"])
@run_options("edit-color-BACKBONE-TIME")
@click.option("--resume", "resume_dir", type=click.Path(exists=True, file_okay=False),
              help="Continue an interrupted run from its last completed epoch.")
@selection_options
@scale_options
@click.pass_context
def train_color(ctx: click.Context, data, resume_dir, **options) -> None:
    """Learn colour correction from the images in DATA (no labels needed).

    Clean images are degraded at random (temperature, tint, exposure,
    contrast, saturation, gamma); a backbone with a regression head learns
    the parameters that undo it.

    \b
    Examples:
      kerastl edit train-color photos/ --backbone mobilenetv3small --weights imagenet
      kerastl edit train-color --resume runs/edit-color-mobilenetv3small-20261201-101010
    """
    from kerastl.edit.color_train import resume_color, run_color

    if resume_dir:
        _summarise_color(resume_color(resume_dir))
        return
    if data is None:
        raise click.UsageError("give DATA, or --resume RUN to continue an interrupted run")
    _summarise_color(run_color(ColorConfig(data=data, verbose=ctx.obj["fit_verbose"],
                                           **options)))


def _summarise_color(result) -> None:
    split = "test" if "test" in result.metrics else "val"
    figures = result.metrics[split]
    print_table([{"version": v, "psnr_db": figures[v]["psnr"],
                  "ciede2000": figures[v]["ciede2000"],
                  "ciede2000_reduction": figures[v].get("ciede2000_reduction")}
                 for v in ("degraded", "baseline", "corrected")])
    click.echo(f"Held-out {split} images: {figures['images']}. Run: {result.run_dir}")


@edit.command("color")
@click.argument("run", type=click.Path(exists=True))
@click.argument("images", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False))
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False),
              help="Folder for the corrected images (same names).")
@click.option("--strength", type=click.FloatRange(0, 2), default=1.0,
              help="Scale the predicted correction (0 leaves the image as it is).")
@click.option("--overwrite", is_flag=True, help="Replace existing files in --out.")
def color(run, images, out_dir, strength, overwrite) -> None:
    """Correct the colours of IMAGES with a model from 'edit train-color'.

    The model looks at a resized copy; the correction is applied to the
    original pixels, so size, format, EXIF and ICC profile are kept.
    """
    from kerastl.edit.color_apply import correct_files

    done = correct_files(run, images, out_dir, strength=strength, overwrite=overwrite)
    print_table([{"image": str(item.output), **item.params} for item in done])


@edit.command("style")
@click.argument("content", type=click.Path(exists=True, dir_okay=False))
@click.argument("style", type=click.Path(exists=True, dir_okay=False))
@click.option("--out", required=True, type=click.Path(dir_okay=False),
              help="Output image (.png or .jpg).")
@click.option("--backbone", type=click.Choice(["vgg16", "vgg19"]), default="vgg19")
@click.option("--weights", default="imagenet",
              help="imagenet, none, a .weights.h5 file, or a kerastl run with a VGG backbone.")
@click.option("--size", type=click.IntRange(min=32), default=384,
              help="The output's longer side in pixels.")
@click.option("--steps", type=click.IntRange(min=1), default=200)
@click.option("--content-weight", type=click.FloatRange(min=0), default=1e4)
@click.option("--style-weight", type=click.FloatRange(min=0), default=1e-2)
@click.option("--tv-weight", type=click.FloatRange(min=0), default=30.0,
              help="Total-variation weight.")
@click.option("--lr", "learning_rate", type=RATE, default=0.02)
@click.option("--overwrite", is_flag=True, help="Replace --out if it exists.")
def style(content, style, out, overwrite, **settings) -> None:
    """Paint CONTENT in the style of STYLE (optimisation over VGG features).

    \b
    Example:
      kerastl edit style photo.jpg painting.jpg --out stylized.png --steps 300
    """
    from kerastl.edit.style import style_transfer

    result = style_transfer(content, style, out, overwrite=overwrite, **settings)
    first, last = result.losses[0], result.losses[-1]
    print_table([{"loss": key, "first_step": first[key], "last_step": last[key]}
                 for key in ("total", "content", "style", "tv")])
    click.echo(f"Wrote {result.output} ({result.image.shape[1]}x{result.image.shape[0]})")
