"""OpenAI and Keboola integrations against the fake server over real HTTP (nothing mocked)."""

from __future__ import annotations

import json
import re
import socket
import time
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path

import pytest
from django.conf import settings as django_settings

from fakes import fingerprint
from fakes.schemas import validate_keboola_request
from polling.integrations import openai as oai
from polling.integrations.keboola import (
    KeboolaJob,
    build_trigger_payload,
    create_job,
    get_job,
    queue_url_from_stack,
    search_jobs,
)
from polling.integrations.openai import (
    BatchInfo,
    retrieve_batch,
    retrieve_many,
)
from polling.integrations.webhooks import post_json
from teckochecker.integrations import (
    CredentialsRejected,
    IntegrationError,
    NotSent,
    OutcomeUnknown,
    Rejected,
    ResourceNotFound,
)

KEY = "sk-proj-integration-test-key-abcdefghijklmnop"
TOKEN = "9876-54321-secrettokenvalueabcdefghijklmnop"
COMPONENT, CONFIG = "kds-team.app-custom-python", "12345"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def assert_secret_free(exc: Exception, *secrets: str) -> None:
    text = f"{exc} {exc!r} {getattr(exc, 'message', '')}"
    for secret in secrets:
        assert secret not in text
        assert secret[:8] not in text and secret[-4:] not in text  # OpenAI's 401 echoes these
    assert exc.__context__ is None and exc.__cause__ is None  # no vendor exception chained


@pytest.fixture
def fake(fake_openai_settings, settings):
    # Generous: on a loaded CI machine an ordinary answer can take a good part of a second.
    settings.OPENAI_TIMEOUT_SECONDS = 5
    settings.KEBOOLA_TIMEOUT_SECONDS = 5
    return fake_openai_settings


@pytest.fixture
def short_timeouts(settings):
    """For the tests of a server that does not answer: they wait only this long."""
    settings.OPENAI_TIMEOUT_SECONDS = 0.5
    settings.KEBOOLA_TIMEOUT_SECONDS = 0.5


# --- OpenAI ---------------------------------------------------------------------------------
def test_retrieve_batch_returns_status_counts_and_aware_times(fake):
    fake.set_batch("batch_a", status="in_progress", completed=40, failed=2, total=100)
    info = retrieve_batch(api_key=KEY, batch_id="batch_a")
    assert isinstance(info, BatchInfo)
    assert (info.batch_id, info.status, info.request_total, info.request_completed, info.request_failed) == (
        "batch_a",
        "in_progress",
        100,
        40,
        2,
    )
    assert info.created_at.tzinfo is UTC and abs(info.created_at - datetime.now(UTC)) < timedelta(seconds=5)
    assert info.finished_at is None
    assert fake.requests("openai.retrieve")[0]["auth_fingerprint"] == fingerprint(KEY)


@pytest.mark.parametrize("outcome", ["completed", "failed", "expired", "cancelled"])
def test_terminal_batches_have_a_finish_time(fake, outcome):
    fake.add_batch("batch_t", finish_after=0, outcome=outcome, total=10)
    info = retrieve_batch(api_key=KEY, batch_id="batch_t")
    assert info.status == outcome and info.finished_at is not None and info.finished_at.tzinfo is UTC


def test_scripted_progress_is_seen_through_the_sdk(fake):
    script = [(0, "validating"), (2.0, "in_progress"), (4.0, "completed")]

    def statuses_between(start: float, end: float) -> set[str]:
        """The statuses the script gives from `start` to `end` seconds after the batch was added:
        an answer shows the one of the moment the fake made it, somewhere in that span."""
        return {
            status
            for i, (at, status) in enumerate(script)
            if at <= end and (i + 1 == len(script) or script[i + 1][0] > start)
        }

    fake.add_batch("batch_warm")
    retrieve_batch(api_key=KEY, batch_id="batch_warm")  # the SDK's first use (import, client) is not timed
    before = time.monotonic()
    fake.add_batch("batch_p", script=script, total=50)
    after = time.monotonic()  # the fake's clock for the batch started in between
    reads = []
    for wait_until in (0.0, 2.8, 4.2):
        time.sleep(max(0.0, wait_until - (time.monotonic() - after)))
        sent = time.monotonic()
        batch = retrieve_batch(api_key=KEY, batch_id="batch_p")
        reads.append((batch, statuses_between(sent - after, time.monotonic() - before)))
    for batch, possible in reads:
        assert batch.status in possible, (batch.status, possible)
    # When each answer comes within its step (the usual case, CI's loaded machine included),
    # each span holds one status and the reads see validating, in_progress, completed.
    (first, _), (middle, _), (last, _) = reads
    if middle.status == "in_progress":
        assert 0 < middle.request_completed < 50
    assert last.status != "completed" or last.request_completed == 50


