"""How the command line fails: one line on stderr for anything, never a traceback.

``Commands`` is the CLI's click group: its ``invoke`` runs every command and turns any
exception that is not already a reason for the user (a ClickException, an exit, Ctrl+C)
into ``Unexpected``: one line, the traceback kept in the log (core/errors.py), printed too
with ``--debug`` or ``HITL_DEBUG=1``. ``Refused`` carries a refused file's bad lines, listed
one a line under its one-line reason. ``cli.main`` prints both.
"""

from __future__ import annotations

import os
import sys
import traceback
from pathlib import Path

import click

from hitl_desktop.core.wording import count


def one_line(text: str) -> str:
    return " ".join(part.strip() for part in str(text).splitlines() if part.strip())


class Refused(click.ClickException):
    """Bad input refused: the one-line reason, and the bad lines listed under it (one each)."""

    def __init__(self, message: str, lines: list[str] | None = None) -> None:
        super().__init__(message)
        self.lines = list(lines or [])

    def show(self, file=None) -> None:  # noqa: ANN001 (click's standalone mode: as main says it)
        click.echo(f"Error: {one_line(self.format_message())}", err=file is None, file=file)
        for line in self.lines:
            click.echo(one_line(line), err=file is None, file=file)


class Unexpected(click.ClickException):
    """Any other exception (a bug), as one line; ``error`` is the exception itself."""

    def __init__(self, error: BaseException, log: Path | None, *, debug: bool) -> None:
        from hitl_desktop.core.errors import one_line

        where = f"its traceback is in {log}" if log else "run again with --debug for its traceback"
        super().__init__(f"unexpected {one_line(error)} (a bug: {where}; nothing was changed by it)")
        self.error = error
        self.debug = debug

    def show(self, file=None) -> None:  # noqa: ANN001
        if self.debug:
            traceback.print_exception(type(self.error), self.error, self.error.__traceback__, file=file or sys.stderr)
        click.echo(f"Error: {one_line(self.format_message())}", err=file is None, file=file)


def debug_wanted(argv: list[str] | None = None) -> bool:
    """``--debug`` given before the command, or ``HITL_DEBUG`` set to 1 (yes, true)."""
    if os.environ.get("HITL_DEBUG", "").strip().lower() in ("1", "yes", "true", "on"):
        return True
    ctx = click.get_current_context(silent=True)
    if ctx is not None:
        return bool(ctx.find_root().params.get("debug"))
    return "--debug" in (sys.argv[1:] if argv is None else argv)  # before the arguments were read


def unexpected(error: BaseException, argv: list[str] | None = None) -> Unexpected:
    """The one line for a bug; its traceback goes to the log (core/errors.py)."""
    from hitl_desktop.core.errors import log_traceback

    args = (sys.argv[1:] if ARGV is None else ARGV) if argv is None else argv
    log = log_traceback(error, context="hitl-desktop " + " ".join(args))
    return Unexpected(error, log, debug=debug_wanted(argv))


#: the arguments ``main`` was given (for the log), else sys.argv's
ARGV: list[str] | None = None


class Commands(click.Group):
    """The group: every command runs inside ``invoke``, which turns any exception that is not
    already a reason for the user (a ClickException, an exit, Ctrl+C) into one line."""

    def invoke(self, ctx: click.Context):  # noqa: ANN201
        try:
            return super().invoke(ctx)
        except (click.ClickException, click.exceptions.Exit, click.Abort, KeyboardInterrupt):
            raise
        except Exception as e:
            raise unexpected(e) from e


def import_refused(e) -> Refused:  # noqa: ANN001
    """An ImportFileError as the CLI says it: one line for one bad line; for several, a summary
    line and then every bad line listed (the first ``MAX_ERRORS_SHOWN``), one line each."""
    if e.total <= 1:
        return Refused(str(e))
    listed = "" if e.total == len(e.errors) else f", the first {len(e.errors)} listed"
    return Refused(f"{e.path}: {count(e.total, 'bad line')}{listed}; nothing was imported", e.lines())


