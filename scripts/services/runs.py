"""Runs: requested (schedule, a person, startup, a polling job), executed on the scripts queue
through the sandbox, cancelled, reaped when their worker died, pruned by age and count.

One run of a script at a time. A run request while another is queued or running follows the
script's overlap policy when a schedule asked (`skip`: dropped and logged; `queue`: waits);
a person, startup or a polling job always queue theirs. A waiting run starts when the current
one ends.

The worker holds a lease on its run (a token and an expiry it renews about twice a second,
together with the output so far and the cancel check, in one UPDATE). A run whose lease
expired lost its worker (SIGKILL, restart, machine gone): `runs_reap` ends it as `failed` with
that reason, so nothing stays `running` forever. A cancel from any process sets a flag the
worker sees at its next renewal; the sandbox then ends the script's whole process group.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Exists, OuterRef
from django.utils import timezone

from polling.services.leases import RELEASED, lease_claim, lease_release
from scripts.models import (
    ACTIVE_RUN_STATES,
    FINISHED_RUN_STATES,
    EnvState,
    OverlapPolicy,
    RunState,
    RunTrigger,
    Script,
    ScriptEnvVar,
    ScriptRun,
)
from scripts.services.environments import env_dir, work_dir
from scripts.services.exceptions import RunNotActive, RunNotFound
from teckochecker.errors import is_valid_id
from teckochecker.tasks_out import task_send, task_send_on_commit

logger = logging.getLogger("teckochecker.scripts")

# A worker renews its run's lease every RENEW_SECONDS; a lease not renewed for
# SCRIPTS_RUN_LEASE_SECONDS means the worker is gone (the reaper then ends the run).
RENEW_SECONDS = 0.5
# A queued run whose message may have been lost (broker restart) is sent again after this long.
REQUEUE_AFTER_SECONDS = 60
# A run waits this long for its environment to be built, then fails saying so.
ENV_WAIT_SECONDS = 3600
LOST_MESSAGE = (
    "The worker running this script stopped (killed or restarted) before the run finished; the run was ended."
)


def run_get(*, run_id: int) -> ScriptRun:
    if not is_valid_id(run_id):
        raise RunNotFound(f"Run {run_id} not found.")
    run = ScriptRun.objects.select_related("script").filter(pk=run_id).first()
    if run is None:
        raise RunNotFound(f"Run {run_id} not found.")
    return run


RUN_TASK = "scripts.tasks.run_script"


def _send(run_id: int) -> None:
    """Hand the run to the scripts queue (a broker that is down: the reaper sends it again)."""
    task_send(RUN_TASK, args=[run_id], queue=settings.SCRIPTS_QUEUE)


def run_request(
    *,
    script: Script,
    trigger: str,
    polling_job=None,
    extra_env: dict[str, str] | None = None,
    triggered_by: str = "",
) -> ScriptRun | None:
    """Queue a run; None when a schedule's run is skipped by the overlap policy.

    With `polling_job`, at most one run ever exists for that job: a second request (a retried
    trigger) gets the existing run back instead of a new one.
    """
    if trigger not in RunTrigger.values:
        raise ValueError(f"unknown trigger {trigger!r}")
    if trigger in (RunTrigger.SCHEDULE, RunTrigger.STARTUP) and script.overlap == OverlapPolicy.SKIP:
        busy = ScriptRun.objects.filter(script=script, state__in=ACTIVE_RUN_STATES).exists()
        if busy:
            logger.info(
                "script %s (%s): %s run skipped, the previous run is still queued or running "
                "(overlap policy: skip)",
                script.pk,
                script.slug,
                trigger,
            )
            return None
    try:
        with transaction.atomic():
            run = ScriptRun.objects.create(
                script=script,
                trigger=trigger,
                polling_job=polling_job,
                extra_env=extra_env or {},
                triggered_by=triggered_by[:300],
            )
            task_send_on_commit(RUN_TASK, args=[run.pk], queue=settings.SCRIPTS_QUEUE)
    except IntegrityError:
        if polling_job is None:
            raise
        return ScriptRun.objects.get(polling_job=polling_job)
    return run


def run_scheduled(*, script_id: int) -> ScriptRun | None:
    """What beat's periodic task does: a run, unless the script is gone, disabled or busy."""
    script = Script.objects.filter(pk=script_id, enabled=True).first()
    if script is None:
        return None
    return run_request(script=script, trigger=RunTrigger.SCHEDULE)


def script_run_now(*, script: Script) -> ScriptRun:
    """A person asked (API, admin, CLI, page): always queued, even behind a running run."""
    return run_request(script=script, trigger=RunTrigger.MANUAL)