def test_rate_limit_is_retryable_with_retry_after_seconds(fake):
    fake.add_batch("batch_a")
    fake.fail("openai.retrieve", "429", retry_after=7)
    with pytest.raises(NotSent) as caught:
        retrieve_batch(api_key=KEY, batch_id="batch_a")
    assert caught.value.retry_after == 7.0 and "429" in caught.value.message
    assert_secret_free(caught.value, KEY)


def test_retry_after_as_an_http_date_is_honoured(fake):
    fake.add_batch("batch_a")
    fake.fail(
        "openai.retrieve",
        "429",
        retry_after=format_datetime(datetime.now(UTC) + timedelta(seconds=30), usegmt=True),
    )
    with pytest.raises(NotSent) as caught:
        retrieve_batch(api_key=KEY, batch_id="batch_a")
    assert 25 <= caught.value.retry_after <= 31


def test_server_error_is_retryable(fake):
    fake.add_batch("batch_a")
    fake.fail("openai.retrieve", "500")
    with pytest.raises(NotSent) as caught:
        retrieve_batch(api_key=KEY, batch_id="batch_a")
    assert caught.value.retry_after is None
    assert retrieve_batch(api_key=KEY, batch_id="batch_a").status == "completed"  # one-off fault


def test_rejected_key_is_an_auth_error_that_never_shows_the_key(fake):
    fake.add_batch("batch_a")
    fake.reject_openai_key(KEY)
    with pytest.raises(CredentialsRejected) as caught:
        retrieve_batch(api_key=KEY, batch_id="batch_a")
    assert caught.value.message == "OpenAI rejected the API key (HTTP 401)."
    assert_secret_free(caught.value, KEY)
    fake.fail("openai.retrieve", "401")
    with pytest.raises(CredentialsRejected):
        retrieve_batch(api_key="sk-some-other-key-0000000000", batch_id="batch_a")


def test_unknown_batch_is_not_found(fake):
    with pytest.raises(ResourceNotFound) as caught:
        retrieve_batch(api_key=KEY, batch_id="batch_missing")
    assert "batch_missing" in caught.value.message
    fake.add_batch("batch_a")
    fake.fail("openai.retrieve", "404")
    with pytest.raises(ResourceNotFound):
        retrieve_batch(api_key=KEY, batch_id="batch_a")


def test_empty_inputs_are_refused_without_a_request(fake):
    with pytest.raises(Rejected) as caught:
        retrieve_batch(api_key=KEY, batch_id="")
    assert type(caught.value) is Rejected  # not a key or batch problem the engine counts
    with pytest.raises(CredentialsRejected):
        retrieve_batch(api_key="", batch_id="batch_a")
    assert fake.requests() == []


@pytest.mark.parametrize("kind", ["timeout", "reset"])
def test_timeouts_and_resets_are_retryable(fake, short_timeouts, kind):
    fake.add_batch("batch_a")
    fake.fail("openai.retrieve", kind, delay=4)
    started = time.monotonic()
    with pytest.raises(NotSent) as caught:
        retrieve_batch(api_key=KEY, batch_id="batch_a")
    assert time.monotonic() - started < 3  # the SDK does not retry on its own (a retry: over 4 s)
    assert_secret_free(caught.value, KEY)
    assert len(fake.requests("openai.retrieve")) == 1


def test_slow_answer_within_the_timeout_succeeds(fake):
    fake.add_batch("batch_a")
    fake.fail("openai.retrieve", "slow", delay=1.0)
    assert retrieve_batch(api_key=KEY, batch_id="batch_a").status == "completed"


