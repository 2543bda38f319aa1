"""What TeckoChecker's management commands share: one-line errors, Rich tables, `--json` output.

Every command subclasses `TeckoCommand`. A domain error, a database error or an argparse
mistake then ends the command with exactly one line on stderr, `Error: <detail>`, and exit
code 1 (never a traceback unless `--traceback` is given). Under `call_command` the same
failures raise `CommandError` with the detail, as Django's own commands do.
"""

from __future__ import annotations

import argparse
import io
import json
import logging
import shutil
import sys
from collections.abc import Iterable
from datetime import datetime
from typing import TYPE_CHECKING, Any

from django.core.exceptions import ImproperlyConfigured
from django.core.management.base import BaseCommand, CommandError, CommandParser, handle_default_options
from django.core.serializers.json import DjangoJSONEncoder
from django.db import DatabaseError, connections
from django.utils import timezone

from teckochecker.errors import DomainError

if TYPE_CHECKING:
    from rich.table import Table
    from rich.text import Text
# Rich is imported where a command prints (about 4 MB): the web server imports this module for
# `fmt_time` (the admin) and never prints a table.

TIME_FORMAT = "%Y-%m-%d %H:%M:%S"

JOB_STATUS_ICONS = {
    "active": "🟢",
    "paused": "🟡",
    "completed": "✅",
    "completed_with_failures": "🟠",
    "failed": "🔴",
}
BATCH_STATUS_ICONS = {
    "completed": "✓",
    "failed": "✗",
    "expired": "✗",
    "cancelled": "✗",
    "cancelling": "⏳",
    "in_progress": "⏳",
    "finalizing": "⏳",
    "validating": "🔄",
    "pending": "🔄",
}


def one_line(text: object) -> str:
    return " ".join(str(text).split())


def error_text(exc: DomainError) -> str:
    """A domain error as one readable line: every field message (they name their subject)."""
    messages = [m for field_messages in exc.errors.values() for m in field_messages]
    if len(messages) > 1:
        return one_line(" ".join(m if m.endswith((".", "!", "?")) else f"{m}." for m in messages))
    return one_line(messages[0] if messages else exc.detail)


class CLIParser(CommandParser):
    """Argparse mistakes are errors like any other: one line, exit code 1 (argparse uses 2)."""

    def error(self, message: str):
        text = f"{message} (see '{self.prog} --help')"
        if self.called_from_command_line:
            self.exit(1, f"Error: {text}\n")
        raise CommandError(text)


def _use_cli_parser(parser: argparse.ArgumentParser) -> None:
    # BaseCommand builds a CommandParser and calls add_arguments() before we see it, so the
    # subparsers already exist; switching their class afterwards is the smallest hook.
    parser.__class__ = CLIParser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                _use_cli_parser(sub)


def _quiet_console_logging() -> None:
    # A command prints its own result; the services' INFO mirror of job events would only
    # clutter the terminal (log files keep everything; -v 2 shows it here too).
    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.StreamHandler) and not isinstance(handler, logging.FileHandler):
            handler.setLevel(max(handler.level, logging.WARNING))


