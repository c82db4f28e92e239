"""VAE commands: ``vae train``, ``finetune``, ``resume``, ``sample``, ``reconstruct``,
``interpolate``, ``edit``, ``evaluate``."""

from __future__ import annotations

import dataclasses
import json

import click

from kerastl.vae.config import IMAGE_SIZES, LIKELIHOODS, VaeConfig
from kerastl_cli.main import cli
from kerastl_cli.output import print_table
from kerastl_cli.train import RATE, run_options, scale_options, selection_options

#: VaeConfig's defaults: the options show (and get) the library's own.
VAE = {field.name: field.default for field in dataclasses.fields(VaeConfig)}
IMAGES = click.argument("images", nargs=-1, required=True,
                        type=click.Path(exists=True, dir_okay=False))


@cli.group()
def vae() -> None:
    """A VAE: train, adapt to a few images, resume, sample, reconstruct, interpolate, edit
    through the latent space, evaluate (negative ELBO, IWAE, PSNR, FID/KID).

    Images of any size are resized to the model's side on the way in; what comes out is at
    the model's side."""


def vae_training_options(command):
    """Options shared by ``vae train`` and ``vae finetune``."""
    for option in reversed([
        click.option("--epochs", type=click.IntRange(min=1), default=VAE["epochs"]),
        click.option("--batch-size", type=click.IntRange(min=1), default=VAE["batch_size"]),
        click.option("--lr", type=RATE, default=VAE["lr"], help="Adam's rate."),
        click.option("--beta", type=click.FloatRange(min=0), default=VAE["beta"],
                     help="Weight of the KL term (1: the ELBO; above 1: beta-VAE)."),
        click.option("--kl-warmup", type=click.IntRange(min=0), default=VAE["kl_warmup"],
                     help="Epochs over which the KL weight rises linearly from 0 to --beta."),
        click.option("--likelihood", type=click.Choice(LIKELIHOODS),
                     default=VAE["likelihood"],
                     help="bernoulli (binary cross-entropy) or gaussian."),
        click.option("--sigma", type=click.FloatRange(min=0, min_open=True),
                     help="The Gaussian's fixed scale in [0, 1] pixel units "
                          "[default: learned]."),
        click.option("--val-fraction", type=click.FloatRange(0, 0.5),
                     default=VAE["val_fraction"],
                     help="Held out to pick the epoch of lowest negative ELBO."),
        click.option("--patience", type=click.IntRange(min=1),
                     help="Stop after this many epochs without a better validation ELBO "
                          "[default: never]."),
        click.option("--encoder-from", type=click.Path(exists=True),
                     help="Seed the encoder's blocks from a classifier run on the "
                          "kerastl_small backbone (recognition -> generation)."),
        click.option("--jit-compile/--no-jit-compile", default=VAE["jit_compile"],
                     help="XLA."),
    ]):
        command = option(command)
    return selection_options(run_options("vae-vaeSIZE-TIME")(scale_options(command)))


@vae.command("train")
@click.argument("data")
@click.option("--image-size", type=click.Choice([str(s) for s in IMAGE_SIZES]),
              default=str(VAE["image_size"]))
@click.option("--channels", type=click.Choice(["1", "3"]),
              help="[default: 1 if every image is gray, else 3]")
@click.option("--latent-dim", type=click.IntRange(min=1), default=VAE["latent_dim"])
@click.option("--width", type=click.IntRange(min=4), default=VAE["width"],
              help="Encoder's first-block filters (doubling per block); the decoder "
                   "mirrors it.")
@click.option("--conditional", is_flag=True,
              help="The class enters encoder and decoder: sample by class (--class, "
                   "--per-class), edit by swapping the label.")
@vae_training_options
@click.pass_context
def train(ctx: click.Context, data, image_size, channels, **options) -> None:
    """Train a VAE from scratch on the images of DATA.

    \b
    Example:
      kerastl vae train fashion_mnist --image-size 28 --epochs 10 --kl-warmup 2
    """
    from kerastl.vae.train import run_vae

    config = VaeConfig(data=data, image_size=int(image_size),
                       channels=int(channels) if channels else None,
                       verbose=ctx.obj["fit_verbose"], **options)
    _summarise(run_vae(config))


@vae.command("finetune")
@click.argument("run", type=click.Path(exists=True))
@click.argument("data")
@vae_training_options
@click.pass_context
def finetune(ctx: click.Context, run, data, **options) -> None:
    """Adapt the VAE of RUN to the (few) images of DATA.

    \b
    Example (100 images of one class):
      kerastl vae finetune runs/vae-9classes fashion_mnist --classes 9 --limit 100 --epochs 20
    """
    from kerastl.vae.train import run_vae

    config = VaeConfig(data=data, init=run, job="vae-finetune",
                       verbose=ctx.obj["fit_verbose"], **options)
    _summarise(run_vae(config))


@vae.command("resume")
@click.argument("run", type=click.Path(exists=True, file_okay=False))
def resume(run) -> None:
    """Continue the VAE run RUN from its last completed epoch."""
    from kerastl.vae.train import resume_vae

    _summarise(resume_vae(run))


@vae.command("sample")
@click.argument("run", type=click.Path(exists=True))
@click.option("--n", "count", type=click.IntRange(min=1), default=64)
@click.option("--class", "class_name", help="A conditional model: samples of this class "
              "[default: every class in turn].")
@click.option("--per-class", type=click.IntRange(min=1),
              help="A conditional model: N samples of every class, as --out/CLASS/*.png (a "
                   "data folder for finetune).")