def test_unreachable_openai_is_retryable(settings):
    settings.OPENAI_BASE_URL = f"http://127.0.0.1:{_free_port()}/v1"
    with pytest.raises(NotSent):
        retrieve_batch(api_key=KEY, batch_id="batch_a")


def test_retrieve_many_reports_each_batch_and_runs_concurrently(fake, settings):
    settings.OPENAI_TIMEOUT_SECONDS = 10
    for name in ("batch_1", "batch_2", "batch_3", "batch_4"):
        fake.add_batch(name, finish_after=0)
    fake.fail("openai.retrieve", "404", target="batch_3")
    fake.fail("openai.retrieve", "429", target="batch_4", retry_after=2)
    fake.set_latency(1.0)
    names = ["batch_1", "batch_2", "batch_3", "batch_4", "batch_1"]
    answers = retrieve_many([(KEY, name) for name in names])
    results = {batch_id: answer for (key, batch_id), answer in answers.items() if key == KEY}
    assert len(results) == len(answers)
    # Concurrent, not one after another: all four arrived before the first (1 s) answer left.
    arrivals = [r["time"] for r in fake.requests("openai.retrieve")]
    assert len(arrivals) == 4 and max(arrivals) - min(arrivals) < 1.0
    assert list(results) == ["batch_1", "batch_2", "batch_3", "batch_4"]
    assert results["batch_1"].status == "completed" and results["batch_2"].status == "completed"
    assert isinstance(results["batch_3"], ResourceNotFound)
    assert isinstance(results["batch_4"], NotSent) and results["batch_4"].retry_after == 2
    assert retrieve_many([]) == {}


def test_retrieve_many_with_a_bad_key_gives_auth_errors(fake):
    fake.add_batch("batch_1")
    fake.reject_openai_key(KEY)
    results = retrieve_many([(KEY, "batch_1"), (KEY, "batch_2")])
    assert list(results) == [(KEY, "batch_1"), (KEY, "batch_2")]
    assert all(isinstance(r, CredentialsRejected) for r in results.values())
    assert all(isinstance(r, IntegrationError) for r in results.values())


def test_clients_are_cached_per_key_and_base_url(fake):
    first = oai._clients.get(KEY)
    assert oai._clients.get(KEY) is first
    assert oai._clients.get("sk-another-key-000000000000") is not first
    assert all(KEY not in str(k) for k in oai._clients._clients)  # keyed by fingerprint


# --- Keboola: URL and payload ---------------------------------------------------------------
@pytest.mark.parametrize(
    ("stack", "queue"),
    [
        ("https://connection.eu-central-1.keboola.com", "https://queue.eu-central-1.keboola.com"),
        ("https://connection.keboola.com", "https://queue.keboola.com"),
        ("https://connection.keboola.com/", "https://queue.keboola.com"),
        (
            "https://connection.north-europe.azure.keboola.com/admin/projects",
            "https://queue.north-europe.azure.keboola.com",
        ),
        ("https://connection.us-east4.gcp.keboola.com", "https://queue.us-east4.gcp.keboola.com"),
        ("  https://connection.keboola.com  ", "https://queue.keboola.com"),
        ("http://127.0.0.1:8001", "http://127.0.0.1:8001"),
        ("http://localhost:8001/", "http://localhost:8001"),
    ],
)
def test_queue_url_replaces_only_the_first_label(stack, queue):
    assert queue_url_from_stack(stack) == queue


@pytest.mark.parametrize(
    "stack",
    [
        "https://queue.keboola.com",
        "https://keboola.com",
        "https://connection.keboola",
        "http://connection.keboola.com",
        "ftp://connection.keboola.com",
        "connection.keboola.com",
        "https://user:pw@connection.keboola.com",
        "https://connection.keboola.com.evil/?x=1",
        "https://10.0.0.1:8001",
        "",
    ],
)
def test_queue_url_refuses_anything_else(stack):
    with pytest.raises(ValueError, match="Keboola stack URL"):
        queue_url_from_stack(stack)


