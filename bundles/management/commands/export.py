"""`manage.py export [--output FILE]`: every script and live polling job as one JSON bundle."""

from __future__ import annotations

import os
from pathlib import Path

from django.core.management.base import CommandError

from bundles.services import bundle_dumps, bundle_export
from teckochecker.cli import TeckoCommand, one_line


class Command(TeckoCommand):
    help = (
        "Write every script and every active or paused polling job as one JSON bundle (secrets by "
        "name only, never their values) to stdout or FILE. `manage.py import` reads it back."
    )

    def add_arguments(self, parser):
        parser.add_argument("--output", "-o", metavar="FILE", help="Write to FILE (replaced in one step).")

    def handle(self, *args, output: str | None = None, **options):
        bundle = bundle_export()
        text = bundle_dumps(bundle)
        if output in (None, "-"):
            self.stdout.write(text, ending="")
            return
        write_atomically(Path(output), text)
        self.success(
            f"✓ Exported {len(bundle['scripts'])} script(s) and {len(bundle['jobs'])} job(s) to {output}"
        )


def write_atomically(path: Path, text: str) -> None:
    """A reader of `path` sees the old file or the whole new one, never half of it."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        temporary.write_text(text, encoding="utf-8")
        os.replace(temporary, path)
    except OSError as exc:
        temporary.unlink(missing_ok=True)
        raise CommandError(f"--output: cannot write '{one_line(path)}': {exc.strerror or exc}.") from None
