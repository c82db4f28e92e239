"""The ``kerastl`` command: a thin click layer over the library.

Commands parse options, call ``kerastl``, and print. TensorFlow is imported only
inside the commands that train or load a model, so ``kerastl --help`` is instant.
"""

from __future__ import annotations

import logging
import signal
import sys

import click

from kerastl import __version__
from kerastl.errors import KerastlError
from kerastl.runs import current_run, disk_full, resume_hint, set_current_run


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where Python next runs so that the command ends as on Ctrl-C."""


class KerastlGroup(click.Group):
    """Turns a :class:`KerastlError` (and a full disk) into ``Error: <message>`` and exit
    code 1; an interrupt (Ctrl-C, SIGTERM) into one line naming the run and how to resume."""

    def invoke(self, ctx):
        set_current_run(None)
        previous = signal.signal(signal.SIGTERM, _raise_terminated)
        try:
            return super().invoke(ctx)
        except KerastlError as error:
            _fail(str(error))
        except KeyboardInterrupt as interrupt:
            _interrupted(interrupt)
        except Exception as exc:
            full = disk_full(exc)
            if full is None:
                raise
            _fail(str(full))
        finally:
            signal.signal(signal.SIGTERM, previous)


def _raise_terminated(signum, frame):
    raise Terminated()


def _fail(message: str) -> None:
    click.secho(f"Error: {message}", err=True, fg="red")
    sys.exit(1)


def _interrupted(interrupt: KeyboardInterrupt) -> None:
    """One line for Ctrl-C or SIGTERM; exit 130 or 143 as a shell reports those signals."""
    sys.stdout.flush()  # the last epoch's line, buffered when stdout is not a terminal
    run = current_run()
    what = "Terminated" if isinstance(interrupt, Terminated) else "Interrupted"
    click.secho(f"{what}: " + (resume_hint(run) if run else "nothing was written"),
                err=True, fg="yellow")
    sys.exit(143 if isinstance(interrupt, Terminated) else 130)


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
    handler.setLevel(level)  # quiet quiets the console, not the run's own run.log
    logger = logging.getLogger("kerastl")
    logger.handlers[:] = [handler]
    logger.setLevel(min(level, logging.INFO))
    logger.propagate = False
    ctx.obj = {"fit_verbose": 0 if quiet else None}


def main() -> None:
    cli(prog_name="kerastl")


# The command modules attach themselves to ``cli``; imported last, after ``cli`` exists.
from kerastl_cli import deploy, edit, gan, info, train, use  # noqa: E402,F401