def test_local_stack_urls_need_allow_local_urls(settings):
    settings.ALLOW_LOCAL_URLS = False
    with pytest.raises(ValueError, match="ALLOW_LOCAL_URLS"):
        queue_url_from_stack("http://127.0.0.1:8001")


def test_trigger_payload_is_exactly_the_documented_body():
    # Verbatim from API.md, "Keboola trigger (outbound)".
    documented = """{"mode": "run", "component": "<component id>", "config": "<configuration id>",
 "variableValuesData": {"values": [
   {"name": "batch_ids_completed", "value": "[\\"batch_a\\", \\"batch_b\\"]"},
   {"name": "batch_ids_failed", "value": "[\\"batch_c\\"]"},
   {"name": "batch_count_total", "value": "3"},
   {"name": "batch_count_completed", "value": "2"},
   {"name": "batch_count_failed", "value": "1"}]}}"""
    payload = build_trigger_payload(
        component_id="<component id>",
        configuration_id="<configuration id>",
        completed_batch_ids=["batch_a", "batch_b"],
        failed_batch_ids=["batch_c"],
    )
    assert json.dumps(payload) == json.dumps(json.loads(documented))  # same keys, same order
    validate_keboola_request("POST", "/jobs", payload)
    empty = build_trigger_payload(
        component_id="c", configuration_id="1", completed_batch_ids=[], failed_batch_ids=[]
    )
    assert [v["value"] for v in empty["variableValuesData"]["values"]] == ["[]", "[]", "0", "0", "0"]


# --- Keboola: calls -------------------------------------------------------------------------
def _payload(completed=("batch_a", "batch_b"), failed=("batch_c",)):
    return build_trigger_payload(
        component_id=COMPONENT,
        configuration_id=CONFIG,
        completed_batch_ids=list(completed),
        failed_batch_ids=list(failed),
    )


def test_create_job_sends_the_documented_request(fake):
    payload = _payload()
    job = create_job(stack_url=fake.stack_url, token=TOKEN, payload=payload)
    assert isinstance(job, KeboolaJob)
    assert job.id.isdigit() and job.status == "created" and job.is_finished is False
    assert job.url == f"{fake.stack_url}/jobs/{job.id}"
    assert job.created_time.tzinfo is not None and job.duration_seconds is None
    assert job.variable_values == payload["variableValuesData"]["values"]
    (sent,) = fake.requests("keboola.create")
    assert (sent["method"], sent["path"], sent["query"]) == ("POST", "/jobs", {})
    assert sent["auth_fingerprint"] == fingerprint(TOKEN)  # X-StorageApi-Token carried the token
    assert sent["body"] == payload
    validate_keboola_request("POST", "/jobs", sent["body"])
    assert fake.keboola_jobs()[0]["variables"]["batch_ids_failed"] == '["batch_c"]'
    assert TOKEN not in json.dumps([fake.requests(), fake.keboola_jobs()])


def test_get_job_follows_the_job_to_success(fake):
    fake.configure_keboola(start_after=0.1, finish_after=0.2, outcome="success")
    job = create_job(stack_url=fake.stack_url, token=TOKEN, payload=_payload())
    time.sleep(0.5)
    done = get_job(stack_url=fake.stack_url, token=TOKEN, job_id=job.id)
    assert (done.id, done.status, done.is_finished) == (job.id, "success", True)
    assert done.duration_seconds == 0.0


def test_get_job_reports_an_error_outcome(fake):
    fake.configure_keboola(start_after=0, finish_after=0, outcome="error")
    job = create_job(stack_url=fake.stack_url, token=TOKEN, payload=_payload())
    assert get_job(stack_url=fake.stack_url, token=TOKEN, job_id=job.id).status == "error"


