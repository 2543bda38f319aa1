"""Who uses a secret: the registry through which apps tell the vault, so the vault imports none.

An app whose models point at `Secret` registers once, in its `AppConfig.ready()`:

    from secrets_vault.usage import SecretUsers, register

    register(SecretUsers(name="jobs", title="Active/paused jobs using it", find=..., count=...))

- `name` is a plural noun: it names the admin column (`<name>_using`) and the message
  "The type of a secret that <name> use cannot change.";
- `title` is the admin column's title;
- `find(secret_ids)` returns, for each of those secrets that the app uses, one `SecretUse`
  (secrets it does not use are left out). One query for all ids, please: the secret list calls it
  once per page;
- `count()` returns a Django expression that annotates a `Secret` queryset with how many blocking
  users each row has (the admin sorts by it), e.g.
  `Count("openai_jobs", filter=Q(openai_jobs__status__in=[...]), distinct=True)`.

The vault then refuses to delete a secret, or change its type, while any use is `blocking`,
saying "Secret 'x' is used by <description>; <advice>.", and lists every user in `used_by`.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass

from django.db.models import Expression


@dataclass(frozen=True)
class SecretUse:
    """How one app uses one secret."""

    users: list[int | str]  # who, as lists show them (`used_by`): job ids, script names; sorted
    description: str  # who, inside a sentence: "active or paused jobs 3, 5"
    advice: str  # what to do about it: "delete or finish those jobs first"
    blocking: bool = True  # forbids deleting the secret and changing its type


@dataclass(frozen=True)
class SecretUsers:
    name: str
    title: str
    find: Callable[[Collection[int]], dict[int, SecretUse]]
    count: Callable[[], Expression]


_registry: dict[str, SecretUsers] = {}


def register(users: SecretUsers) -> None:
    """Add (or, under the same name, replace) an app's users; `ready()` may run more than once."""
    _registry[users.name] = users


def registered() -> list[SecretUsers]:
    return list(_registry.values())


def secret_uses(secret_ids: Collection[int]) -> dict[int, list[SecretUse]]:
    """Every registered use of each of `secret_ids` (an id nobody uses maps to [])."""
    uses: dict[int, list[SecretUse]] = {pk: [] for pk in secret_ids}
    if uses:
        for users in _registry.values():
            for pk, use in users.find(list(uses)).items():
                uses[pk].append(use)
    return uses


def blocking_users(secret_id: int) -> list[tuple[SecretUsers, SecretUse]]:
    """The uses of one secret that forbid deleting it or changing its type, with who registered them."""
    found = []
    for users in _registry.values():
        use = users.find([secret_id]).get(secret_id)
        if use is not None and use.blocking:
            found.append((users, use))
    return found