def _finish(
    run_id: int, *, state: str, message: str, token: str | None = None, only: str | None = None, **fields
) -> bool:
    """Record the end of a run once (only an unfinished run; with `token`, only our own; with
    `only`, only from that state)."""
    qs = ScriptRun.objects.filter(pk=run_id, state__in=[only] if only else ACTIVE_RUN_STATES)
    fields = {"state": state, "message": message[:4000], "finished_at": timezone.now(), **fields}
    if token is not None:
        done = lease_release(qs, token=token, **fields) == 1
    else:
        done = qs.update(**RELEASED, **fields) == 1
    if done:
        _after_finish(run_id)
    return done


def _after_finish(run_id: int) -> None:
    run = ScriptRun.objects.select_related("script").filter(pk=run_id).first()
    if run is None:
        return
    script = run.script
    if run.state == RunState.SUCCEEDED and script.notify_on_success:
        _notify(run.pk, "script_succeeded")
    elif run.state not in (RunState.SUCCEEDED, RunState.CANCELLED) and script.notify_on_failure:
        _notify(run.pk, "script_failed")
    _start_next(script.pk)


def _notify(run_id: int, event: str) -> None:
    from polling.services.notifications import notify_script_run

    try:
        notify_script_run(run_id=run_id, event=event)
    except Exception as exc:  # a notification never loses a run's result
        logger.warning("could not queue the notification of run %s: %s", run_id, exc)


def _start_next(script_id: int) -> None:
    """Send the oldest waiting run of the script, now that none is running."""
    waiting = (
        ScriptRun.objects.filter(script_id=script_id, state=RunState.QUEUED)
        .order_by("queued_at", "id")
        .values_list("pk", flat=True)
        .first()
    )
    if waiting is not None:
        task_send_on_commit(RUN_TASK, args=[waiting], queue=settings.SCRIPTS_QUEUE)


@dataclass
class _Claim:
    run: ScriptRun
    token: str


def _claim(run_id: int, worker: str) -> _Claim | str:
    """Take a queued run for this worker, or say why not."""
    run = ScriptRun.objects.select_related("script").filter(pk=run_id).first()
    if run is None:
        return "gone"
    now = timezone.now()
    if run.state == RunState.RUNNING:
        if run.lease_expires_at is not None and run.lease_expires_at < now:
            _finish(run_id, state=RunState.FAILED, message=LOST_MESSAGE, token=run.lease_token)
            return "lost"
        return "skipped"  # a duplicate message; its worker is alive
    if run.state != RunState.QUEUED:
        return "skipped"
    script = run.script
    if script.env_state in (EnvState.CREATING, EnvState.INSTALLING):
        if run.queued_at < now - timedelta(seconds=ENV_WAIT_SECONDS):
            _finish(
                run_id,
                state=RunState.FAILED,
                message="The script's environment was still being built an hour after this run "
                "was queued; see its environment state and rebuild it.",
            )
            return "failed"
        return "waiting"
    if script.env_state == EnvState.FAILED:
        _finish(
            run_id,
            state=RunState.FAILED,
            message=f"The script's environment could not be built: {script.env_error} "
            "Fix the requirements or the Python version and rebuild it.",
        )
        return "failed"
    if settings.SCRIPTS_SANDBOX:
        from scripts import sandbox

        problem = sandbox.sandbox_problem() or (sandbox.network_problem() if script.network else None)
        if problem:
            _finish(run_id, state=RunState.FAILED, message=problem)
            return "failed"
    with transaction.atomic():
        # One run of a script at a time: the script row serialises the claims of its runs.
        Script.objects.select_for_update().filter(pk=script.pk).first()
        if ScriptRun.objects.filter(script_id=script.pk, state=RunState.RUNNING).exists():
            return "busy"  # sent again when the running one ends (_start_next)
        token, claimed = lease_claim(
            ScriptRun.objects.filter(pk=run_id, state=RunState.QUEUED),
            seconds=settings.SCRIPTS_RUN_LEASE_SECONDS,
            now=now,
            state=RunState.RUNNING,
            started_at=now,
            worker=worker[:255],
        )
    if not claimed:
        return "skipped"
    run.refresh_from_db()
    return _Claim(run=run, token=token)


class _Secrets:
    """The revealed secret values of one run, and the one way they are scrubbed from text."""

    def __init__(self, by_name: dict[str, str]):
        # Longest first, so a secret that contains another is replaced whole.
        self.pairs = sorted(
            ((value, name) for name, value in by_name.items() if len(value) >= 4), key=lambda p: -len(p[0])
        )

    def scrub(self, text: str) -> str:
        for value, name in self.pairs:
            if value in text:
                text = text.replace(value, f"[secret {name}]")
        return text


