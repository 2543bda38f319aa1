"""When scripts run by themselves: one django-celery-beat PeriodicTask per scheduled script.

An interval script gets an IntervalSchedule, a cron script a CrontabSchedule in its time zone,
so the admin's schedule editors show (and can change) the same thing. The task beat sends,
`scripts.tasks.scheduled_run`, only decides whether to start a run (the overlap policy) and
goes to the default queue: the run itself goes to the scripts queue.

"At startup" scripts have no periodic task: beat runs them once when it starts
(`scripts_run_at_startup`, called from polling.scheduler). Beat is single-instance, so a service
start runs each of them exactly once, however many workers there are.

Why a periodic task per script here when polling jobs have none: beat reloads every periodic
task when one changes. That hurt at 10,000 polling jobs that change state all the time; scripts
number in the hundreds and change when a person edits them.
"""

from __future__ import annotations

import json
import logging
import zoneinfo
from datetime import datetime, timedelta

from django.utils import timezone
from django_celery_beat.models import CrontabSchedule, IntervalSchedule, PeriodicTask

from scripts import validation as v
from scripts.models import IntervalUnit, RunTrigger, ScheduleType, Script

logger = logging.getLogger("teckochecker.scripts")

TASK = "scripts.tasks.scheduled_run"
NAME_PREFIX = "teckochecker.script."
_PERIODS = {
    IntervalUnit.SECONDS: IntervalSchedule.SECONDS,
    IntervalUnit.MINUTES: IntervalSchedule.MINUTES,
    IntervalUnit.HOURS: IntervalSchedule.HOURS,
}
_UNIT_SECONDS = {IntervalUnit.SECONDS: 1, IntervalUnit.MINUTES: 60, IntervalUnit.HOURS: 3600}


def schedule_name(script_id: int) -> str:
    return f"{NAME_PREFIX}{script_id}"


def _crontab(script: Script) -> CrontabSchedule:
    minute, hour, day_of_month, month, day_of_week = script.schedule_cron.split()
    schedule, _ = CrontabSchedule.objects.get_or_create(
        minute=minute,
        hour=hour,
        day_of_month=day_of_month,
        month_of_year=month,
        day_of_week=day_of_week,
        timezone=zoneinfo.ZoneInfo(script.schedule_timezone),
    )
    return schedule


def schedule_sync(*, script: Script) -> PeriodicTask | None:
    """Make the script's periodic task match its fields (create, change or remove it)."""
    wants_task = script.enabled and script.schedule_type in (ScheduleType.INTERVAL, ScheduleType.CRON)
    task = script.periodic_task
    if not wants_task:
        if task is not None:
            schedule_remove(script=script)
        return None
    interval = crontab = None
    if script.schedule_type == ScheduleType.INTERVAL:
        interval, _ = IntervalSchedule.objects.get_or_create(
            every=script.schedule_every, period=_PERIODS[script.schedule_unit]
        )
    else:
        crontab = _crontab(script)
    fields = {
        "task": TASK,
        "args": json.dumps([script.pk]),
        "interval": interval,
        "crontab": crontab,
        "enabled": True,
        "description": f"Runs script '{script.name}' ({script.slug}); managed by TeckoChecker.",
    }
    if task is None:
        task, _ = PeriodicTask.objects.update_or_create(name=schedule_name(script.pk), defaults=fields)
        Script.objects.filter(pk=script.pk).update(periodic_task=task)
        script.periodic_task = task
        return task
    changed = [f for f, value in fields.items() if getattr(task, f) != value]
    if changed:
        for field in changed:
            setattr(task, field, fields[field])
        task.save()
    return task


def schedule_remove(*, script: Script) -> None:
    PeriodicTask.objects.filter(name=schedule_name(script.pk)).delete()
    script.periodic_task = None


def schedules_sync_all() -> dict[str, int]:
    """Repair every script's periodic task and drop those of deleted scripts (idempotent)."""
    scripts = list(Script.objects.select_related("periodic_task"))
    for script in scripts:
        schedule_sync(script=script)
    keep = {schedule_name(s.pk) for s in scripts if s.periodic_task_id}
    orphans = PeriodicTask.objects.filter(name__startswith=NAME_PREFIX).exclude(name__in=keep)
    removed, _ = orphans.delete()
    return {"scripts": len(scripts), "removed": removed}


def next_runs(
    *, schedule: dict, count: int = 5, now: datetime | None = None, last_run_at: datetime | None = None
) -> list[datetime]:
    """The next `count` times a schedule fires (empty for manual and startup).

    `schedule` is the API's shape ({"type", "every", "unit", "cron", "timezone"}), validated here
    too, so the page's preview shows the same message a save would. Times are aware, in UTC.
    """
    fields = v.clean_schedule(schedule)
    now = now or timezone.now()
    kind = fields["schedule_type"]
    if kind == ScheduleType.INTERVAL:
        step = timedelta(seconds=fields["schedule_every"] * _UNIT_SECONDS[fields["schedule_unit"]])
        # Beat counts an interval from the task's last run (or from when it was created).
        start = last_run_at or now
        first = start + step
        while first <= now:
            first += step
        return [first + step * i for i in range(count)]
    if kind == ScheduleType.CRON:
        from django_celery_beat.tzcrontab import TzAwareCrontab

        minute, hour, day_of_month, month, day_of_week = fields["schedule_cron"].split()
        tz = zoneinfo.ZoneInfo(fields["schedule_timezone"])
        cron = TzAwareCrontab(
            minute=minute,
            hour=hour,
            day_of_month=day_of_month,
            month_of_year=month,
            day_of_week=day_of_week,
            tz=tz,
        )
        times, cursor = [], now.astimezone(tz)
        while len(times) < count:
            last, delta, _ = cron.remaining_delta(cursor)
            following = (last + delta).astimezone(tz)
            if following <= cursor:  # exactly on a firing time: look from the next second
                cursor += timedelta(seconds=1)
                continue
            times.append(following.astimezone(zoneinfo.ZoneInfo("UTC")))
            cursor = following
        return times
    return []


def script_schedule(script: Script) -> dict:
    """The script's schedule in the API's shape."""
    data: dict = {"type": script.schedule_type, "timezone": script.schedule_timezone}
    if script.schedule_type == ScheduleType.INTERVAL:
        data.update(every=script.schedule_every, unit=script.schedule_unit)
    elif script.schedule_type == ScheduleType.CRON:
        data["cron"] = script.schedule_cron
    return data


def script_next_runs(*, script: Script, count: int = 5) -> list[datetime]:
    if not script.enabled:
        return []
    last = script.periodic_task.last_run_at if script.periodic_task_id and script.periodic_task else None
    return next_runs(schedule=script_schedule(script), count=count, last_run_at=last)


def scripts_run_at_startup() -> int:
    """Queue one run of every enabled "at startup" script; returns how many (beat calls it)."""
    from scripts.services.runs import run_request

    count = 0
    for script in Script.objects.filter(enabled=True, schedule_type=ScheduleType.STARTUP):
        if run_request(script=script, trigger=RunTrigger.STARTUP) is not None:
            count += 1
    if count:
        logger.info("queued %d script(s) that run at startup", count)
    return count
