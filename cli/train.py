"""Training commands: ``finetune``, ``pretrain``, ``quickstart``."""

from __future__ import annotations

import dataclasses

import click

from kerastl.backbones import REGISTRY, get_spec
from kerastl.compute import JIT_SETTINGS, PRECISIONS
from kerastl.transfer.config import DEFAULT_BACKBONE, HEAD_INITS, SELECT_MODES, FinetuneConfig
from kerastl.errors import KerastlError
from kerastl.data.pipeline import AUGMENTATIONS
from kerastl.distribute import STRATEGIES
from kerastl.settings import RunSettings
from kerastl.task import PRIMARY
from kerastl.transfer.recipes import RECIPES
from kerastl.transfer.schedule import SCHEDULES
from kerastl.quickstart import DEFAULTS as QUICKSTART
from kerastl_cli.main import cli
from kerastl_cli.output import print_table


class BackboneName(click.ParamType):
    """A registered backbone, under its registry name or the spelling of
    ``keras.applications`` (``InceptionV3``, ``inception_v3``, ``mobilenet_v3_small``)."""

    name = "backbone"

    def get_metavar(self, param, ctx=None) -> str:
        return "[" + "|".join(REGISTRY) + "]"

    def convert(self, value, param, ctx):
        if value is None:
            return None
        try:
            return get_spec(value).name
        except KerastlError as exc:
            self.fail(str(exc), param, ctx)


BACKBONE_CHOICE = BackboneName()
#: FinetuneConfig's defaults: every training option shows (and gets) the library's own.
DEFAULT = {field.name: field.default for field in dataclasses.fields(FinetuneConfig)}
#: A learning rate: a number above 0.
RATE = click.FloatRange(min=0, min_open=True)


def selection_options(command):
    """--classes, --per-class, --limit: the same on every command that reads a data spec."""
    for option in reversed([
        click.option("--classes", help="Keep only these classes: names or indices, "
                     "'0-4' or 'cat,dog'."),
        click.option("--per-class", type=click.IntRange(min=1),
                     help="At most N images of each class (seeded)."),
        click.option("--limit", type=click.IntRange(min=1),
                     help="At most N images in all (seeded)."),
    ]):
        command = option(command)
    return command


def data_options(command):
    """Options that choose and split the data."""
    for option in reversed([
        click.option("--val-fraction", type=click.FloatRange(0, 0.9),
                     default=DEFAULT["val_fraction"],
                     help="Share of each class held out for validation when the data "
                          "has no val/ split; 0 trains on everything and keeps the last "
                          "epoch (no early stopping)."),
        click.option("--image-size", type=click.IntRange(min=8),
                     help="Side in pixels [default: the backbone's default, or a "
                          "pretrained run's size]."),
    ]):
        command = option(command)
    return selection_options(command)


def training_options(command):
    """Options every training command shares."""
    for option in reversed([
        click.option("--batch-size", type=click.IntRange(min=1), default=DEFAULT["batch_size"]),
        click.option("--lr", type=RATE, default=DEFAULT["lr"],
                     help="Adam learning rate (the head's "
                     "rate while the backbone is frozen)."),
        click.option("--augment", type=click.Choice(AUGMENTATIONS), default=DEFAULT["augment"],
                     help="Augmentation preset from Keras core layers."),
        click.option("--mixup", is_flag=True, help="MixUp batches (one-hot labels)."),
        click.option("--cutmix", is_flag=True, help="CutMix batches (one-hot labels)."),
        click.option("--label-smoothing", type=click.FloatRange(0, 0.5),
                     default=DEFAULT["label_smoothing"],
                     help="Label smoothing (one-hot labels with categorical cross-entropy)."),
        click.option("--class-weight", type=click.Choice(["none", "balanced"]), default="none",
                     help="balanced: weigh each class by n / (classes x its count)."),
        click.option("--weight-decay", type=click.FloatRange(0), default=DEFAULT["weight_decay"],
                     help="Decoupled weight decay (AdamW instead of Adam)."),
        click.option("--dropout", type=click.FloatRange(0, 0.95), default=DEFAULT["dropout"],
                     help="Dropout before the classification layer."),
        click.option("--bn-momentum", type=click.FloatRange(0, 1),
                     help="BatchNorm momentum [default: 0.9 from scratch, the "
                          "backbone's own otherwise]."),
        click.option("--patience", type=click.IntRange(min=1), default=DEFAULT["patience"],
                     help="Early stopping: epochs without a better --select metric, per phase."),
        click.option("--select", type=click.Choice(list(SELECT_MODES)), default=DEFAULT["select"],
                     help="The epoch kept: highest validation accuracy, or lowest validation "
                          "loss (smoother with a few validation images)."),
        click.option("--jit-compile", type=click.Choice(JIT_SETTINGS),
                     default=DEFAULT["jit_compile"],
                     help="XLA. auto: on with a GPU or TPU, off on CPUs (measured slower "
                          "or level there for every backbone and size, see docs/benchmarks.md)."),
        click.option("--precision", type=click.Choice(PRECISIONS), default=DEFAULT["precision"],
                     help="Mixed precision (the output layer stays float32); "
                          "mixed_bfloat16 is slow on CPUs without bfloat16 units."),
        click.option("--feature-cache/--no-feature-cache", default=DEFAULT["feature_cache"],
                     help="Frozen phase without augmentation: compute backbone features "
                          "once and train the head on them."),
    ]):
        command = option(command)
    return run_options("JOB-BACKBONE-TIME")(scale_options(command))