def _run_env(run: ScriptRun) -> tuple[dict[str, str], _Secrets]:
    """The variables the script's process gets: its own, its run's, and the run facts."""
    from secrets_vault.services import secrets_reveal

    rows = list(ScriptEnvVar.objects.filter(script_id=run.script_id))
    revealed = secrets_reveal(secret_ids={r.secret_id for r in rows if r.secret_id})
    env: dict[str, str] = {}
    secret_values: dict[str, str] = {}
    for row in rows:
        if row.secret_id is None:
            env[row.name] = row.value
            continue
        value = revealed.get(row.secret_id)
        if value is None:
            raise _RunRefused(f"Variable '{row.name}': its secret no longer exists.")
        if isinstance(value, Exception):
            raise _RunRefused(f"Variable '{row.name}': {value.detail}")
        env[row.name] = value
        secret_values[row.name] = value
    env.update({str(k): str(v) for k, v in (run.extra_env or {}).items()})
    env.update(
        TECKOCHECKER_RUN_ID=str(run.pk),
        TECKOCHECKER_TRIGGER=run.trigger,
        TECKOCHECKER_SCRIPT=run.script.slug,
    )
    return env, _Secrets(secret_values)


class _RunRefused(Exception):
    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


class _Monitor:
    """The sandbox's callbacks for one run: pid, live output, lease renewal and cancel check.

    The renewal is the lease module's (`lease_renew`: the same token condition) with two more
    things in the same UPDATE: the output so far, and `cancel_requested=False`, so one statement
    twice a second both keeps the lease and notices a cancel from any process."""

    def __init__(self, run_id: int, token: str, secrets: _Secrets, cap: int):
        self.run_id, self.token, self.secrets, self.cap = run_id, token, secrets, cap
        self.lock = threading.Lock()
        self.chunks: list[str] = []
        self.size = 0
        self.dirty = False
        self.cancelled = False
        self.next_renew = 0.0

    def on_start(self, pid: int) -> None:
        ScriptRun.objects.filter(pk=self.run_id, lease_token=self.token).update(pid=pid)

    def on_output(self, text: str) -> None:
        with self.lock:
            if self.size < self.cap:
                self.chunks.append(text[: self.cap - self.size])
                self.size += len(self.chunks[-1])
                self.dirty = True

    def should_cancel(self) -> bool:
        now = time.monotonic()
        if self.cancelled or now < self.next_renew:
            return self.cancelled
        self.next_renew = now + RENEW_SECONDS
        fields = {"lease_expires_at": timezone.now() + timedelta(seconds=settings.SCRIPTS_RUN_LEASE_SECONDS)}
        with self.lock:
            if self.dirty:
                fields["output"] = self.secrets.scrub("".join(self.chunks))
                self.dirty = False
        try:
            renewed = ScriptRun.objects.filter(
                pk=self.run_id, lease_token=self.token, cancel_requested=False
            ).update(**fields)
        except Exception as exc:  # database restarting: keep running, try again next time
            logger.warning("run %s: could not renew its lease: %s", self.run_id, exc)
            return False
        # Nothing renewed: the run was cancelled, deleted (with its script), or is no longer ours.
        self.cancelled = renewed == 0
        return self.cancelled


def run_execute(*, run_id: int, worker: str = "") -> str:
    """Run a queued run now, in this process (the task's body). Returns what happened:
    a final state, or waiting (environment building), busy (another run of the script is
    running), skipped, lost or gone."""
    claim = _claim(run_id, worker)
    if isinstance(claim, str):
        return claim
    run, token = claim.run, claim.token
    script = run.script
    try:
        env, secrets = _run_env(run)
    except _RunRefused as exc:
        _finish(run.pk, state=RunState.FAILED, message=exc.message, token=token)
        return RunState.FAILED
    from scripts import sandbox

    workdir = work_dir(script)
    workdir.mkdir(parents=True, exist_ok=True)
    spec = sandbox.RunSpec(
        code=script.code,
        env_dir=env_dir(script),
        python_path=script.env_python_path,
        workdir=workdir,
        env=env,
        network=script.network,
        timeout_seconds=float(script.timeout_seconds),
        memory_mb=script.memory_mb,
        cpu_seconds=script.cpu_seconds,
        output_max_bytes=settings.SCRIPTS_OUTPUT_MAX_BYTES,
    )
    monitor = _Monitor(run.pk, token, secrets, settings.SCRIPTS_OUTPUT_MAX_BYTES)
    try:
        result = sandbox.run(
            spec, on_start=monitor.on_start, on_output=monitor.on_output, should_cancel=monitor.should_cancel
        )
    except Exception as exc:
        logger.exception("run %s of script %s could not run", run.pk, script.pk)
        _finish(
            run.pk,
            state=RunState.FAILED,
            message=f"The run could not start: {secrets.scrub(str(exc))[:500]}",
            token=token,
        )
        return RunState.FAILED
    message = result.message
    if result.state == RunState.CANCELLED and not message:
        message = "Cancelled."
    recorded = _finish(
        run.pk,
        state=result.state,
        message=secrets.scrub(message or ""),
        token=token,
        exit_code=result.exit_code,
        peak_memory_kb=result.peak_memory_kb,
        cpu_seconds=result.cpu_seconds,
        output=secrets.scrub(result.output),
        output_truncated=result.output_truncated,
        started_at=result.started_at,
        finished_at=result.finished_at,
    )
    if not recorded and not ScriptRun.objects.filter(pk=run.pk).exists():
        return "gone"  # deleted with its script while it ran; the sandbox ended it
    return result.state


