"""`manage.py import FILE [--dry-run] [--json]`: apply a bundle completely or not at all."""

from __future__ import annotations

import json

from django.core.management.base import CommandError

from bundles.services import BundleInvalid, bundle_import
from scripts.management.commands.script import cli_author, read_text
from teckochecker.cli import TeckoCommand, cell, one_line, table

ACTION_STYLE = {"create": "+ create", "update": "~ update", "unchanged": "= unchanged", "skip": "- skip"}


class Command(TeckoCommand):
    help = (
        "Import a bundle written by `manage.py export`: scripts are matched by safe name, jobs by "
        "name; existing ones are updated, never duplicated. Everything is checked first; any error "
        "imports nothing. FILE '-' reads stdin."
    )

    def add_arguments(self, parser):
        parser.add_argument("file", metavar="FILE", help="The bundle (JSON); '-' for stdin.")
        parser.add_argument("--dry-run", action="store_true", help="Show what would change; write nothing.")
        parser.add_argument("--json", action="store_true", dest="as_json", help="Print the report as JSON.")

    def handle(self, *args, file: str, dry_run: bool = False, as_json: bool = False, **options):
        bundle = read_bundle(file, stdin=self.stdin)
        try:
            report = bundle_import(bundle=bundle, dry_run=dry_run, author=f"{cli_author()} import")
        except BundleInvalid as exc:
            # A bundle can have many problems: one line each on stdout, like a report, and the
            # usual single `Error:` line on stderr.
            for place, messages in exc.errors.items():
                for message in messages:
                    self.stdout.write(f"  {place}: {one_line(message)}")
            raise CommandError(exc.detail.split(". ", 1)[0] + ".") from None
        if as_json:
            self.write_json(report.as_dict())
            return
        rows = table(None, ["kind", "name", "action", "changes"])
        for item in report.items:
            changes = ", ".join(item.fields) if item.fields else item.note
            rows.add_row(item.kind, cell(item.key), ACTION_STYLE[item.action], cell(changes))
        if report.items:
            self.render(rows)
        self.success(("✓ " if report.changed and not dry_run else "") + report.summary())


def read_bundle(path: str, *, stdin) -> object:

    text = read_text(path, "FILE", stdin=stdin)
    try:
        return json.loads(text)
    except ValueError as exc:
        raise CommandError(f"'{one_line(path)}' is not JSON: {exc}.") from None