#: RunSettings' defaults, which every trainer's config shares.
RUN = {field.name: field.default for field in dataclasses.fields(RunSettings)}


def run_options(default_name: str):
    """--seed, --deterministic, --runs-dir, --name, --overwrite: the same on every training
    command (``default_name`` shows how a run directory is named without --name)."""
    def decorate(command):
        for option in reversed([
            click.option("--seed", type=int, default=RUN["seed"],
                         help="Seeds Python, NumPy, TensorFlow and Keras: the weights, the "
                              "split, the data order and every random draw."),
            click.option("--deterministic/--no-deterministic", default=RUN["deterministic"],
                         help="TensorFlow op determinism: the same seed repeats a run "
                              "exactly."),
            click.option("--runs-dir", type=click.Path(file_okay=False),
                         default=RUN["runs_dir"]),
            click.option("--name", help=f"Run directory name [default: {default_name}]."),
            click.option("--overwrite", is_flag=True,
                         help="Replace an existing run directory."),
        ]):
            command = option(command)
        return command
    return decorate


def _make_devices(ctx, param, value):
    """CPU devices named by --devices must exist before TensorFlow starts, which is now."""
    from kerastl._tf import request_cpu_devices

    request_cpu_devices(value)
    return value


def scale_options(command):
    """Where the job runs (every training command): ``tf.distribute`` strategy and devices."""
    for option in reversed([
        click.option("--strategy", type=click.Choice(STRATEGIES), default="auto",
                     help="tf.distribute strategy. auto: mirrored over 2+ GPUs, else one "
                          "device. multiworker reads TF_CONFIG (run the same command on "
                          "every machine)."),
        click.option("--devices", callback=_make_devices,
                     help="Devices for mirrored, e.g. gpu:0,gpu:1 [default: every GPU]; "
                          "cpu:0,cpu:1 splits the CPU in two (for trying multi-device runs)."),
        click.option("--scale-lr", is_flag=True, help="Multiply the learning rates by the "
                     "number of replicas (the batch size given is global)."),
    ]):
        command = option(command)
    return command


def schedule_options(command):
    """The backbone and its freeze-then-unfreeze schedule (finetune, multitask)."""
    for option in reversed([
        click.option("--backbone", type=BACKBONE_CHOICE, default=None,
                     help="Registered backbone (see 'kerastl backbones') [default: "
                          f"{DEFAULT_BACKBONE}, or the one in a --weights run]."),
        click.option("--weights", default=DEFAULT["weights"],
                     help="imagenet, none, a .weights.h5 file, or a 'kerastl pretrain' run "
                          "directory."),
        click.option("--frozen-epochs", type=click.IntRange(min=0),
                     default=DEFAULT["frozen_epochs"],
                     help="Phase 1: epochs with the backbone frozen (head only)."),
        click.option("--finetune-epochs", type=click.IntRange(min=0),
                     default=DEFAULT["finetune_epochs"],
                     help="Phase 2: epochs with the top of the backbone unfrozen."),
        click.option("--finetune-lr", type=RATE,
                     help="Phase-2 learning rate [default: --lr / 10]."),
        click.option("--unfreeze", default=DEFAULT["unfreeze"],
                     help="What phase 2 unfreezes: all, N layers, a fraction (0.25), or "
                          "Kblocks."),
        click.option("--train-bn", is_flag=True,
                     help="BatchNorm in unfrozen blocks trains (scale, offset, batch "
                          "statistics)."),
        click.option("--schedule", type=click.Choice(SCHEDULES),
                     default=DEFAULT["schedule"],
                     help="Rate within each phase: cosine (10%% warm-up, "
                     "then cosine decay), onecycle, or constant."),
        click.option("--group-factor", type=click.FloatRange(min=1.0),
                     default=DEFAULT["group_factor"],
                     help="Discriminative rates: each lower block group trains this many "
                          "times slower (ULMFiT: 2.6; 1: one rate)."),
        click.option("--gradual", is_flag=True,
                     help="Gradual unfreezing: one more block group per epoch of phase 2."),
        click.option("--head-init", type=click.Choice(HEAD_INITS), default=DEFAULT["head_init"],
                     help="How the classification layer starts. centroids: from the class "
                          "centroids of the training images' features (imprinting; strong "
                          "with a few labels per class on pretrained features), kept unless "
                          "an epoch validates better; works with 0 epochs too."),
        click.option("--recipe", type=click.Choice(tuple(RECIPES)),
                     help="fine_tune (fastai): frozen epochs then all unfrozen at lr/2, "
                          "one-cycle, rates down to lr/100 at the lowest group. "
                          "backbone_finetuning (Lightning): unfreeze at epoch "
                          "--frozen-epochs, backbone rate from lr/10 up to lr, x1.5 per "
                          "epoch."),
    ]):
        command = option(command)
    return command


