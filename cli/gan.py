"""Generation commands: ``gan train``, ``gan finetune``, ``gan sample``, ``gan interpolate``,
``gan evaluate``."""

from __future__ import annotations

import dataclasses
import json

import click

from kerastl.gan.config import IMAGE_SIZES, LOSSES, GanConfig
from kerastl_cli.main import cli
from kerastl_cli.train import RATE, run_options, scale_options, selection_options


#: GanConfig's defaults: the options show (and get) the library's own.
GAN = {field.name: field.default for field in dataclasses.fields(GanConfig)}


@cli.group()
def gan() -> None:
    """A DCGAN: train, adapt to a few images, sample, interpolate, evaluate (FID/KID)."""


def gan_training_options(command):
    """Options shared by ``gan train`` and ``gan finetune``."""
    for option in reversed([
        click.option("--epochs", type=click.IntRange(min=1), default=GAN["epochs"]),
        click.option("--steps-per-epoch", type=click.IntRange(min=1),
                     help="Steps per epoch [default: one pass over the images, or "
                          "--min-epoch-images if a pass is shorter]."),
        click.option("--min-epoch-images", type=click.IntRange(min=0),
                     default=GAN["min_epoch_images"],
                     help="A small folder's epoch still shows D and G this many images "
                          "(a DCGAN needs hundreds of steps before its samples differ; 0: one "
                          "pass)."),
        click.option("--batch-size", type=click.IntRange(min=1), default=GAN["batch_size"]),
        click.option("--d-lr", type=RATE, default=GAN["d_lr"], help="Discriminator Adam rate."),
        click.option("--g-lr", type=RATE, default=GAN["g_lr"], help="Generator Adam rate."),
        click.option("--loss", type=click.Choice(LOSSES), default=GAN["loss"]),
        click.option("--ema-decay", type=click.FloatRange(0, 1), default=GAN["ema_decay"],
                     help="Generator weight average used for sampling (0: off)."),
        click.option("--diffaugment", default=GAN["diffaugment"],
                     help="DiffAugment policies for every image D sees: auto (all three), "
                          "none, or some of 'color,translation,cutout'."),
        click.option("--ada-target", type=click.FloatRange(0, 1), default=GAN["ada_target"],
                     help="Adaptive augmentation: apply the policies with a probability that "
                          "rises only while D calls more than this share of real images real "
                          "(0: augment every image)."),
        click.option("--jit-compile/--no-jit-compile", default=GAN["jit_compile"],
                     help="XLA."),
    ]):
        command = option(command)
    return selection_options(run_options("gan-dcganSIZE-TIME")(scale_options(command)))


@gan.command("train")
@click.argument("data")
@click.option("--image-size", type=click.Choice([str(s) for s in IMAGE_SIZES]),
              default=str(GAN["image_size"]))
@click.option("--channels", type=click.Choice(["1", "3"]),
              help="[default: 1 if every image is gray, else 3]")
@click.option("--latent-dim", type=click.IntRange(min=2), default=GAN["latent_dim"])
@click.option("--width", type=click.IntRange(min=4), default=GAN["width"],
              help="Discriminator's first-block filters (doubling per block); the "
                   "generator mirrors it.")
@click.option("--spectral-norm", is_flag=True, help="Spectral normalisation in the "
              "discriminator.")
@click.option("--conditional", is_flag=True, help="Class-conditional: each image's class "
              "(its sub-folder) enters the generator and a projection discriminator; sample "
              "then takes --class or --per-class.")
@gan_training_options
@click.pass_context
def train(ctx: click.Context, data, image_size, channels, **options) -> None:
    """Train a DCGAN from scratch on the images of DATA.

    \b
    Example:
      kerastl gan train fashion_mnist --classes 0-8 --epochs 5 --width 32
    """
    from kerastl.gan.train import run_gan

    config = GanConfig(data=data, image_size=int(image_size),
                       channels=int(channels) if channels else None,
                       verbose=ctx.obj["fit_verbose"], **options)
    _summarise(run_gan(config))


@gan.command("finetune")
@click.argument("run", type=click.Path(exists=True))
@click.argument("data")
@click.option("--freeze-d", type=click.IntRange(min=0), default=GAN["freeze_d"],
              help="FreezeD: freeze the lowest N discriminator blocks.")
@click.option("--d-from", type=click.Path(exists=True),
              help="Seed the discriminator's blocks from a classifier run on the "
                   "kerastl_small backbone (recognition -> generation).")
