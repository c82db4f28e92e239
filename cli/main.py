"""The ``kerastl`` command: a thin click layer over the library.

Commands parse options, call ``kerastl``, and print. TensorFlow is imported only
inside the commands that train or load a model, so ``kerastl --help`` is instant.
"""

from __future__ import annotations

import logging
import sys

import click

from kerastl import __version__
from kerastl.errors import KerastlError


class KerastlGroup(click.Group):
    """Turns a :class:`KerastlError` into ``Error: <message>`` and exit code 1."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except KerastlError as error:
            click.secho(f"Error: {error}", err=True, fg="red")
            sys.exit(1)


@click.group(cls=KerastlGroup, context_settings={"help_option_names": ["-h", "--help"],
                                                 "show_default": True})
@click.version_option(__version__, prog_name="kerastl")
@click.option("-v", "--verbose", count=True, help="More output (-vv for debug logs).")
@click.option("-q", "--quiet", is_flag=True, help="Only warnings, errors and the final summary.")
@click.pass_context
def cli(ctx: click.Context, verbose: int, quiet: bool) -> None:
    """Transfer learning for images with Keras 3 and TensorFlow.

    Start with 'kerastl quickstart'. Data is a folder with one sub-folder per
    class (or train/ val/ test/ folders of those), tfds:NAME[:SPLIT],
    fashion_mnist, or sample (shipped with kerastl).
    """
    level = logging.WARNING if quiet else (logging.DEBUG if verbose > 1 else logging.INFO)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))
    logger = logging.getLogger("kerastl")
    logger.handlers[:] = [handler]
    logger.setLevel(level)
    logger.propagate = False
    ctx.obj = {"fit_verbose": 0 if quiet else None}


def main() -> None:
    cli(prog_name="kerastl")


# The command modules attach themselves to ``cli``; imported last, after ``cli`` exists.
from kerastl_cli import deploy, edit, gan, info, train, use  # noqa: E402,F401
