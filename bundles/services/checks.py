"""Import, first step: the bundle's structure and the secrets it names, checked before any write."""

from __future__ import annotations

from bundles.services.export import ACTION_KEYS, FORMAT, JOB_KEYS, JOB_NOTIFY_KEYS, SCRIPT_KEYS, VERSION
from polling.models import ActionType
from secrets_vault.models import Secret
from teckochecker.errors import DomainError


class Problems:
    def __init__(self) -> None:
        self.by_place: dict[str, list[str]] = {}
        self.failed: set[str] = set()  # items (labels) not to apply

    def add(self, place: str, message: str, *, item: str | None = None) -> None:
        self.by_place.setdefault(place, []).append(message)
        if item is not None:
            self.failed.add(item)

    def add_service(self, item: str, exc: DomainError, paths: dict[str, str]) -> None:
        errors = exc.errors or {"non_field_errors": [exc.detail]}
        for name, messages in errors.items():
            place = item if name == "non_field_errors" else f"{item}.{paths.get(name, name)}"
            for message in messages:
                self.add(place, message, item=item)


def _label(kind: str, index: int, item: object, key: str) -> str:
    value = item.get(key) if isinstance(item, dict) else None
    return f"{kind}[{value.strip()}]" if isinstance(value, str) and value.strip() else f"{kind}[{index}]"


def _check_keys(place: str, value: dict, allowed: tuple[str, ...], errors: Problems, item: str) -> None:
    for key in sorted(set(value) - set(allowed)):
        errors.add(f"{place}.{key}", f"Unknown key; known keys are: {', '.join(allowed)}.", item=item)


def _items(bundle: dict, kind: str, key: str, errors: Problems) -> list[tuple[str, dict]]:
    raw = bundle.get(kind, [])
    if not isinstance(raw, list):
        errors.add(kind, f"'{kind}' must be a list.")
        return []
    out, seen = [], set()
    for index, item in enumerate(raw):
        label = _label(kind, index, item, key)
        if not isinstance(item, dict):
            errors.add(label, "Each item must be a JSON object.", item=label)
            continue
        value = item.get(key)
        if not isinstance(value, str) or not value.strip():
            errors.add(f"{label}.{key}", f"Each item needs its '{key}' (a non-empty string).", item=label)
            continue
        if value.strip() in seen:
            errors.add(label, f"Listed twice: '{value.strip()}' must appear once.", item=label)
            continue
        seen.add(value.strip())
        out.append((label, item))
    return out


def _check_job(label: str, item: dict, errors: Problems) -> None:
    _check_keys(label, item, JOB_KEYS, errors, label)
    if "paused" in item and not isinstance(item["paused"], bool):
        errors.add(f"{label}.paused", "'paused' must be true or false.", item=label)
    if not isinstance(item.get("openai_secret"), str) or not item["openai_secret"].strip():
        errors.add(
            f"{label}.openai_secret", "Name the OpenAI secret the job reads its batches with.", item=label
        )
    notify = item.get("notify", {})
    if not isinstance(notify, dict):
        errors.add(
            f"{label}.notify",
            'notify must be an object: {"emails": [...], "webhook_url": "..."}.',
            item=label,
        )
    else:
        _check_keys(f"{label}.notify", notify, JOB_NOTIFY_KEYS, errors, label)
    action = item.get("action")
    if not isinstance(action, dict) or action.get("type") not in ACTION_KEYS:
        errors.add(
            f"{label}.action.type",
            f"The action must be an object whose 'type' is one of: {', '.join(ACTION_KEYS)}.",
            item=label,
        )
        return
    _check_keys(f"{label}.action", action, ACTION_KEYS[action["type"]], errors, label)
    if action["type"] == ActionType.KEBOOLA and not isinstance(action.get("secret"), str):
        errors.add(
            f"{label}.action.secret", "Name the Keboola secret the action runs the job with.", item=label
        )
    if action["type"] == ActionType.SCRIPT and not isinstance(action.get("script"), str):
        errors.add(f"{label}.action.script", "Name the script (its safe name) the action runs.", item=label)
    if "secret" in action and action["secret"] is not None and not isinstance(action["secret"], str):
        errors.add(f"{label}.action.secret", "A secret is named by its name (a string).", item=label)