@gan_training_options
@click.pass_context
def finetune(ctx: click.Context, run, data, **options) -> None:
    """Adapt the GAN of RUN to the (few) images of DATA.

    \b
    Example (100 images of one class, FreezeD on two blocks):
      kerastl gan finetune runs/gan-9classes fashion_mnist --classes 9 --limit 100 \\
          --freeze-d 2 --epochs 50 --batch-size 32
    """
    from kerastl.gan.train import run_gan

    config = GanConfig(data=data, init=run, job="gan-finetune",
                       verbose=ctx.obj["fit_verbose"], **options)
    _summarise(run_gan(config))


@gan.command("resume")
@click.argument("run", type=click.Path(exists=True, file_okay=False))
@click.option("--epochs", type=click.IntRange(min=1),
              help="Train up to this many epochs in all [default: the run's own].")
def resume(run, epochs) -> None:
    """Continue the GAN run RUN from its last saved epoch (both optimizers' states included)."""
    from kerastl.gan.train import resume_gan

    _summarise(resume_gan(run, epochs))


@gan.command("sample")
@click.argument("run", type=click.Path(exists=True))
@click.option("--n", "count", type=click.IntRange(min=1), default=64)
@click.option("--class", "class_name", help="A conditional GAN: samples of this class "
              "[default: every class in turn].")
@click.option("--per-class", type=click.IntRange(min=1),
              help="A conditional GAN: N samples of every class, as --out/CLASS/*.png (a "
                   "data folder for finetune).")
@click.option("--seed", type=int, default=GAN["seed"], help="Seeds the latent batch.")
@click.option("--out", required=True, type=click.Path(),
              help="A grid PNG, or with --separate or --per-class a folder of PNGs.")
@click.option("--separate", is_flag=True, help="One PNG per sample.")
@click.option("--overwrite", is_flag=True)
def sample(run, count, class_name, per_class, seed, out, separate, overwrite) -> None:
    """Draw samples from the GAN of RUN.

    \b
    Example (a data folder of 100 samples per class, from a --conditional run):
      kerastl gan sample runs/gan-fashion --per-class 100 --out generated/
    """
    from kerastl.gan.sampling import sample as draw, sample_folders

    if per_class:
        counts = sample_folders(run, per_class, out, seed, overwrite)
        click.echo(f"Wrote {sum(counts.values())} samples in {len(counts)} class folders "
                   f"under {out}")
        return
    paths = draw(run, count, out, seed, separate, overwrite, class_name)
    click.echo(f"Wrote {len(paths)} file(s): {paths[0]}{' ...' if len(paths) > 1 else ''}")


@gan.command("interpolate")
@click.argument("run", type=click.Path(exists=True))
@click.option("--steps", type=click.IntRange(min=2), default=10)
@click.option("--rows", type=click.IntRange(min=1), default=4)
@click.option("--seed", type=int, default=0)
@click.option("--out", required=True, type=click.Path(dir_okay=False))
@click.option("--overwrite", is_flag=True)
def interpolate(run, steps, rows, seed, out, overwrite) -> None:
    """Walk the latent space between random points (spherical interpolation)."""
    from kerastl.gan.sampling import interpolate as walk

    click.echo(f"Wrote {walk(run, out, steps, rows, seed, overwrite)}")


@gan.command("evaluate")
@click.argument("run", type=click.Path(exists=True))
@click.option("--real", help="Data spec of the real images for FID/KID (narrowed by "
              "--classes, --per-class, --limit).")
@click.option("--n", "count", type=click.IntRange(min=2), default=2048,
              help="Samples (and real images) to compare.")
@click.option("--extractor", default="inception",
              help="inception (ImageNet weights, downloaded), efficientnetlite0 (ImageNet "
                   "features offline; not comparable with Inception FID) or a kerastl "
                   "classifier run (domain FID).")
@click.option("--classifier", type=click.Path(exists=True),
              help="A conditional GAN: the share of each class's samples this classifier "
                   "run labels as that class.")
@click.option("--seed", type=int, default=0)
@selection_options
def evaluate(run, real, count, extractor, classifier, seed, classes, per_class,
             limit) -> None:
    """FID and KID of the GAN of RUN against real images (--real), and for a conditional GAN
    whether each class's samples are that class (--classifier)."""
    from kerastl.gan.sampling import evaluate as score

    click.echo(json.dumps(score(run, real, count, extractor, seed, classes, per_class, limit,
                                classifier), indent=2))


def _summarise(result) -> None:
    final = result.metrics.get("final", {})
    figures = ", ".join(f"{k} {final[k]:.3f}" for k in ("d_loss", "g_loss", "d_real", "d_fake")
                        if k in final)
    click.echo(f"Last epoch: {figures}; {result.metrics.get('steps_per_second')} steps/s")
    click.echo(f"Samples: {result.run_dir / 'plots' / 'samples_final.png'}. Run: "
               f"{result.run_dir}")
