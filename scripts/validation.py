"""The one place that validates script input (API, admin and the CLI all go through services).

Each function returns the cleaned value or raises ValidationFailed with `{field: [message]}`.
"""

from __future__ import annotations

import ast
import re
import unicodedata
import zoneinfo

from django.conf import settings

from polling.validation import clean_emails, clean_name
from scripts.models import IntervalUnit, OverlapPolicy, ScheduleType
from teckochecker.errors import ValidationFailed

MAX_CODE_BYTES = 512 * 1024
MAX_REQUIREMENTS_BYTES = 64 * 1024
MAX_ENV_VARS = 100
MAX_ENV_VALUE = 10_000
SLUG_MAX = 80
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")
# Names a script may not set: the run facts we set ourselves, and what the interpreter or the
# dynamic loader would act on before the script's first line.
RESERVED_ENV_PREFIXES = ("TECKOCHECKER_", "LD_", "PYTHON")
RESERVED_ENV_NAMES = {"PATH", "HOME", "TMPDIR", "VIRTUAL_ENV"}
# The interval bounds: a one-second interval is allowed (the PRD asks for seconds); a week is
# where an interval stops making sense and cron is the tool.
INTERVAL_MAX_SECONDS = 7 * 24 * 3600
_UNIT_SECONDS = {IntervalUnit.SECONDS: 1, IntervalUnit.MINUTES: 60, IntervalUnit.HOURS: 3600}
CRON_FIELDS = ("minute", "hour", "day of month", "month", "day of week")


class CodeSyntaxError(ValidationFailed):
    """The code does not compile; `line` says where (the API answers with it)."""

    def __init__(self, detail: str, *, line: int | None):
        super().__init__(detail, errors={"code": [detail]})
        self.line = line
        self.extra = {"line": line}


def _fail(field: str, message: str):
    raise ValidationFailed.from_errors({field: [message]})


def slugify_name(name: str) -> str:
    """The PRD's safe name: lowercase, spaces to hyphens, only letters, digits and hyphens.

    "Hello World" -> "hello-world"; "API Call #1" -> "api-call-1"; accents lose their marks
    ("Café" -> "cafe"); a name with nothing usable left becomes "script".
    """
    text = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode().lower()
    text = re.sub(r"[\s_]+", "-", text.strip())
    text = re.sub(r"[^a-z0-9-]", "", text)
    text = re.sub(r"-{2,}", "-", text).strip("-")
    return text[:SLUG_MAX].strip("-") or "script"


def clean_slug(value: object) -> str:
    """A given safe name: exactly what `slugify_name` would make of itself ("hello-world")."""
    if not isinstance(value, str) or not value:
        _fail("slug", "Safe name must be a non-empty string such as 'hello-world'.")
    if slugify_name(value) != value:
        _fail(
            "slug",
            f"'{value[:100]}' is not a safe name: lower-case letters, digits and single hyphens, "
            f"at most {SLUG_MAX} characters (e.g. 'hello-world').",
        )
    return value


def clean_script_name(value: object) -> str:
    return clean_name(value)


def clean_folder(value: object) -> str:
    if value is None or value == "":
        return ""
    if not isinstance(value, str):
        _fail("folder", "Folder must be a string.")
    cleaned = value.strip().strip("/")
    if len(cleaned) > 255:
        _fail("folder", "Folder must be at most 255 characters.")
    if any(unicodedata.category(ch)[0] == "C" for ch in cleaned):
        _fail("folder", "Folder must not contain control characters.")
    if any(part in ("", ".", "..") for part in cleaned.split("/")) and cleaned:
        _fail("folder", "Folder parts must not be empty, '.' or '..'.")
    return cleaned


def clean_code(value: object) -> str:
    """The code, if it compiles. A syntax error names its line: "Line 3: invalid syntax"."""
    if not isinstance(value, str):
        _fail("code", "Code must be a string.")
    if len(value.encode("utf-8", "surrogatepass")) > MAX_CODE_BYTES:
        _fail("code", f"Code must be at most {MAX_CODE_BYTES // 1024} KiB.")
    if "\x00" in value:
        raise CodeSyntaxError("Line 1: source code cannot contain null bytes", line=1)
    try:
        ast.parse(value, filename="script.py")
    except SyntaxError as exc:
        line = exc.lineno or 1
        raise CodeSyntaxError(f"Line {line}: {exc.msg}", line=line) from None
    except (ValueError, RecursionError, MemoryError) as exc:  # e.g. absurdly deep nesting
        raise CodeSyntaxError(f"Line 1: {exc}", line=1) from None
    return value