def _secret_uses(scripts: list[tuple[str, dict]], jobs: list[tuple[str, dict]]) -> dict[str, list[tuple]]:
    """{secret name: [(item label, place)]} for every secret the bundle names."""
    uses: dict[str, list[tuple]] = {}
    for label, item in scripts:
        env = item.get("env")
        for var in env if isinstance(env, list) else []:
            if isinstance(var, dict) and isinstance(var.get("secret"), str) and var["secret"].strip():
                place = f"{label}.env.{var.get('name')}"
                uses.setdefault(var["secret"].strip(), []).append((label, place))
    for label, item in jobs:
        if isinstance(item.get("openai_secret"), str):
            uses.setdefault(item["openai_secret"].strip(), []).append((label, f"{label}.openai_secret"))
        action = item.get("action")
        if isinstance(action, dict) and isinstance(action.get("secret"), str):
            uses.setdefault(action["secret"].strip(), []).append((label, f"{label}.action.secret"))
    return uses


def _nul_places(value: object, place: str) -> list[str]:
    """Where a NUL character hides in keys or text: no stored text can hold one, and PostgreSQL
    refuses it even in a lookup, so it is refused before any query."""
    if isinstance(value, str):
        return [place or "non_field_errors"] if "\x00" in value else []
    if isinstance(value, list):
        return [p for i, v in enumerate(value) for p in _nul_places(v, f"{place}[{i}]")]
    if isinstance(value, dict):
        found = []
        for key, v in value.items():
            sub = f"{place}.{key}" if place else str(key)
            found += [sub] if "\x00" in str(key) else _nul_places(v, sub)
        return found
    return []


def bundle_check(bundle: object, errors: Problems) -> tuple[list[tuple[str, dict]], list[tuple[str, dict]]]:
    if not isinstance(bundle, dict):
        errors.add("non_field_errors", "A bundle is a JSON object (what `manage.py export` writes).")
        return [], []
    if bundle.get("format") != FORMAT:
        errors.add("format", f"This is not a TeckoChecker bundle: 'format' must be '{FORMAT}'.")
        return [], []
    version = bundle.get("version")
    if isinstance(version, bool) or not isinstance(version, int):
        errors.add("version", f"'version' must be a whole number; this TeckoChecker reads version {VERSION}.")
        return [], []
    if version != VERSION:
        newer = (
            " (the bundle comes from a newer TeckoChecker: upgrade this one first)"
            if version > VERSION
            else ""
        )
        errors.add(
            "version",
            f"Unsupported bundle version {version}: this TeckoChecker reads version {VERSION}{newer}.",
        )
        return [], []
    nul = _nul_places(bundle, "")
    if nul:
        for place in nul[:20]:
            errors.add(place, "Text must not contain NUL characters.")
        return [], []
    for key in sorted(set(bundle) - {"format", "version", "scripts", "jobs"}):
        errors.add(key, "Unknown key; a bundle has format, version, scripts and jobs.")
    scripts = _items(bundle, "scripts", "slug", errors)
    for label, item in scripts:
        _check_keys(label, item, SCRIPT_KEYS, errors, label)
    jobs = _items(bundle, "jobs", "name", errors)
    for label, item in jobs:
        _check_job(label, item, errors)
    uses = _secret_uses(scripts, jobs)
    found = set(Secret.objects.defer("value").filter(name__in=uses).values_list("name", flat=True))
    for name, places in sorted(uses.items()):
        if name in found:
            continue
        for label, place in places:
            errors.add(
                place,
                f"Secret '{name}' does not exist here. A bundle names secrets, never their values: "
                f"create it first (manage.py secret add --name {name} --type ...).",
                item=label,
            )
    return scripts, jobs


# --- import: applying ----------------------------------------------------------------------------