@cli.command()
@click.argument("data", required=False)
@schedule_options
@data_options
@training_options
@click.option("--config", "config_path", type=click.Path(exists=True, dir_okay=False),
              help="Repeat a run from its config.json; options given here override it.")
@click.option("--resume", "resume_dir", type=click.Path(exists=True, file_okay=False),
              help="Continue an interrupted run from its last completed epoch.")
@click.pass_context
def finetune(ctx: click.Context, data, config_path, resume_dir, **options) -> None:
    """Finetune a backbone on DATA: frozen backbone first, then unfreeze its top.

    \b
    Examples:
      kerastl finetune photos/ --backbone resnet50 --weights imagenet --image-size 160
      kerastl finetune sample --weights runs/my-pretrain --classes 5-9 --per-class 20
      kerastl finetune --config runs/finetune-resnet50-20261128-101010/config.json
      kerastl finetune --resume runs/finetune-resnet50-20261128-101010
    """
    from kerastl.transfer.finetune import FinetuneConfig, config_from_file, resume_finetune, \
        run_finetune

    if resume_dir:
        _summarise(resume_finetune(resume_dir))
        return
    given = _given_options(ctx, options)
    if data is not None:
        given["data"] = data
    if config_path:
        config = config_from_file(config_path, **given)
    elif data is None:
        raise click.UsageError("give DATA, or --config to repeat an earlier run")
    else:
        config = FinetuneConfig(data=data, **options)
    config.verbose = ctx.obj["fit_verbose"]
    _summarise(run_finetune(config))


@cli.command()
@click.argument("data")
@click.option("--head", "heads", multiple=True, required=True,
              help="An extra head: NAME=MAPPING_FILE[:LOSS_WEIGHT]; the file maps each class "
                   "of DATA to the head's label (JSON object or CSV class,label). Repeatable.")
@schedule_options
@data_options
@training_options
@click.pass_context
def multitask(ctx: click.Context, data, heads, **options) -> None:
    """Train one shared backbone with DATA's classes and extra heads together.

    \b
    Example (clothes vs. footwear as a second head on Fashion-MNIST):
      kerastl multitask sample --head group=groups.json:0.5 --backbone kerastl_small \\
          --weights none --image-size 32
    """
    from kerastl.transfer.finetune import FinetuneConfig, run_finetune

    config = FinetuneConfig(data=data, heads=list(heads), job="multitask",
                            verbose=ctx.obj["fit_verbose"], **options)
    _summarise(run_finetune(config))


@cli.command()
@click.argument("data")
@click.option("--backbone", type=BACKBONE_CHOICE, default="kerastl_small")
@click.option("--weights", default="none",
              help="none trains from scratch; imagenet or a file continues pretraining.")
@data_options
@click.option("--epochs", type=click.IntRange(min=1), default=10)
@training_options
@click.pass_context
def pretrain(ctx: click.Context, data, epochs, **options) -> None:
    """Train a backbone on a source dataset and keep it for transfer.

    The run directory holds backbone.keras and backbone.json; later,
    'kerastl finetune TARGET --weights runs/NAME' starts from it.

    \b
    Example (the backbone kerastl quickstart ships):
      kerastl pretrain sample --classes 0-4 --backbone kerastl_small --image-size 32 \\
          --epochs 20 --seed 0 --name sample_backbone
    """
    from kerastl.transfer.finetune import FinetuneConfig, run_finetune

    config = FinetuneConfig(data=data, frozen_epochs=0, finetune_epochs=epochs, job="pretrain",
                            save_backbone=True, verbose=ctx.obj["fit_verbose"], **options)
    result = run_finetune(config)
    _summarise(result)
    click.echo(f"Backbone: {result.run_dir / 'backbone.keras'} "
               f"(finetune with --weights {result.run_dir})")