@click.option("--seed", type=int, default=0, help="Seeds the latent batch.")
@click.option("--out", required=True, type=click.Path(),
              help="A grid PNG, or with --per-class a folder.")
@click.option("--overwrite", is_flag=True)
def sample(run, count, class_name, per_class, seed, out, overwrite) -> None:
    """Draw samples from the prior through the decoder of RUN."""
    from kerastl.vae.latent import sample as draw, sample_folders

    if per_class:
        counts = sample_folders(run, per_class, out, seed, overwrite)
        click.echo(f"Wrote {sum(counts.values())} samples in {len(counts)} class folders "
                   f"under {out}")
        return
    click.echo(f"Wrote {draw(run, count, out, seed, overwrite, class_name)}")


@vae.command("reconstruct")
@click.argument("run", type=click.Path(exists=True))
@IMAGES
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False),
              help="Folder for NAME.png per image and reconstructions.png.")
@click.option("--class", "class_name", help="The images' class (a conditional model).")
@click.option("--overwrite", is_flag=True, help="Replace existing files in --out.")
def reconstruct(run, images, out_dir, class_name, overwrite) -> None:
    """Encode IMAGES and decode them again (posterior mean)."""
    from kerastl.vae.latent import reconstruct as through

    _written(through(run, images, out_dir, overwrite, class_name))


@vae.command("interpolate")
@click.argument("run", type=click.Path(exists=True))
@click.argument("images", nargs=-1, type=click.Path(exists=True, dir_okay=False))
@click.option("--steps", type=click.IntRange(min=2), default=10)
@click.option("--rows", type=click.IntRange(min=1), default=4,
              help="Walks between random points (without IMAGES).")
@click.option("--linear", is_flag=True, help="Linear instead of spherical interpolation.")
@click.option("--seed", type=int, default=0)
@click.option("--out", required=True, type=click.Path(dir_okay=False))
@click.option("--overwrite", is_flag=True)
def interpolate(run, images, steps, rows, linear, seed, out, overwrite) -> None:
    """Walk the latent space between two IMAGES, or between random points: a grid PNG."""
    from kerastl.vae.latent import interpolate as walk

    path = walk(run, out, files=images, steps=steps, rows=rows, seed=seed,
                spherical=not linear, overwrite=overwrite)
    click.echo(f"Wrote {path}")


@vae.command("edit")
@click.argument("run", type=click.Path(exists=True))
@IMAGES
@click.option("--data", help="Data spec whose classes --from and --to name (their mean "
              "latents); a conditional model needs none: it swaps the label.")
@click.option("--from", "source_class", required=True, help="The class the images are.")
@click.option("--to", "target_class", required=True, help="The class to move them towards.")
@click.option("--amount", type=float, default=1.0,
              help="How far along the difference of the two class means (0: the "
                   "reconstruction).")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False),
              help="Folder for NAME.png per image and before_after.png.")
@click.option("--overwrite", is_flag=True, help="Replace existing files in --out.")
def edit(run, images, data, source_class, target_class, amount, out_dir, overwrite) -> None:
    """Edit IMAGES through the latent space: from class --from towards class --to.

    \b
    Example:
      kerastl vae edit runs/vae-fashion shirt.png --data fashion_mnist \\
          --from 6 --to 0 --amount 0.5 --out edited/
    """
    from kerastl.vae.latent import edit as move

    _written(move(run, images, out_dir, data=data, source_class=source_class,
                  target_class=target_class, amount=amount, overwrite=overwrite))


@vae.command("evaluate")
@click.argument("run", type=click.Path(exists=True))
@click.option("--data", required=True, help="Data spec to score (its test split if it has "
              "one, else its images).")
@click.option("--iw-samples", type=click.IntRange(min=0), default=64,
              help="Samples per image for the IWAE bound (0: skip it).")
@click.option("--extractor", help="FID/KID of samples: inception, efficientnetlite0 (ImageNet "
              "features offline) or a kerastl classifier run [default: skip].")
@click.option("--n", "count", type=click.IntRange(min=2), default=2048,
              help="Samples (and real images) for FID/KID.")
@click.option("--classifier", type=click.Path(exists=True),
              help="A conditional model: the share of each class's samples this classifier "
                   "run labels as that class.")
@click.option("--batch-size", type=click.IntRange(min=1), default=64)
@click.option("--seed", type=int, default=0)
@selection_options
def evaluate(run, data, iw_samples, extractor, count, classifier, batch_size, seed,
             **selection) -> None:
    """Negative ELBO and IWAE bound (nats per image), PSNR of reconstructions, FID/KID, and
    per-class accuracy of a conditional model's samples."""
    from kerastl.vae.evaluate import evaluate_vae

    click.echo(json.dumps(evaluate_vae(run, data, batch_size=batch_size,
                                       iw_samples=iw_samples, seed=seed, extractor=extractor,
                                       samples=count, classifier=classifier, **selection),
                          indent=2))


def _written(done) -> None:
    print_table([{"image": str(item.source), "output": str(item.output)} for item in done])


def _summarise(result) -> None:
    figures = result.metrics.get("val") or result.metrics.get("final", {})
    shown = ", ".join(f"{k} {figures[k]:.2f}" for k in ("neg_elbo", "nll", "kl", "psnr")
                      if k in figures)
    click.echo(f"Kept epoch {result.metrics.get('best_epoch')}: {shown} (nats per image)")
    click.echo(f"Samples: {result.run_dir / 'plots' / 'samples_final.png'}. Run: "
               f"{result.run_dir}")
