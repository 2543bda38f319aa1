"""A script's virtual environment: requested here, built in the background, checked, removed.

The building itself (uv, the atomic swap into place) is `scripts.environments`; this module keeps
the script's visible state in step with it:
- a request (create, new requirements or Python) sets `creating` and a new build token, then the
  build task runs on the scripts queue;
- the build reports `creating` -> `installing` -> `ready` | `failed` (with the installer's error);
- a build whose token was replaced meanwhile records nothing: the newer request wins.
A run starts only in a `ready` environment (runs.py), and the swap into place is atomic, so a
run never sees a half-built one.
"""

from __future__ import annotations

import hashlib
import logging
import shutil
import uuid
from pathlib import Path

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from scripts.models import EnvState, Script
from teckochecker.tasks_out import task_send_on_commit

logger = logging.getLogger("teckochecker.scripts")


def script_dir(script: Script) -> Path:
    """The script's own folder: its environment and its working directory.

    Named by id and slug, so a deleted script's folder (removed after the delete commits) is
    never the folder of a new script with the same name.
    """
    return settings.SCRIPTS_DIR / f"{script.pk}-{script.slug}"


def env_dir(script: Script) -> Path:
    return script_dir(script) / "env"


def work_dir(script: Script) -> Path:
    return script_dir(script) / "work"


def requirements_hash(*, python_version: str, requirements: str) -> str:
    """What an environment is built from; a different hash means it must be rebuilt."""
    lines = sorted(line.strip() for line in requirements.splitlines() if line.strip())
    text = python_version + "\n" + "\n".join(lines)
    return hashlib.sha256(text.encode()).hexdigest()


def _wanted_hash(script: Script) -> str:
    return requirements_hash(python_version=script.python_version, requirements=script.requirements)


def environment_needs_build(*, script: Script) -> bool:
    return script.env_requirements_hash != _wanted_hash(script)


def environment_request_build(*, script: Script) -> str:
    """Mark the environment `creating` and queue its build after commit; returns the token."""
    token = uuid.uuid4().hex
    Script.objects.filter(pk=script.pk).update(
        env_state=EnvState.CREATING,
        env_error="",
        env_build_token=token,
        env_requirements_hash=_wanted_hash(script),
        updated_at=timezone.now(),
    )
    script.env_state, script.env_error, script.env_build_token = EnvState.CREATING, "", token
    script.env_requirements_hash = _wanted_hash(script)
    # A broker that is down is logged; `env rebuild` asks again.
    task_send_on_commit(
        "scripts.tasks.build_environment", args=[script.pk, token], queue=settings.SCRIPTS_QUEUE
    )
    return token


def environment_rebuild(*, script: Script) -> Script:
    """Build the script's environment again from scratch (API, admin, `script env rebuild`)."""
    with transaction.atomic():
        environment_request_build(script=script)
    return script


def _set_state(script_id: int, token: str, **fields) -> bool:
    return Script.objects.filter(pk=script_id, env_build_token=token).update(**fields) == 1


def environment_build_now(*, script_id: int, token: str) -> str:
    """Build the environment (the task's body). Returns ready, failed or superseded."""
    from scripts import environments

    script = Script.objects.filter(pk=script_id, env_build_token=token).first()
    if script is None:
        return "superseded"
    wanted = _wanted_hash(script)
    try:
        python = environments.python_resolve(script.python_version)
        requirements = environments.requirements_parse(script.requirements)
    except Exception as exc:  # the interpreter went away, or requirements stored before a rule
        message = getattr(exc, "detail", None) or str(exc)
        _set_state(script_id, token, env_state=EnvState.FAILED, env_error=message[:4000])
        return "failed"

    def on_state(state: str) -> None:
        if state in (EnvState.CREATING, EnvState.INSTALLING):
            _set_state(script_id, token, env_state=state)

    result = environments.environment_build(
        env_dir=env_dir(script), python=python, requirements=requirements, on_state=on_state
    )
    now = timezone.now()
    if result.ok:
        try:
            disk = environments.environment_disk_bytes(env_dir(script))
        except OSError:
            disk = None
        recorded = _set_state(
            script_id,
            token,
            env_state=EnvState.READY,
            env_error="",
            env_python=python.version,
            env_python_path=python.path,
            env_built_at=now,
            env_disk_bytes=disk,
            env_requirements_hash=wanted,
        )
    else:
        recorded = _set_state(
            script_id,
            token,
            env_state=EnvState.FAILED,
            env_error=(result.error or "The build failed.")[:4000],
        )
    if not recorded:
        # A newer request came in while we built. If its build already finished, our swap may
        # have replaced its environment: build once more so what is on disk is what was asked.
        latest = Script.objects.filter(pk=script_id).first()
        if latest is not None and latest.env_state in (EnvState.READY, EnvState.FAILED):
            with transaction.atomic():
                environment_request_build(script=latest)
        return "superseded"
    logger.info("script %s environment %s", script_id, "ready" if result.ok else "failed")
    return "ready" if result.ok else "failed"


def environment_check(*, script: Script) -> dict:
    """{"ok", "problems", "python_version"}: the interpreter starts and each requirement is there."""
    from scripts import environments

    if not env_dir(script).exists():
        return {"ok": False, "problems": ["The environment does not exist yet."], "python_version": ""}
    result = environments.environment_check(
        env_dir=env_dir(script), requirements=environments.requirements_parse(script.requirements)
    )
    return {"ok": result.ok, "problems": list(result.problems), "python_version": result.python_version}


def environment_info(*, script: Script) -> dict:
    return {
        "state": script.env_state,
        "error": script.env_error,
        "python_version": script.env_python,
        "disk_bytes": script.env_disk_bytes,
        "built_at": script.env_built_at,
    }


def environment_remove_later(*, script: Script) -> None:
    """Remove the script's folder (environment and working directory) once the delete commits."""
    folder = script_dir(script)

    def _remove() -> None:
        from scripts import environments

        try:
            environments.environment_remove(folder / "env")
        except Exception as exc:  # a folder left behind is only disk space; say so
            logger.warning("could not remove the environment of a deleted script (%s): %s", folder, exc)
        shutil.rmtree(folder, ignore_errors=True)

    transaction.on_commit(_remove)