def run_cancel(*, run: ScriptRun) -> ScriptRun:
    """Cancel a queued run at once, or ask a running run's worker to end it (within a second).

    Raises RunNotActive for a run that has already finished.
    """
    for _attempt in range(3):  # queued -> running can happen between our two updates
        if _finish(
            run.pk, state=RunState.CANCELLED, message="Cancelled before it started.", only=RunState.QUEUED
        ):
            return run_get(run_id=run.pk)
        if ScriptRun.objects.filter(pk=run.pk, state=RunState.RUNNING).update(cancel_requested=True):
            return run_get(run_id=run.pk)
        current = run_get(run_id=run.pk)
        if current.state not in ACTIVE_RUN_STATES:
            raise RunNotActive(
                f"Run {run.pk} is {current.state}; only a queued or running run can be cancelled."
            )
    return run_get(run_id=run.pk)


def script_cancel_runs(*, script: Script) -> int:
    """Cancel every queued or running run of the script; returns how many."""
    count = 0
    for run in ScriptRun.objects.filter(script=script, state__in=ACTIVE_RUN_STATES):
        try:
            run_cancel(run=run)
            count += 1
        except RunNotActive:
            pass
    return count


def runs_reap(*, now=None) -> dict[str, int]:
    """End runs whose worker is gone; send again queued runs whose message may be lost."""
    now = now or timezone.now()
    lost = 0
    for run_id, token in ScriptRun.objects.filter(
        state=RunState.RUNNING, lease_expires_at__lt=now
    ).values_list("pk", "lease_token"):
        if _finish(run_id, state=RunState.FAILED, message=LOST_MESSAGE, token=token):
            logger.warning("run %s: its worker stopped; marked failed", run_id)
            lost += 1
    running = ScriptRun.objects.filter(script_id=OuterRef("script_id"), state=RunState.RUNNING)
    stale = (
        ScriptRun.objects.filter(
            state=RunState.QUEUED,
            queued_at__lt=now - timedelta(seconds=REQUEUE_AFTER_SECONDS),
            script__env_state=EnvState.READY,
        )
        .filter(~Exists(running))
        .order_by("script_id", "queued_at", "id")
    )
    resent, seen = 0, set()
    for run_id, script_id in stale.values_list("pk", "script_id"):
        if script_id in seen:  # one per script: the rest follow when it ends
            continue
        seen.add(script_id)
        _send(run_id)
        resent += 1
    return {"lost": lost, "resent": resent}


def runs_prune(*, days: int | None = None, max_runs: int | None = None) -> int:
    """Delete finished runs older than SCRIPTS_HISTORY_DAYS, and beyond the newest
    SCRIPTS_HISTORY_MAX_RUNS of each script; returns how many were deleted."""
    from scripts.services.triggers import trigger_requests_prune

    trigger_requests_prune()
    days = days or settings.SCRIPTS_HISTORY_DAYS
    max_runs = max_runs or settings.SCRIPTS_HISTORY_MAX_RUNS
    finished = ScriptRun.objects.filter(state__in=FINISHED_RUN_STATES)
    deleted, _ = finished.filter(queued_at__lt=timezone.now() - timedelta(days=days)).delete()
    for script_id in Script.objects.values_list("pk", flat=True):
        keep = list(
            finished.filter(script_id=script_id)
            .order_by("-queued_at", "-id")
            .values_list("pk", flat=True)[max_runs : max_runs + 1]
        )
        if keep:
            cutoff = ScriptRun.objects.get(pk=keep[0])
            extra, _ = (
                finished.filter(script_id=script_id)
                .filter(queued_at__lte=cutoff.queued_at)
                .exclude(queued_at=cutoff.queued_at, id__gt=cutoff.pk)
                .delete()
            )
            deleted += extra
    return deleted
