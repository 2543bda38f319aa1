"""The integration outcomes: the Retry-After parser and the transport classifier, the latter
with the real exceptions `requests` and the OpenAI SDK raise against the fake servers."""

from __future__ import annotations

import socket
import time
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import openai
import pytest
import requests

from teckochecker.integrations import (
    CredentialsRejected,
    NotSent,
    OutcomeUnknown,
    Rejected,
    ResourceNotFound,
    Transport,
    parse_retry_after,
    transport_failure,
    transport_outcome,
)

KEY = "sk-proj-outcomes-test-key-abcdefghijklmnop"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _http_date(seconds_from_now: float) -> str:
    return format_datetime(datetime.now(UTC) + timedelta(seconds=seconds_from_now), usegmt=True)


# --- parse_retry_after ------------------------------------------------------------------------
@pytest.mark.parametrize(
    "headers, expected",
    [
        ({"Retry-After": "7"}, 7.0),
        ({"retry-after": " 2.5 "}, 2.5),
        ({"RETRY-AFTER": "0"}, 0.0),
        ({"retry-after-ms": "1500", "Retry-After": "9"}, 1.5),  # OpenAI's finer hint wins
        ({"retry-after-ms": "soon", "Retry-After": "9"}, 9.0),
        ({}, None),
        ({"Retry-After": ""}, None),
        ({"Retry-After": "-3"}, None),
        ({"Retry-After": "inf"}, None),
        ({"Retry-After": "nan"}, None),
        ({"Retry-After": "tomorrow-ish"}, None),
        ({"Retry-After": _http_date(-60)}, 0.0),  # a date in the past: go now
    ],
)
def test_retry_after_in_seconds_or_milliseconds(headers, expected):
    assert parse_retry_after(headers) == expected


def test_retry_after_as_an_http_date():
    assert 25 <= parse_retry_after({"Retry-After": _http_date(30)}) <= 30


def test_retry_after_reads_the_headers_of_requests_and_httpx_responses(fake_servers):
    fake_servers.fail("keboola.create", "429", retry_after=12)
    response = requests.post(f"{fake_servers.stack_url}/jobs", json={}, timeout=5)
    assert response.status_code == 429 and parse_retry_after(response.headers) == 12.0

    fake_servers.add_batch("batch_a")
    fake_servers.fail("openai.retrieve", "429", retry_after=_http_date(20))
    client = openai.OpenAI(api_key=KEY, base_url=fake_servers.openai_base_url, max_retries=0)
    with pytest.raises(openai.RateLimitError) as caught:
        client.batches.retrieve("batch_a")
    assert 15 <= parse_retry_after(caught.value.response.headers) <= 20


# --- transport_failure with requests ----------------------------------------------------------
def _requests_error(url: str, *, read_timeout: float = 0.5) -> requests.RequestException:
    with pytest.raises(requests.RequestException) as caught:
        requests.post(url, json={}, timeout=(5, read_timeout), allow_redirects=False)
    return caught.value


def test_requests_refused_connection_was_never_sent():
    exc = _requests_error(f"http://127.0.0.1:{_free_port()}/jobs")
    assert transport_failure(exc) is Transport.NOT_CONNECTED


def test_requests_unknown_host_was_never_sent():
    exc = _requests_error("http://no-such-host.invalid/jobs")
    assert transport_failure(exc) is Transport.NOT_CONNECTED


def test_requests_tls_handshake_failure_was_never_sent(fake_servers):
    # The fake speaks plain HTTP: the TLS handshake fails before anything is sent.
    exc = _requests_error(fake_servers.stack_url.replace("http://", "https://") + "/jobs")
    assert isinstance(exc, requests.exceptions.SSLError)
    assert transport_failure(exc) is Transport.NOT_CONNECTED


def test_requests_read_timeout_after_sending_timed_out(fake_servers):
    fake_servers.fail("keboola.create", "timeout", delay=2)
    exc = _requests_error(f"{fake_servers.stack_url}/jobs")
    assert isinstance(exc, requests.ReadTimeout)
    assert transport_failure(exc) is Transport.TIMED_OUT
    assert len(fake_servers.requests("keboola.create")) == 1  # it was sent


