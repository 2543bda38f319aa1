"""Reads of scripts and runs for the API, the page, the admin and the CLI."""

from __future__ import annotations

from django.db.models import OuterRef, Q, Subquery

from scripts.models import Script, ScriptRun

# A run in a list carries no output (up to SCRIPTS_OUTPUT_MAX_BYTES each); the detail has it.
_LIST_DEFER = ("output", "extra_env")


def script_list(
    *, folder: str | None = None, search: str | None = None, limit: int | None = None, offset: int = 0
) -> tuple[list[Script], int]:
    """Scripts by folder and name, each with `last_run` (ScriptRun or None) set; and the total."""
    qs = Script.objects.select_related("periodic_task").prefetch_related("env_vars__secret")
    if folder is not None:
        qs = qs.filter(folder=folder)
    if search:
        qs = qs.filter(Q(name__icontains=search) | Q(slug__icontains=search) | Q(folder__icontains=search))
    total = qs.count()
    page = qs[offset : offset + limit] if limit is not None else qs[offset:]
    scripts = list(page.annotate(last_run_id=Subquery(_newest_run_id())))
    _attach_last_runs(scripts)
    return scripts, total


def script_detail(*, script_id: int) -> Script:
    script = (
        Script.objects.select_related("periodic_task")
        .prefetch_related("env_vars__secret")
        .annotate(last_run_id=Subquery(_newest_run_id()))
        .get(pk=script_id)
    )
    _attach_last_runs([script])
    return script


def _newest_run_id():
    return ScriptRun.objects.filter(script=OuterRef("pk")).order_by("-queued_at", "-id").values("pk")[:1]


def _attach_last_runs(scripts: list[Script]) -> None:
    ids = [s.last_run_id for s in scripts if s.last_run_id]
    runs = {
        r.pk: r for r in ScriptRun.objects.filter(pk__in=ids).select_related("script").defer(*_LIST_DEFER)
    }
    for script in scripts:
        script.last_run = runs.get(script.last_run_id)


def run_list(
    *,
    script_id: int | None = None,
    state: str | None = None,
    trigger: str | None = None,
    search: str | None = None,
    limit: int = 50,
    offset: int = 0,
) -> tuple[list[ScriptRun], int]:
    """Runs newest first (without their output) and the total; `search` looks in the output."""
    qs = ScriptRun.objects.select_related("script")
    if script_id is not None:
        qs = qs.filter(script_id=script_id)
    if state:
        qs = qs.filter(state=state)
    if trigger:
        qs = qs.filter(trigger=trigger)
    if search:
        qs = qs.filter(Q(output__icontains=search) | Q(message__icontains=search))
    total = qs.count()
    return list(qs.defer(*_LIST_DEFER)[offset : offset + limit]), total
