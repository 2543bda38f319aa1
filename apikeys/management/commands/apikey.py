"""`manage.py apikey create|list|revoke`: API keys for remote use (`Authorization: Bearer …`)."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.core.management.base import CommandError

from apikeys import selectors, services
from apikeys.api import apikey_representation
from apikeys.models import ApiKeyScope
from teckochecker.cli import TeckoCommand, cell, fmt_time, table


class Command(TeckoCommand):
    help = "Create, list and revoke API keys (the key is printed once, when it is created)."

    def add_arguments(self, parser) -> None:
        sub = parser.add_subparsers(dest="action", required=True, metavar="{create,list,revoke}")
        create = sub.add_parser(
            "create", help="Make a key and print it once (only the key on stdout, so KEY=$(...) works)."
        )
        create.add_argument("--name", required=True, help="What the key is for, e.g. 'deploy hook'.")
        create.add_argument("--user", required=True, help="The staff user the key acts as.")
        create.add_argument(
            "--scope",
            default=ApiKeyScope.TRIGGER,
            metavar="{" + ",".join(ApiKeyScope.values) + "}",
            help="scripts:trigger (default): only trigger scripts; full: the whole API.",
        )
        create.add_argument(
            "--script", help="scripts:trigger: the one script (ID or safe name); default all."
        )
        create.add_argument("--expires", help="A date (2027-01-31), a date-time, or a span: 30d, 12h, 8w.")
        create.add_argument("--json", dest="as_json", action="store_true", help="Print JSON (with the key).")

        listing = sub.add_parser("list", help="Show keys: prefix, scope, state, last use (never the keys).")
        listing.add_argument("--active", action="store_true", help="Leave out revoked keys.")
        listing.add_argument("--json", dest="as_json", action="store_true", help="Print JSON.")

        revoke = sub.add_parser("revoke", help="Revoke a key at once: requests with it get 401.")
        revoke.add_argument("key", help="The key's ID or prefix (as `apikey list` shows them).")
        revoke.add_argument("--json", dest="as_json", action="store_true", help="Print JSON.")

    def handle(self, *args, action: str, **options) -> None:
        {"create": self.create, "list": self.list, "revoke": self.revoke}[action](**options)

    def create(self, *, name, user, scope, script, expires, as_json, **_) -> None:
        owner = get_user_model().objects.filter(username=user).first()
        if owner is None:
            raise CommandError(f"No user named '{user}'.")
        target = None
        if script:
            from scripts.services import script_get_by_ref

            target = script_get_by_ref(ref=script)
        key, raw = services.apikey_create(
            name=name, owner=owner, scope=scope, script=target, expires_at=expires
        )
        if as_json:
            self.write_json({**apikey_representation(key), "key": raw})
            return
        self.stderr.write(
            self.style.SUCCESS(f"✓ API key '{key.name}' created (ID: {key.pk}, prefix {key.prefix}).")
            + " Copy it now: it is never shown again."
        )
        self.stdout.write(raw)

    def list(self, *, active, as_json, **_) -> None:
        keys = selectors.apikey_list(include_revoked=not active)
        if as_json:
            self.write_json({"keys": [apikey_representation(k) for k in keys], "total": len(keys)})
            return
        if not keys:
            self.stdout.write("No API keys yet. Make one with `manage.py apikey create`.")
            return
        t = table(
            "API keys", ["ID", "Name", "Prefix", "Scope", "Script", "Owner", "State", "Expires", "Last used"]
        )
        for k in keys:
            t.add_row(
                cell(k.pk),
                cell(k.name),
                cell(f"{k.prefix}…"),
                cell(k.scope),
                cell(k.script.slug if k.script_id else ("(all)" if k.scope == ApiKeyScope.TRIGGER else "")),
                cell(k.owner.get_username()),
                cell(k.state()),
                cell(fmt_time(k.expires_at, "never")),
                cell(fmt_time(k.last_used_at, "never")),
            )
        self.render(t)

    def revoke(self, *, key, as_json, **_) -> None:
        revoked = services.apikey_revoke(key=services.apikey_get_by_ref(ref=key))
        if as_json:
            self.write_json(apikey_representation(revoked))
            return
        self.success(f"✓ API key '{revoked.name}' ({revoked.prefix}…) revoked")