def test_requests_reset_after_sending_was_lost(fake_servers):
    fake_servers.fail("keboola.create", "reset")
    exc = _requests_error(f"{fake_servers.stack_url}/jobs")
    assert transport_failure(exc) is Transport.LOST


def test_requests_bad_url_is_other():
    with pytest.raises(requests.RequestException) as caught:
        requests.get("http://", timeout=1)
    assert transport_failure(caught.value) is Transport.OTHER


# --- transport_failure with the OpenAI SDK (httpx underneath) ---------------------------------
def _openai_error(base_url: str) -> openai.APIConnectionError:
    client = openai.OpenAI(api_key=KEY, base_url=base_url, max_retries=0, timeout=0.5)
    with pytest.raises(openai.APIConnectionError) as caught:
        client.batches.retrieve("batch_a")
    return caught.value


def test_openai_refused_connection_was_never_sent():
    exc = _openai_error(f"http://127.0.0.1:{_free_port()}/v1")
    assert transport_failure(exc) is Transport.NOT_CONNECTED


def test_openai_timeout_timed_out(fake_servers):
    fake_servers.add_batch("batch_a")
    fake_servers.fail("openai.retrieve", "timeout", delay=2)
    exc = _openai_error(fake_servers.openai_base_url)
    assert isinstance(exc, openai.APITimeoutError)
    assert transport_failure(exc) is Transport.TIMED_OUT


def test_openai_reset_was_lost(fake_servers):
    fake_servers.add_batch("batch_a")
    fake_servers.fail("openai.retrieve", "reset")
    exc = _openai_error(fake_servers.openai_base_url)
    assert not isinstance(exc, openai.APITimeoutError)
    assert transport_failure(exc) is Transport.LOST


# --- transport_outcome ------------------------------------------------------------------------
def test_a_write_that_never_connected_is_not_sent_and_any_other_failure_is_unknown(fake_servers):
    refused = _requests_error(f"http://127.0.0.1:{_free_port()}/jobs")
    outcome = transport_outcome(refused, peer="Keboola at x", timeout=0.5, writes=True, unknown_hint=" Hm.")
    assert type(outcome) is NotSent and outcome.message == "Could not connect to Keboola at x."

    fake_servers.fail("keboola.create", "timeout", delay=2)
    timed_out = _requests_error(f"{fake_servers.stack_url}/jobs")
    outcome = transport_outcome(timed_out, peer="Keboola at x", timeout=0.5, writes=True, unknown_hint=" Hm.")
    assert type(outcome) is OutcomeUnknown
    assert outcome.message == "Keboola at x did not answer within 0.5 s. Hm."

    fake_servers.fail("keboola.create", "reset")
    lost = _requests_error(f"{fake_servers.stack_url}/jobs")
    outcome = transport_outcome(lost, peer="h", timeout=1, writes=True)
    assert (
        type(outcome) is OutcomeUnknown
        and outcome.message == "The connection to h was lost before an answer."
    )


def test_a_read_that_failed_is_always_not_sent(fake_servers):
    fake_servers.fail("keboola.get", "reset")
    started = time.monotonic()
    with pytest.raises(requests.RequestException) as caught:
        requests.get(f"{fake_servers.stack_url}/jobs/1", timeout=(5, 0.5))
    assert time.monotonic() - started < 5
    outcome = transport_outcome(caught.value, peer="h", timeout=0.5, writes=False, unknown_hint=" Hm.")
    assert type(outcome) is NotSent and "Hm." not in outcome.message
    assert outcome.__cause__ is None and outcome.__context__ is None  # nothing of requests chained


# --- the hierarchy ----------------------------------------------------------------------------
def test_the_refusals_the_engine_counts_are_rejections():
    assert issubclass(CredentialsRejected, Rejected) and issubclass(ResourceNotFound, Rejected)
    assert not issubclass(NotSent, Rejected) and not issubclass(OutcomeUnknown, NotSent)
    error = NotSent("Rate limited.", status_code=429, retry_after=3.0)
    assert (error.message, error.status_code, error.retry_after, str(error)) == (
        "Rate limited.",
        429,
        3.0,
        "Rate limited.",
    )
