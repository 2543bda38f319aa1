"""Telling people when a job finishes, fails, or its Keboola job fails, and when a script run
succeeds or fails (if the script asks for it): email and/or webhook.

Delivery runs in Celery (`polling.tasks.deliver_notification`) with retries, so it never blocks
polling; a delivery that fails for good is logged on the job.
"""

from __future__ import annotations

from django.conf import settings
from django.core.mail import send_mail

from polling.integrations import webhooks
from polling.models import PollingJob
from teckochecker.tasks_out import task_send_on_commit

EVENTS = {
    "finished": "finished",
    "failed": "failed",
    "keboola_failed": "triggered Keboola, but the Keboola job failed",
}


def _emails(job: PollingJob) -> list[str]:
    raw = job.notify_emails or ",".join(settings.NOTIFY_EMAILS)
    return [e.strip() for e in raw.split(",") if e.strip()]


def _webhook_url(job: PollingJob) -> str:
    return job.notify_webhook_url or settings.NOTIFY_WEBHOOK_URL


# A script run's events. Scripts have recipients of their own (empty: NOTIFY_EMAILS) and share
# the global notification webhook.
SCRIPT_EVENTS = {"script_succeeded": "succeeded", "script_failed": "failed"}


def channels_for(job: PollingJob) -> list[str]:
    channels = []
    if _emails(job):
        channels.append("email")
    if _webhook_url(job):
        channels.append("webhook")
    return channels


def notify(*, job_id: int, event: str, job: PollingJob | None = None) -> None:
    """Queue the job's notifications for `event` once the current transaction commits. `job`:
    the job as the caller has just read it (its notification settings), to spare a query."""
    if event not in EVENTS:
        raise ValueError(f"unknown notification event {event!r}")
    if job is None:
        job = PollingJob.objects.filter(pk=job_id).only("id", "notify_emails", "notify_webhook_url").first()
    if job is None:
        return
    for channel in channels_for(job):
        # A broker that is down is logged and never blocks polling.
        task_send_on_commit("polling.tasks.deliver_notification", args=[job_id, event, channel])


def _script_emails(script) -> list[str]:
    raw = script.notify_emails or ",".join(settings.NOTIFY_EMAILS)
    return [e.strip() for e in raw.split(",") if e.strip()]


def notify_script_run(*, run_id: int, event: str) -> None:
    """Queue a script run's notifications for `event` (script_succeeded / script_failed)."""
    from scripts.models import ScriptRun

    if event not in SCRIPT_EVENTS:
        raise ValueError(f"unknown notification event {event!r}")
    run = ScriptRun.objects.select_related("script").filter(pk=run_id).first()
    if run is None:
        return
    channels = (["email"] if _script_emails(run.script) else []) + (
        ["webhook"] if settings.NOTIFY_WEBHOOK_URL else []
    )
    for channel in channels:
        task_send_on_commit(
            "polling.tasks.deliver_notification", args=[None, event, channel], kwargs={"run_id": run_id}
        )


def script_run_message(run, event: str) -> dict:
    """What a script run's notification says: the outcome, never the output (it is the user's)."""
    script = run.script
    text = f"TeckoChecker script '{script.name}' run #{run.pk} {SCRIPT_EVENTS[event]}: {run.state}"
    if run.exit_code is not None:
        text += f", exit code {run.exit_code}"
    if run.message:
        text += f". {run.message}"
    return {
        "text": text,
        "event": event,
        "script_id": script.pk,
        "script_name": script.name,
        "script_slug": script.slug,
        "run_id": run.pk,
        "state": run.state,
        "trigger": run.trigger,
        "exit_code": run.exit_code,
        "message": run.message or None,
    }


def notification_message(job: PollingJob, event: str) -> dict:
    batches = list(job.batches.order_by("id"))
    text = f"TeckoChecker job '{job.name}' (#{job.pk}) {EVENTS[event]}: status {job.status}"
    if job.keboola_job_id:
        text += f", Keboola job {job.keboola_job_id}"
        if job.keboola_job_status:
            text += f" ({job.keboola_job_status})"
    if job.last_error and event != "finished":
        text += f". Reason: {job.last_error}"
    return {
        "text": text,  # Slack-compatible
        "event": event,
        "job_id": job.pk,
        "job_name": job.name,
        "status": job.status,
        "batches": {b.batch_id: b.status for b in batches},
        "keboola_job_id": job.keboola_job_id or None,
        "keboola_job_url": job.keboola_job_url or None,
        "keboola_job_status": job.keboola_job_status or None,
        "last_error": job.last_error or None,
    }


def _script_run_deliver(*, run_id: int, event: str, channel: str) -> None:
    from scripts.models import ScriptRun

    run = ScriptRun.objects.select_related("script").filter(pk=run_id).first()
    if run is None:
        return
    message = script_run_message(run, event)
    if channel == "email":
        send_mail(
            subject=f"[TeckoChecker] script {run.script.name}: run {SCRIPT_EVENTS[event]}",
            message=message["text"],
            from_email=None,
            recipient_list=_script_emails(run.script),
        )
    elif channel == "webhook":
        webhooks.post_json(
            url=settings.NOTIFY_WEBHOOK_URL,
            payload=message,
            signing_secret=settings.NOTIFY_WEBHOOK_SECRET or None,
        )
    else:
        raise ValueError(f"unknown channel {channel!r}")


def notification_deliver(*, job_id: int | None, event: str, channel: str, run_id: int | None = None) -> None:
    """Deliver one notification (of a job, or with `run_id` of a script run) now; raises on a
    failure worth retrying."""
    if run_id is not None:
        _script_run_deliver(run_id=run_id, event=event, channel=channel)
        return
    job = PollingJob.objects.filter(pk=job_id).first()
    if job is None:
        return
    message = notification_message(job, event)
    if channel == "email":
        send_mail(
            subject=f"[TeckoChecker] {job.name}: {EVENTS[event]}",
            message=message["text"],
            from_email=None,
            recipient_list=_emails(job),
        )
    elif channel == "webhook":
        webhooks.post_json(
            url=_webhook_url(job), payload=message, signing_secret=settings.NOTIFY_WEBHOOK_SECRET or None
        )
    else:
        raise ValueError(f"unknown channel {channel!r}")
