"""`manage.py apitoken create|revoke --user NAME`: API tokens for scripts (`Authorization: Token …`)."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.core.management.base import CommandError
from rest_framework.authtoken.models import Token

from teckochecker.cli import TeckoCommand


class Command(TeckoCommand):
    help = "Create (print) or revoke the API token of a staff user."

    def add_arguments(self, parser) -> None:
        sub = parser.add_subparsers(dest="action", required=True, metavar="{create,revoke}")
        create = sub.add_parser("create", help="Print the user's token, creating it if needed.")
        create.add_argument("--user", required=True, help="Username of a staff user.")
        create.add_argument(
            "--reset", action="store_true", help="Replace an existing token (the old one stops working)."
        )
        revoke = sub.add_parser("revoke", help="Delete the user's token: scripts using it get 401.")
        revoke.add_argument("--user", required=True, help="Username.")

    def handle(self, *args, action: str, user: str, **options) -> None:
        account = self.staff_user(user)
        if action == "create":
            self.create(account, reset=options["reset"])
        else:
            self.revoke(account)

    def staff_user(self, username: str):
        account = get_user_model().objects.filter(username=username).first()
        if account is None:
            raise CommandError(f"No user named '{username}'.")
        if not (account.is_active and account.is_staff):
            raise CommandError(f"User '{username}' is not an active staff user; the API only serves staff.")
        return account

    def create(self, account, *, reset: bool) -> None:
        if reset:
            Token.objects.filter(user=account).delete()
        token, _ = Token.objects.get_or_create(user=account)
        # Only the key on stdout, so `TOKEN=$(python manage.py apitoken create --user admin)` works.
        self.stdout.write(token.key)

    def revoke(self, account) -> None:
        deleted, _ = Token.objects.filter(user=account).delete()
        if deleted:
            self.stdout.write(self.style.SUCCESS(f"✓ Revoked the API token of '{account.username}'"))
        else:
            self.stdout.write(f"'{account.username}' has no API token: nothing to revoke.")
