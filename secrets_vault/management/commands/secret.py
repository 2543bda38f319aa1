"""`manage.py secret add|list|delete|rotate-keys`: the encrypted credentials jobs refer to by name."""

from __future__ import annotations

import getpass

from django.core.management.base import CommandError

from secrets_vault import selectors, services
from secrets_vault.api import SecretSerializer
from secrets_vault.models import SecretType
from teckochecker.cli import TeckoCommand, cell, fmt_time, table

UNREADABLE_MARK = "⚠ unreadable"


class Command(TeckoCommand):
    help = "Add, list and delete stored secrets (OpenAI API keys, Keboola tokens) and rotate their key."

    def add_arguments(self, parser) -> None:
        sub = parser.add_subparsers(dest="action", required=True, metavar="{add,list,delete,rotate-keys}")

        add = sub.add_parser("add", help="Store a new secret. Without --value you are asked for it (hidden).")
        add.add_argument("--name", required=True, help="Unique name jobs use to refer to the secret.")
        add.add_argument(
            "--type", required=True, metavar="{" + ",".join(SecretType.values) + "}", help="Kind of secret."
        )
        add.add_argument(
            "--value",
            help="The secret itself; '-' reads it from stdin. Prefer the prompt: a value given here "
            "ends up in your shell history.",
        )

        listing = sub.add_parser("list", help="Show stored secrets (never their values).")
        listing.add_argument(
            "--json", dest="as_json", action="store_true", help="Print JSON instead of a table."
        )

        delete = sub.add_parser("delete", help="Delete a secret no active or paused job uses.")
        delete.add_argument("name", help="Name of the secret.")
        delete.add_argument("--force", action="store_true", help="Do not ask for confirmation.")

        sub.add_parser(
            "rotate-keys",
            help="Re-encrypt every secret with the first FERNET_KEYS key; afterwards older keys can go.",
        )

    def handle(self, *args, action: str, **options) -> None:
        {
            "add": self.add,
            "list": self.list,
            "delete": self.delete,
            "rotate-keys": self.rotate_keys,
        }[action](**options)

    def add(self, *, name: str, type: str, value: str | None, **_) -> None:
        secret = services.secret_create(name=name, type=type, value=self.read_value(value))
        self.success(f"✓ Secret '{secret.name}' added (ID: {secret.pk})")

    def read_value(self, value: str | None) -> str:
        if value == "-":
            return self.stdin.read()
        if value is not None:
            return value
        try:
            first = getpass.getpass("Enter secret value: ")
            second = getpass.getpass("Confirm secret value: ")
        except EOFError:
            raise CommandError("No value given.") from None
        if first != second:
            raise CommandError("The two values do not match; nothing was stored.")
        return first

    def list(self, *, as_json: bool, **_) -> None:
        secrets = selectors.secret_list()
        unreadable = selectors.unreadable_secret_ids()
        if as_json:
            rows = SecretSerializer(secrets, many=True).data
            for row in rows:
                row["readable"] = row["id"] not in unreadable
            self.write_json({"secrets": rows, "total": len(rows)})
            return
        if not secrets:
            self.stdout.write("No secrets stored yet. Add one with `manage.py secret add`.")
            return
        t = table("Stored Secrets", ["ID", "Name", "Type", "Created At", "Used By"])
        for s in secrets:
            name = f"{s.name}  {UNREADABLE_MARK}" if s.pk in unreadable else s.name
            used_by = ", ".join(str(job_id) for job_id in s.used_by)
            t.add_row(cell(s.pk), cell(name), cell(s.type), cell(fmt_time(s.created_at)), cell(used_by))
        self.render(t)
        if unreadable:
            names = ", ".join(s.name for s in secrets if s.pk in unreadable)
            self.stdout.write(
                f"⚠ No configured FERNET_KEYS key decrypts: {names}. Restore the old key in FERNET_KEYS "
                "or delete and re-add these secrets."
            )

    def delete(self, *, name: str, force: bool, **_) -> None:
        secret = services.secret_get_by_name(name=name)
        if not force and not self.confirm(f"Are you sure you want to delete secret '{secret.name}'?"):
            raise CommandError("Not confirmed; nothing was deleted (use --force to skip the question).")
        services.secret_delete(secret=secret)
        self.success(f"✓ Secret '{secret.name}' deleted")

    def rotate_keys(self, **_) -> None:
        result = services.secret_rotate_keys()
        count = len(result.rotated)
        self.success(f"✓ Re-encrypted {count} secret{'s' if count != 1 else ''} with the newest key")
        if result.unreadable:
            raise CommandError(
                f"{len(result.unreadable)} secret(s) could not be decrypted with any configured key and "
                f"were left as they are: {', '.join(result.unreadable)}"
            )