def clean_requirements(value: object) -> str:
    """The text as typed, if every line is a valid requirement (checked before any install)."""
    if value is None:
        return ""
    if not isinstance(value, str):
        _fail("requirements", "Requirements must be a string (one requirement a line).")
    if len(value.encode("utf-8", "surrogatepass")) > MAX_REQUIREMENTS_BYTES:
        _fail("requirements", f"Requirements must be at most {MAX_REQUIREMENTS_BYTES // 1024} KiB.")
    from scripts import environments

    try:
        environments.requirements_parse(value)
    except ValidationFailed as exc:
        _fail("requirements", exc.detail)
    return value.strip() + "\n" if value.strip() else ""


def clean_python_version(value: object) -> str:
    """A version of an interpreter found on this machine ("3.12" or "3.12.1")."""
    if not isinstance(value, str) or not value.strip():
        _fail("python_version", "Python version must be a string such as '3.12'.")
    from scripts import environments

    try:
        environments.python_resolve(value.strip())
    except ValidationFailed as exc:
        _fail("python_version", exc.detail)
    # As typed: "3.12" keeps meaning the newest 3.12 found, across patch upgrades of the machine.
    return value.strip()


def default_python_version() -> str:
    from scripts import environments

    pythons = environments.pythons_available()
    if not pythons:
        _fail("python_version", "No Python interpreter (3.8 or newer) was found on this machine.")
    chosen = next((p for p in pythons if p.default), pythons[0])
    return chosen.version


