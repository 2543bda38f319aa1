"""URL triggers: an API key runs a script through POST (or, where allowed, GET)
/api/scripts/{slug}/trigger.

The run is an ordinary run (`run_request`, trigger `url`) that records which key asked. Its
parameters reach the script as one variable, TECKOCHECKER_PARAMS (a JSON object, `{}` when none).
With an `Idempotency-Key`, a retried call gets the first call's run back: the key, script and
header value are stored with the run under a unique constraint, so two concurrent calls with the
same value make one run (the loser's insert fails and it answers with the winner's run).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from apikeys.exceptions import ApiKeyOutOfScope
from apikeys.models import ApiKey, ApiKeyScope
from scripts.models import RunTrigger, Script, ScriptRun, TriggerRequest
from scripts.services.exceptions import ScriptNotFound, ScriptStateConflict
from scripts.services.runs import run_request
from teckochecker.errors import Conflict, Forbidden, MethodNotAllowed, PayloadTooLarge, ValidationFailed

PARAMS_VARIABLE = "TECKOCHECKER_PARAMS"
IDEMPOTENCY_KEY_MAX = 255


@dataclass
class Triggered:
    run: ScriptRun
    replayed: bool  # an earlier call with the same Idempotency-Key made this run


def clean_params(params: object) -> str:
    """The parameters as the variable's value: compact ASCII JSON (any text survives the
    environment), at most SCRIPTS_TRIGGER_PARAMS_MAX_BYTES."""
    if params is None:
        params = {}
    if not isinstance(params, dict):
        raise ValidationFailed.from_errors(
            {"params": ['Parameters must be a JSON object, e.g. {"date": "2026-01-31"}.']}
        )
    text = json.dumps(params, separators=(",", ":"), ensure_ascii=True, sort_keys=True)
    cap = settings.SCRIPTS_TRIGGER_PARAMS_MAX_BYTES
    if len(text) > cap:
        raise PayloadTooLarge(
            f"The parameters are {len(text)} bytes as JSON; the limit is {cap} (SCRIPTS_TRIGGER_PARAMS_MAX_BYTES)."
        )
    return text


def clean_idempotency_key(value: object) -> str | None:
    if value is None:
        return None
    text = str(value)
    if not text or len(text) > IDEMPOTENCY_KEY_MAX or not all(" " <= ch <= "~" for ch in text):
        raise ValidationFailed.from_errors(
            {
                "Idempotency-Key": [
                    f"Idempotency-Key must be 1-{IDEMPOTENCY_KEY_MAX} printable ASCII characters."
                ]
            }
        )
    return text


def _script_in_scope(slug: str, api_key: ApiKey) -> Script:
    # A key for one script is refused for any other slug before a lookup, so it cannot probe
    # which scripts exist.
    if api_key.scope == ApiKeyScope.TRIGGER and api_key.script_id is not None:
        if api_key.script.slug != slug:
            raise ApiKeyOutOfScope(f"API {api_key.label} may only trigger script '{api_key.script.slug}'.")
    script = Script.objects.filter(slug=slug).first()
    if script is None:
        raise ScriptNotFound(f"Script '{slug[:100]}' not found.")
    return script


def script_trigger(
    *,
    slug: str,
    api_key: ApiKey,
    params: object = None,
    idempotency_key: str | None = None,
    method: str = "POST",
) -> Triggered:
    """Queue a URL-triggered run of the script for the key.

    Raises ApiKeyOutOfScope (403), ScriptNotFound (404), Forbidden (URL trigger off, 403),
    MethodNotAllowed (GET not enabled, 405), ScriptStateConflict (disabled, 409),
    ValidationFailed (400), PayloadTooLarge (413), Conflict (Idempotency-Key reused with other
    parameters, 409).
    """
    script = _script_in_scope(slug, api_key)
    if not script.url_trigger:
        raise Forbidden(
            f"Script '{script.slug}' cannot be triggered by URL: its URL trigger is off (url_trigger)."
        )
    if method == "GET" and not script.url_trigger_get:
        raise MethodNotAllowed(
            f"Script '{script.slug}' is triggered by POST; its GET trigger is off (url_trigger_get)."
        )
    if not script.enabled:
        raise ScriptStateConflict(f"Script '{script.slug}' is disabled; enable it to trigger it by URL.")
    text = clean_params(params)
    idempotency_key = clean_idempotency_key(idempotency_key)

    def start() -> ScriptRun:
        return run_request(
            script=script,
            trigger=RunTrigger.URL,
            extra_env={PARAMS_VARIABLE: text},
            triggered_by=api_key.label,
        )

    if idempotency_key is None:
        return Triggered(run=start(), replayed=False)
    params_hash = hashlib.sha256(text.encode()).hexdigest()
    same = TriggerRequest.objects.filter(api_key=api_key, script=script, idempotency_key=idempotency_key)
    window = timedelta(hours=settings.SCRIPTS_TRIGGER_IDEMPOTENCY_HOURS)
    same.filter(created_at__lt=timezone.now() - window).delete()  # remembered no longer
    if (earlier := same.select_related("run__script").first()) is not None:
        return _replay(earlier, params_hash)
    try:
        with transaction.atomic():
            run = start()
            TriggerRequest.objects.create(
                api_key=api_key,
                script=script,
                idempotency_key=idempotency_key,
                params_hash=params_hash,
                run=run,
            )
    except IntegrityError:  # a concurrent call with the same key won; its run is ours
        return _replay(same.select_related("run__script").get(), params_hash)
    return Triggered(run=run, replayed=False)


def _replay(earlier: TriggerRequest, params_hash: str) -> Triggered:
    if earlier.params_hash != params_hash:
        raise Conflict(
            f"Idempotency-Key '{earlier.idempotency_key}' was used for run {earlier.run_id} with other "
            "parameters; send a new Idempotency-Key for a new run."
        )
    return Triggered(run=earlier.run, replayed=True)


def trigger_requests_prune() -> int:
    """Forget Idempotency-Keys older than SCRIPTS_TRIGGER_IDEMPOTENCY_HOURS; returns how many."""
    cutoff = timezone.now() - timedelta(hours=settings.SCRIPTS_TRIGGER_IDEMPOTENCY_HOURS)
    deleted, _ = TriggerRequest.objects.filter(created_at__lt=cutoff).delete()
    return deleted