class TeckoCommand(BaseCommand):
    """Base of every TeckoChecker command (see the module docstring for the error contract).

    `self.stdin` is the stream prompts read from: `call_command(..., stdin=StringIO("y\\n"))`
    in tests, sys.stdin otherwise.
    """

    stealth_options = ("stdin",)

    def create_parser(self, prog_name: str, subcommand: str, **kwargs) -> CommandParser:
        parser = super().create_parser(prog_name, subcommand, **kwargs)
        _use_cli_parser(parser)
        return parser

    def execute(self, *args, **options):
        self.stdin = options.pop("stdin", None) or sys.stdin
        try:
            return super().execute(*args, **options)
        except DomainError as exc:
            raise CommandError(error_text(exc)) from None
        except DatabaseError as exc:
            raise CommandError(f"Database error: {one_line(exc)}") from None

    def run_from_argv(self, argv: list[str]) -> None:
        # Django's own version, except for how a failure is printed and its exit code.
        self._called_from_command_line = True
        parser = self.create_parser(argv[0], argv[1])
        options = parser.parse_args(argv[2:])
        cmd_options = vars(options)
        args = cmd_options.pop("args", ())
        handle_default_options(options)
        if options.verbosity < 2:
            _quiet_console_logging()
        try:
            self.execute(*args, **cmd_options)
        except CommandError as exc:
            if options.traceback:
                raise
            self.stderr.write(f"Error: {one_line(exc)}")
            sys.exit(1)
        except KeyboardInterrupt:
            self.stderr.write("Error: interrupted.")
            sys.exit(130)
        except Exception as exc:  # a bug, not a user error: still one line, details on request
            if options.traceback:
                raise
            self.stderr.write(
                f"Error: unexpected {type(exc).__name__}: {one_line(exc)} (run again with --traceback for details)"
            )
            sys.exit(1)
        finally:
            try:
                connections.close_all()
            except ImproperlyConfigured:
                pass

    # --- output ------------------------------------------------------------------------------

    def success(self, message: str) -> None:
        self.stdout.write(self.style.SUCCESS(message))

    def render(self, *renderables: Any) -> None:
        """Print Rich tables/text to this command's stdout (so call_command can capture it)."""
        from rich.console import Console

        tty = self.stdout.isatty()
        plain = self.style.SUCCESS("x") == "x"  # Django decided against colour (--no-color, no tty)
        width = shutil.get_terminal_size((120, 24)).columns if tty else 120
        console = Console(
            file=io.StringIO(),
            force_terminal=tty,
            no_color=plain,
            width=width,
            highlight=False,
            emoji=False,  # user text such as ":smile:" in a job name stays as typed
        )
        for renderable in renderables:
            console.print(renderable)
        self.stdout.write(console.file.getvalue(), ending="")

    def write_json(self, data: Any) -> None:
        self.stdout.write(json.dumps(data, indent=2, cls=DjangoJSONEncoder, ensure_ascii=False))

    def confirm(self, question: str) -> bool:
        """Ask `question [y/N]: ` and read one line; no input (EOF, no stdin) means no."""
        self.stdout.write(f"{question} [y/N]: ", ending="")
        self.stdout.flush()
        try:
            answer = self.stdin.readline()
        except (OSError, ValueError):  # no usable stdin (closed, or captured by pytest)
            answer = ""
        if not answer.endswith("\n"):
            self.stdout.write("")
        return answer.strip().lower() in {"y", "yes"}


# --- argparse types ----------------------------------------------------------------------------


def positive_id(raw: str) -> int:
    """Argparse type for an object id: a positive whole number."""
    text = raw.strip()
    if not text.isdigit() or int(text) == 0:
        raise argparse.ArgumentTypeError(f"ID must be a positive whole number (got '{one_line(raw)}')")
    return int(text)


def whole_number(raw: str) -> int:
    try:
        return int(raw.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a whole number (got '{one_line(raw)}')") from None


# --- formatting --------------------------------------------------------------------------------


def fmt_time(value: datetime | None, empty: str = "-") -> str:
    """A time in the configured TIME_ZONE as `YYYY-MM-DD HH:MM:SS`."""
    if value is None:
        return empty
    return timezone.localtime(value).strftime(TIME_FORMAT)


def fmt_job_status(status: str) -> str:
    return f"{JOB_STATUS_ICONS.get(status, '•')} {status}"


def fmt_batch_status(status: str) -> str:
    return f"{BATCH_STATUS_ICONS.get(status, '•')} {status}"


def fmt_duration(seconds: float) -> str:
    """`2 hours 15 minutes`, `3 days 4 hours`, `45 seconds`."""
    seconds = int(seconds)
    parts = []
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        count, seconds = divmod(seconds, size)
        if count:
            parts.append(f"{count} {unit}{'s' if count != 1 else ''}")
    if not parts:
        return f"{seconds} second{'s' if seconds != 1 else ''}"
    return " ".join(parts[:2])


def cell(value: object) -> Text:
    """A table cell shown literally (user text is never read as Rich markup)."""
    from rich.text import Text

    return Text("-" if value is None or value == "" else str(value))


def table(title: str | None, columns: Iterable[str], *, show_header: bool = True) -> Table:
    from rich import box
    from rich.table import Table

    t = Table(title=title, box=box.ROUNDED, show_header=show_header, header_style="bold", title_style="bold")
    for column in columns:
        t.add_column(column)
    return t


def details_table(title: str, rows: Iterable[tuple[str, object]]) -> Table:
    """A two-column key/value table like the user guide's `job show` and `status`."""
    from rich.text import Text

    t = table(title, ["Field", "Value"], show_header=False)
    t.columns[0].style = "bold"
    for key, value in rows:
        t.add_row(key, value if isinstance(value, Text) else cell(value))
    return t