def test_search_jobs_finds_jobs_of_the_configuration_since_a_time(fake):
    before = datetime.now(UTC) - timedelta(seconds=1)
    job = create_job(stack_url=fake.stack_url, token=TOKEN, payload=_payload())
    other = build_trigger_payload(
        component_id=COMPONENT, configuration_id="999", completed_batch_ids=[], failed_batch_ids=[]
    )
    create_job(stack_url=fake.stack_url, token=TOKEN, payload=other)
    found = search_jobs(
        stack_url=fake.stack_url,
        token=TOKEN,
        component_id=COMPONENT,
        configuration_id=CONFIG,
        created_after=before,
    )
    assert [j.id for j in found] == [job.id]
    assert found[0].variable_values[0] == {"name": "batch_ids_completed", "value": '["batch_a", "batch_b"]'}
    later = search_jobs(
        stack_url=fake.stack_url,
        token=TOKEN,
        component_id=COMPONENT,
        configuration_id=CONFIG,
        created_after=datetime.now(UTC) + timedelta(seconds=5),
    )
    assert later == []
    (sent,) = fake.requests("keboola.search")[:1]
    assert sent["query"]["componentId[]"] == [COMPONENT] and sent["query"]["configId[]"] == [CONFIG]
    assert datetime.fromisoformat(sent["query"]["createdTimeFrom"][0]) <= before
    assert sent["query"]["limit"] == ["100"]


def test_create_rate_limited_is_not_sent_with_retry_after(fake):
    fake.fail("keboola.create", "429", retry_after=12)
    with pytest.raises(NotSent) as caught:
        create_job(stack_url=fake.stack_url, token=TOKEN, payload=_payload())
    assert caught.value.retry_after == 12.0
    assert fake.keboola_jobs_created == 0


def test_create_server_error_is_an_unknown_outcome(fake):
    fake.fail("keboola.create", "500")
    with pytest.raises(OutcomeUnknown):
        create_job(stack_url=fake.stack_url, token=TOKEN, payload=_payload())


@pytest.mark.parametrize("kind", ["401", "404"])
def test_create_client_errors_are_rejections(fake, kind):
    fake.fail("keboola.create", kind)
    with pytest.raises(Rejected) as caught:
        create_job(stack_url=fake.stack_url, token=TOKEN, payload=_payload())
    assert caught.value.status_code == int(kind)
    assert_secret_free(caught.value, TOKEN)


def test_bad_token_is_rejected_without_showing_it(fake):
    fake.reject_keboola_token(TOKEN)
    with pytest.raises(CredentialsRejected) as caught:
        create_job(stack_url=fake.stack_url, token=TOKEN, payload=_payload())
    assert caught.value.status_code == 401 and "token" in caught.value.message
    assert_secret_free(caught.value, TOKEN)
    assert TOKEN not in json.dumps(fake.requests())


def test_invalid_body_is_rejected_with_keboolas_reason(fake):
    with pytest.raises(Rejected) as caught:
        create_job(stack_url=fake.stack_url, token=TOKEN, payload={"mode": "run", "config": CONFIG})
    assert caught.value.status_code == 400 and "component" in caught.value.message


def test_create_timeout_is_an_unknown_outcome(fake, short_timeouts):
    fake.fail("keboola.create", "timeout", delay=4)
    started = time.monotonic()
    with pytest.raises(OutcomeUnknown) as caught:
        create_job(stack_url=fake.stack_url, token=TOKEN, payload=_payload())
    assert time.monotonic() - started < 3  # at the client's timeout, not at the end of the hang
    assert_secret_free(caught.value, TOKEN)


def test_timeout_after_create_is_unknown_and_search_finds_the_job(fake, short_timeouts):
    started_at = datetime.now(UTC)
    fake.fail("keboola.create", "timeout_after_create", delay=2)
    with pytest.raises(OutcomeUnknown):
        create_job(stack_url=fake.stack_url, token=TOKEN, payload=_payload())
    assert fake.keboola_jobs_created == 1
    found = search_jobs(
        stack_url=fake.stack_url,
        token=TOKEN,
        component_id=COMPONENT,
        configuration_id=CONFIG,
        created_after=started_at,
    )
    assert [j.id for j in found] == [fake.keboola_jobs()[0]["id"]]
    assert found[0].variable_values == _payload()["variableValuesData"]["values"]


def test_reset_after_sending_is_an_unknown_outcome(fake):
    fake.fail("keboola.create", "reset")
    with pytest.raises(OutcomeUnknown):
        create_job(stack_url=fake.stack_url, token=TOKEN, payload=_payload())
    assert fake.keboola_jobs_created == 0  # the fake reset before creating; the client cannot know
    assert create_job(stack_url=fake.stack_url, token=TOKEN, payload=_payload()).status == "created"