def clean_limit(field: str, value: object, *, low: int, high: int, unit: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        _fail(field, f"{field} must be a whole number of {unit}.")
    if not low <= value <= high:
        _fail(field, f"{field} must be between {low} and {high} {unit} (got {value}).")
    return value


LIMITS = {
    "timeout_seconds": (1, 86400, "seconds"),
    "memory_mb": (32, 65536, "MB"),
    "cpu_seconds": (1, 86400, "seconds"),
}


def clean_bool(field: str, value: object) -> bool:
    if not isinstance(value, bool):
        _fail(field, f"{field} must be true or false.")
    return value


def clean_env(value: object) -> list[dict]:
    """[{"name", "value"} | {"name", "secret"}] -> the same, checked; secrets named, not read."""
    if value is None:
        return []
    if not isinstance(value, list):
        _fail("env", 'env must be a list of {"name": ..., "value": ...} or {"name": ..., "secret": ...}.')
    if len(value) > MAX_ENV_VARS:
        _fail("env", f"At most {MAX_ENV_VARS} environment variables.")
    cleaned, seen = [], set()
    for index, item in enumerate(value, start=1):
        if not isinstance(item, dict) or not isinstance(item.get("name"), str):
            _fail("env", f"Variable {index} must be an object with a string 'name'.")
        name = item["name"].strip()
        if not _ENV_NAME.match(name):
            _fail(
                "env", f"'{name[:40]}' is not a valid variable name (letters, digits, _; not a digit first)."
            )
        if name in RESERVED_ENV_NAMES or name.upper().startswith(RESERVED_ENV_PREFIXES):
            _fail("env", f"'{name}' is reserved; choose another name.")
        if name in seen:
            _fail("env", f"Variable '{name}' is listed twice.")
        seen.add(name)
        has_value, has_secret = "value" in item, item.get("secret") not in (None, "")
        extra = set(item) - {"name", "value", "secret"}
        if extra:
            _fail("env", f"Variable '{name}': unknown key(s) {', '.join(sorted(extra))}.")
        if has_value == has_secret:
            _fail("env", f"Variable '{name}' needs exactly one of 'value' or 'secret'.")
        if has_secret:
            if not isinstance(item["secret"], str):
                _fail("env", f"Variable '{name}': 'secret' must be the name of a vault secret.")
            cleaned.append({"name": name, "secret": item["secret"].strip()})
            continue
        raw = item["value"]
        if not isinstance(raw, str):
            _fail("env", f"Variable '{name}': 'value' must be a string.")
        if len(raw) > MAX_ENV_VALUE or "\x00" in raw:
            _fail("env", f"Variable '{name}': value must be at most {MAX_ENV_VALUE} characters, no NUL.")
        cleaned.append({"name": name, "value": raw})
    return cleaned


def clean_timezone(value: object) -> str:
    if not isinstance(value, str) or not value.strip():
        _fail("schedule.timezone", "Time zone must be a name such as 'UTC' or 'Europe/Prague'.")
    name = value.strip()
    try:
        zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        _fail("schedule.timezone", f"Unknown time zone '{name[:64]}' (use a name such as 'Europe/Prague').")
    return name


def clean_cron(value: object) -> str:
    """Five fields (minute hour day-of-month month day-of-week); the message names the bad one."""
    from celery.schedules import crontab_parser

    if not isinstance(value, str) or not value.strip():
        _fail("schedule.cron", "A cron expression is required, e.g. '0 3 * * *'.")
    parts = value.split()
    if len(parts) != 5:
        _fail(
            "schedule.cron",
            f"A cron expression has 5 fields (minute hour day-of-month month day-of-week), got {len(parts)}.",
        )
    bounds = ((60, 0), (24, 0), (31, 1), (12, 1), (7, 0))
    for part, label, (size, first) in zip(parts, CRON_FIELDS, bounds, strict=True):
        try:
            values = crontab_parser(size, first).parse(part)
        except Exception as exc:  # celery raises ValueError / ParseException with its reason
            _fail("schedule.cron", f"Cron {label} field '{part[:40]}' is invalid: {exc}")
        if not values:
            _fail("schedule.cron", f"Cron {label} field '{part[:40]}' matches nothing.")
    return " ".join(parts)


def clean_schedule(value: object) -> dict:
    """{"type", "every", "unit", "cron", "timezone"} -> the fields of Script, checked."""
    if not isinstance(value, dict):
        _fail(
            "schedule",
            'schedule must be an object such as {"type": "interval", "every": 5, "unit": "minutes"}.',
        )
    kind = value.get("type", ScheduleType.MANUAL)
    if kind not in ScheduleType.values:
        _fail("schedule.type", f"Schedule type must be one of: {', '.join(ScheduleType.values)}.")
    fields = {
        "schedule_type": kind,
        "schedule_every": None,
        "schedule_unit": "",
        "schedule_cron": "",
        "schedule_timezone": clean_timezone(value.get("timezone") or "UTC"),
    }
    if kind == ScheduleType.INTERVAL:
        every, unit = value.get("every"), value.get("unit", IntervalUnit.MINUTES)
        if unit not in IntervalUnit.values:
            _fail("schedule.unit", f"Interval unit must be one of: {', '.join(IntervalUnit.values)}.")
        if isinstance(every, bool) or not isinstance(every, int) or every < 1:
            _fail("schedule.every", "Interval 'every' must be a whole number of at least 1.")
        if every * _UNIT_SECONDS[unit] > INTERVAL_MAX_SECONDS:
            _fail("schedule.every", "An interval can be at most 7 days; use a cron expression for longer.")
        fields.update(schedule_every=every, schedule_unit=unit)
    elif kind == ScheduleType.CRON:
        fields["schedule_cron"] = clean_cron(value.get("cron"))
    return fields


def clean_overlap(value: object) -> str:
    if value not in OverlapPolicy.values:
        _fail("overlap", f"Overlap must be one of: {', '.join(OverlapPolicy.values)}.")
    return value


def clean_notify(value: object) -> dict:
    if not isinstance(value, dict):
        _fail(
            "notify", 'notify must be an object: {"on_success": bool, "on_failure": bool, "emails": [...]}.'
        )
    unknown = set(value) - {"on_success", "on_failure", "emails"}
    if unknown:
        _fail("notify", f"Unknown notify key(s): {', '.join(sorted(unknown))}.")
    out = {}
    if "on_success" in value:
        out["notify_on_success"] = clean_bool("notify.on_success", value["on_success"])
    if "on_failure" in value:
        out["notify_on_failure"] = clean_bool("notify.on_failure", value["on_failure"])
    if "emails" in value:
        try:
            out["notify_emails"] = clean_emails(value["emails"])
        except ValidationFailed as exc:
            _fail("notify.emails", exc.errors.get("notify_emails", [exc.detail])[0])
    return out


def limit_defaults() -> dict[str, int]:
    return {
        "timeout_seconds": settings.SCRIPTS_DEFAULT_TIMEOUT_SECONDS,
        "memory_mb": settings.SCRIPTS_DEFAULT_MEMORY_MB,
        "cpu_seconds": settings.SCRIPTS_DEFAULT_CPU_SECONDS,
    }
