"""The ``kerastl`` command: a thin click layer over the library.

Commands parse options, call ``kerastl``, and print. TensorFlow is imported only
inside the commands that train or load a model, so ``kerastl --help`` is instant.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
import time

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
        _SIGNALLED.clear()
        previous = {sig: signal.signal(sig, _on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
        _start_signal_watchdog()
        try:
            result = super().invoke(ctx)
            if _SIGNALLED:  # the interrupt was raised where Python drops it (a finalizer)
                raise Terminated() if _SIGNALLED[0] == signal.SIGTERM else KeyboardInterrupt()
            return result
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
            for sig, handler in previous.items():
                signal.signal(sig, handler)


#: Signals received during the current command, in order.
_SIGNALLED: list[int] = []


def _on_signal(signum, frame):
    """Ctrl-C or SIGTERM: remembered (Python drops an exception raised inside a finalizer, and
    a command whose interrupt was dropped must still not end as a success), then raised."""
    _SIGNALLED.append(signum)
    raise Terminated() if signum == signal.SIGTERM else KeyboardInterrupt()


#: Seconds the main thread has, after SIGTERM or Ctrl-C, to end cleanly before the watchdog
#: ends the process (it may be blocked inside TensorFlow, where Python handlers never run).
SIGNAL_GRACE_SECONDS = 5.0
_WATCHDOG: list[threading.Thread] = []
_STANDALONE = False  # set by main(): kerastl is the process, not a guest in one


def _start_signal_watchdog() -> None:
    """Python runs a signal handler only when the main thread returns to the interpreter; a
    thread blocked in TensorFlow (a collective waiting for a peer) never does, so SIGTERM
    would no longer end the process. The C-level handler still writes the signal number to
    the wakeup file descriptor: a daemon thread reads it and, if the process is still alive
    after a grace period, prints the interrupt line and exits."""
    if not _STANDALONE or _WATCHDOG:  # a host process (tests, notebooks) keeps its signals
        return
    read_end, write_end = os.pipe()
    os.set_blocking(write_end, False)
    signal.set_wakeup_fd(write_end, warn_on_full_buffer=False)

    def watch():
        while True:
            received = os.read(read_end, 1)
            if received and received[0] in (signal.SIGTERM, signal.SIGINT):
                time.sleep(SIGNAL_GRACE_SECONDS)
                terminated = received[0] == signal.SIGTERM
                run = current_run()
                word = "Terminated" if terminated else "Interrupted"
                sys.stderr.write(f"{word}: " + (resume_hint(run) if run else
                                                "nothing was written") + "\n")
                sys.stderr.flush()
                os._exit(143 if terminated else 130)

    _WATCHDOG.append(threading.Thread(target=watch, name="kerastl-signals", daemon=True))
    _WATCHDOG[0].start()


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
    global _STANDALONE
    _STANDALONE = True
    cli(prog_name="kerastl")


# The command modules attach themselves to ``cli``; imported last, after ``cli`` exists.
from kerastl_cli import deploy, edit, gan, info, train, use, vae  # noqa: E402,F401