@cli.command()
@click.option("--per-class", type=click.IntRange(min=1), default=QUICKSTART["per_class"],
              help="Target labels per class.")
@click.option("--frozen-epochs", type=click.IntRange(min=0),
              default=QUICKSTART["frozen_epochs"])
@click.option("--finetune-epochs", type=click.IntRange(min=0),
              default=QUICKSTART["finetune_epochs"])
@click.option("--seed", type=int, default=QUICKSTART["seed"])
@click.option("--runs-dir", type=click.Path(file_okay=False), default="runs")
@click.pass_context
def quickstart(ctx: click.Context, **options) -> None:
    """Transfer from ImageNet, offline, in about a minute: few labels, three runs.

    EfficientNet-Lite0 with Google's ImageNet weights is finetuned on the
    sample's footwear, shirts and bags (classes 5-9) from --per-class labels
    each, its head first set from the class centroids of its features
    (--head-init centroids), and compared with the same network trained from
    scratch with the same budget, and with kerastl's small backbone pretrained
    on the sample's clothes.
    """
    from kerastl.quickstart import quickstart as run_quickstart

    click.echo("kerastl quickstart: EfficientNet-Lite0 from ImageNet on footwear, shirts and "
               f"bags ({options['per_class']} labels per class), against the same network "
               "from scratch")
    result = run_quickstart(verbose=ctx.obj["fit_verbose"], **options)
    click.echo()
    print_table(result.rows())
    gain = result.transfer.metrics["test"]["accuracy"] - result.scratch.metrics["test"]["accuracy"]
    click.echo(f"\nTransfer gain from ImageNet: {gain:+.3f} test accuracy over the same network "
               "from scratch.")
    click.echo(f"Plots: {result.transfer.run_dir / 'plots'}")
    click.echo(f"Next: kerastl predict {result.transfer.run_dir} IMAGE... | "
               f"kerastl evaluate {result.transfer.run_dir} DATA")


def _given_options(ctx: click.Context, options: dict) -> dict:
    """The options typed on the command line (not defaults), for --config overrides."""
    source = click.core.ParameterSource.COMMANDLINE
    return {key: value for key, value in options.items()
            if ctx.get_parameter_source(key) == source}


def _summarise(result) -> None:
    rows = []
    for split in ("val", "test"):
        if split in result.metrics:
            m = result.metrics[split]
            rows.append({"split": split, "head": PRIMARY, "images": m["n"],
                         "accuracy": m["accuracy"], "top5": m.get("top5_accuracy"),
                         "macro_f1": m["macro_f1"]})
            rows.extend({"split": split, "head": name, "images": h["n"],
                         "accuracy": h["accuracy"], "top5": h.get("top5_accuracy"),
                         "macro_f1": h["macro_f1"]} for name, h in m.get("heads", {}).items())
    click.echo()
    print_table(rows)
    best = result.metrics["best_epoch"]
    kept = f"Best epoch {best}" if best else "Kept the imprinted head (no epoch validated better)"
    click.echo(f"\n{kept}; run directory: {result.run_dir}")
    click.echo(f"Plots: {result.run_dir / 'plots'}")




@cli.command("lr-find")
@click.argument("data")
@schedule_options
@data_options
@training_options
@click.option("--steps", type=click.IntRange(min=5), default=100, help="Batches in the sweep.")
@click.option("--start-lr", type=RATE, default=1e-7)
@click.option("--end-lr", type=RATE, default=10.0)
@click.option("--plot", type=click.Path(dir_okay=False), default="lr_find.png",
              help="Where the loss-vs-rate plot goes.")
def lr_find(data, steps, start_lr, end_lr, plot, **options) -> None:
    """Sweep the learning rate exponentially and suggest one (the model is left untouched).

    It sweeps the first phase of the run these options describe: the head on a
    frozen backbone when transferring, every layer with --weights none.
    """
    from kerastl.transfer.finetune import FinetuneConfig
    from kerastl.transfer.lr_find import lr_find as sweep

    result = sweep(FinetuneConfig(data=data, **options), steps, start_lr,
                   end_lr, plot)
    click.echo(f"Swept {len(result.rates)} rates from {result.rates[0]:.1e} to "
               f"{result.rates[-1]:.1e}. Suggested --lr {result.suggestion:.2g} "
               f"(steepest fall of the loss). Plot: {result.plot}")