def test_connection_refused_is_not_sent(settings):
    settings.KEBOOLA_TIMEOUT_SECONDS = 0.5
    with pytest.raises(NotSent) as caught:
        create_job(stack_url=f"http://127.0.0.1:{_free_port()}", token=TOKEN, payload=_payload())
    assert "connect" in caught.value.message
    assert_secret_free(caught.value, TOKEN)


@pytest.mark.parametrize("kind", ["500", "timeout", "reset", "429"])
def test_read_failures_are_safe_to_retry(fake, short_timeouts, kind):
    job = create_job(stack_url=fake.stack_url, token=TOKEN, payload=_payload())
    fake.fail("keboola.get", kind, delay=1.5)
    fake.fail("keboola.search", kind, delay=1.5)
    with pytest.raises(NotSent):
        get_job(stack_url=fake.stack_url, token=TOKEN, job_id=job.id)
    with pytest.raises(NotSent):
        search_jobs(
            stack_url=fake.stack_url,
            token=TOKEN,
            component_id=COMPONENT,
            configuration_id=CONFIG,
            created_after=datetime.now(UTC),
        )
    assert get_job(stack_url=fake.stack_url, token=TOKEN, job_id=job.id).id == job.id


def test_unknown_job_is_rejected_as_404(fake):
    with pytest.raises(Rejected) as caught:
        get_job(stack_url=fake.stack_url, token=TOKEN, job_id="424242")
    assert caught.value.status_code == 404


def test_bad_stack_url_or_missing_token_is_rejected_before_sending(fake):
    with pytest.raises(Rejected, match="stack URL"):
        create_job(stack_url="https://example.com", token=TOKEN, payload=_payload())
    with pytest.raises(Rejected, match="token"):
        create_job(stack_url=fake.stack_url, token="", payload=_payload())
    assert fake.requests() == []


def test_integrations_are_the_only_modules_importing_the_vendor_libraries():
    root = Path(django_settings.BASE_DIR)
    allowed = {
        root / "polling/integrations/openai.py",
        root / "polling/integrations/keboola.py",
        root / "polling/integrations/webhooks.py",
    }
    pattern = re.compile(r"^\s*(import|from)\s+(openai|requests)\b", re.MULTILINE)
    offenders = [
        str(path.relative_to(root))
        for path in root.rglob("*.py")
        if ".venv" not in path.parts
        and "tests" not in path.parts
        and path not in allowed
        and pattern.search(path.read_text(errors="ignore"))
    ]
    assert offenders == []


# --- Outgoing webhooks (the fake's Keboola route stands in for a receiver) ----------------------
@pytest.mark.parametrize(
    "kind, outcome, words",
    [
        ("429", NotSent, "rate limiting (HTTP 429)"),
        ("500", OutcomeUnknown, "answered HTTP 500"),
        ("401", Rejected, "refused the webhook (HTTP 401)"),
        ("reset", OutcomeUnknown, "was lost before an answer"),
        ("timeout", OutcomeUnknown, "did not answer within 0.5 s"),
    ],
)
def test_webhook_failures_say_whether_the_receiver_may_have_acted(fake, settings, kind, outcome, words):
    settings.WEBHOOK_TIMEOUT_SECONDS = 0.5
    fake.fail("keboola.create", kind, delay=1.5, retry_after=4)
    with pytest.raises(outcome) as caught:
        post_json(url=f"{fake.stack_url}/jobs", payload={"event": "x"}, signing_secret=TOKEN)
    assert type(caught.value) is outcome and words in caught.value.message
    assert caught.value.retry_after == (4.0 if kind == "429" else None)
    assert_secret_free(caught.value, TOKEN)


def test_webhook_to_a_closed_port_is_not_sent(settings):
    settings.WEBHOOK_TIMEOUT_SECONDS = 0.5
    with pytest.raises(NotSent) as caught:
        post_json(url=f"http://127.0.0.1:{_free_port()}/hook", payload={"event": "x"})
    assert caught.value.message.startswith("Could not connect to 127.0.0.1:")
