"""The fake OpenAI + Keboola server: real HTTP, answers checked against the vendors' OpenAPI files."""

from __future__ import annotations

import json
import socket
import time
import urllib.error
import urllib.request
from urllib.parse import urlencode

import pytest

from fakes import FakeServer, RemoteFake, fingerprint
from fakes.schemas import (
    validate_keboola_request,
    validate_keboola_response,
    validate_openai_response,
)

OPENAI_KEY = "sk-test-fake-key-0123456789abcdef"
KEBOOLA_TOKEN = "1234-56789-abcdefghijklmnopqrstuvwxyz"
JOB_BODY = {
    "mode": "run",
    "component": "kds-team.app-custom-python",
    "config": "12345",
    "variableValuesData": {"values": [{"name": "batch_ids_completed", "value": '["batch_a"]'}]},
}


def call(url, *, method="GET", headers=None, body=None, timeout=5.0):
    """(status, headers, JSON body) of one request; HTTP errors are answers too."""
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    if data is not None:
        request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.headers, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers, json.loads(exc.read())


def openai_get(fake, path, key=OPENAI_KEY, **kw):
    return call(f"{fake.openai_base_url}{path}", headers={"Authorization": f"Bearer {key}"}, **kw)


def keboola(fake, path, *, method="GET", body=None, token=KEBOOLA_TOKEN, **kw):
    headers = {"X-StorageApi-Token": token} if token else {}
    return call(f"{fake.stack_url}{path}", method=method, headers=headers, body=body, **kw)


# --- OpenAI ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "status",
    ["validating", "in_progress", "finalizing", "completed", "failed", "expired", "cancelling", "cancelled"],
)
def test_every_batch_status_is_a_valid_batch_object(fake_servers, status):
    fake_servers.set_batch("batch_x", status=status, completed=3, failed=1, total=5)
    code, _headers, body = openai_get(fake_servers, "/batches/batch_x")
    assert code == 200
    validate_openai_response("GET", "/batches/{batch_id}", 200, body)
    assert body["status"] == status
    assert body["request_counts"] == {"total": 5, "completed": 3, "failed": 1}


def test_scripted_batch_progresses_with_rising_counts(fake_servers):
    fake_servers.add_batch(
        "batch_p",
        # Seconds apart, not tenths: each state must be seen even when a loaded machine (the
        # suite runs in parallel) takes most of a second to answer one request.
        script=[(0, "validating"), (2, "in_progress"), (5, "finalizing"), (7, "completed")],
        total=100,
    )
    seen = []
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        body = openai_get(fake_servers, "/batches/batch_p")[2]
        validate_openai_response("GET", "/batches/{batch_id}", 200, body)
        seen.append((body["status"], body["request_counts"]["completed"]))
        if body["status"] == "completed":
            break
        time.sleep(0.05)
    statuses = [s for s, _ in seen]
    assert statuses[0] == "validating" and statuses[-1] == "completed"
    assert "in_progress" in statuses and "finalizing" in statuses
    progress = [c for s, c in seen if s == "in_progress"]
    assert progress == sorted(progress) and 0 < max(progress) < 100
    assert seen[-1][1] == 100
    assert body["completed_at"] >= body["finalizing_at"] >= body["in_progress_at"] >= body["created_at"]
    assert "failed_at" not in body


@pytest.mark.parametrize(
    ("outcome", "stamp"),
    [
        ("completed", "completed_at"),
        ("failed", "failed_at"),
        ("expired", "expired_at"),
        ("cancelled", "cancelled_at"),
    ],
)
def test_finish_after_helper_reaches_the_outcome(fake_servers, outcome, stamp):
    fake_servers.add_batch("batch_o", finish_after=2, outcome=outcome, total=10, failed_requests=2)
    assert openai_get(fake_servers, "/batches/batch_o")[2]["status"] == "validating"
    time.sleep(2.1)
    body = openai_get(fake_servers, "/batches/batch_o")[2]
    validate_openai_response("GET", "/batches/{batch_id}", 200, body)
    assert body["status"] == outcome and isinstance(body[stamp], int)
    if outcome == "failed":
        assert body["errors"]["data"][0]["code"] == "invalid_json_line"
    if outcome == "completed":
        assert body["request_counts"] == {"total": 10, "completed": 8, "failed": 2}


def test_list_is_newest_first_and_pages_with_after(fake_servers):
    for name in ("batch_1", "batch_2", "batch_3"):
        fake_servers.add_batch(name)
        time.sleep(0.002)
    code, _h, page = openai_get(fake_servers, "/batches?limit=2")
    validate_openai_response("GET", "/batches", 200, page)
    assert [b["id"] for b in page["data"]] == ["batch_3", "batch_2"]
    assert (page["first_id"], page["last_id"], page["has_more"]) == ("batch_3", "batch_2", True)
    page = openai_get(fake_servers, "/batches?limit=2&after=batch_2")[2]
    validate_openai_response("GET", "/batches", 200, page)
    assert [b["id"] for b in page["data"]] == ["batch_1"] and page["has_more"] is False
    empty = openai_get(fake_servers, "/batches?after=batch_1")[2]
    validate_openai_response("GET", "/batches", 200, empty)
    assert empty["data"] == []
    # List requests are counted apart from single reads; the batches they showed are not reads.
    assert fake_servers.stats()["openai_list_requests"] == 3
    assert fake_servers.openai_requests_per_batch() == {}
    assert len(fake_servers.timings()["batches"]["batch_1"]["listed"]) == 1
    # A check by either way counts as an observation (tests wait on it for "checked once").
    openai_get(fake_servers, "/batches/batch_1")
    assert fake_servers.openai_observations_per_batch() == {"batch_1": 2, "batch_2": 1, "batch_3": 1}
    assert RemoteFake(fake_servers.url).openai_observations_per_batch() == {
        "batch_1": 2,
        "batch_2": 1,
        "batch_3": 1,
    }
    # Those three pages were one walk (each went on where the one before ended); a page that
    # starts anywhere else begins another.
    assert fake_servers.stats()["openai_list_walks"] == 1
    openai_get(fake_servers, "/batches?limit=1&after=batch_3")
    assert fake_servers.stats()["openai_list_walks"] == 2
    assert fake_servers.timings()["list_walks"] == 2


def test_openai_auth_and_not_found_errors_use_openais_shape(fake_servers):
    fake_servers.reject_openai_key(OPENAI_KEY)
    fake_servers.add_batch("batch_a")
    code, _h, body = openai_get(fake_servers, "/batches/batch_a")
    assert code == 401 and body["error"]["code"] == "invalid_api_key"
    validate_openai_response("GET", "/batches/{batch_id}", 401, body)
    code, _h, body = call(f"{fake_servers.openai_base_url}/batches/batch_a")
    assert code == 401
    code, _h, body = openai_get(fake_servers, "/batches/batch_nope", key="sk-other-key-123456789")
    assert code == 404 and "batch_nope" in body["error"]["message"]
    validate_openai_response("GET", "/batches/{batch_id}", 404, body)


# --- Keboola --------------------------------------------------------------------------------
def test_create_job_answers_201_with_a_full_job(fake_servers):
    validate_keboola_request("POST", "/jobs", JOB_BODY)
    code, _h, job = keboola(fake_servers, "/jobs", method="POST", body=JOB_BODY)
    assert code == 201
    validate_keboola_response("POST", "/jobs", 201, job)
    assert job["id"].isdigit() and job["runId"] == job["id"]
    assert (job["status"], job["isFinished"], job["mode"]) == ("created", False, "run")
    assert job["url"] == f"{fake_servers.stack_url}/jobs/{job['id']}"
    assert job["variableValuesData"] == JOB_BODY["variableValuesData"]
    assert fake_servers.keboola_jobs_created == 1
    assert fake_servers.keboola_jobs()[0]["variables"] == {"batch_ids_completed": '["batch_a"]'}


@pytest.mark.parametrize("outcome", ["success", "error"])
def test_job_progresses_to_its_outcome(fake_servers, outcome):
    # Seconds apart, so each state is seen on a loaded machine too.
    fake_servers.configure_keboola(start_after=2, finish_after=5, outcome=outcome)
    job = keboola(fake_servers, "/jobs", method="POST", body=JOB_BODY)[2]
    seen = []
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        code, _h, current = keboola(fake_servers, f"/jobs/{job['id']}")
        assert code == 200
        validate_keboola_response("GET", "/jobs/{jobId}", 200, current)
        seen.append(current["status"])
        if current["isFinished"]:
            break
        time.sleep(0.05)
    assert seen[0] == "created" and "processing" in seen and seen[-1] == outcome
    assert current["endTime"] and current["durationSeconds"] >= 0
    assert current["startTime"] >= current["createdTime"]


def test_search_filters_by_component_config_time_and_status(fake_servers):
    first = keboola(fake_servers, "/jobs", method="POST", body=JOB_BODY)[2]
    keboola(fake_servers, "/jobs", method="POST", body={**JOB_BODY, "config": "999"})
    keboola(fake_servers, "/jobs", method="POST", body={**JOB_BODY, "component": "other.component"})
    query = urlencode(
        [
            ("componentId[]", JOB_BODY["component"]),
            ("configId[]", "12345"),
            ("createdTimeFrom", "2020-01-01T00:00:00+00:00"),
        ]
    )
    code, _h, found = keboola(fake_servers, f"/search/jobs?{query}")
    assert code == 200
    validate_keboola_response("GET", "/search/jobs", 200, found)
    assert [j["id"] for j in found] == [first["id"]]
    assert len(keboola(fake_servers, f"/search/jobs?componentId={JOB_BODY['component']}")[2]) == 2
    assert keboola(fake_servers, "/search/jobs?createdTimeFrom=2999-01-01T00:00:00Z")[2] == []
    assert keboola(fake_servers, "/search/jobs?status[]=success")[2] == []
    assert len(keboola(fake_servers, "/search/jobs?status[]=created&limit=2")[2]) == 2


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        ({"mode": "run", "config": "1"}, "component"),
        ({**JOB_BODY, "mode": "fast"}, "mode"),
        ({**JOB_BODY, "variableValuesData": {"values": [{"name": "n", "value": 3}]}}, "must be a string"),
        ({**JOB_BODY, "variableValuesData": {}}, "values"),
    ],
)
def test_create_job_rejects_bodies_outside_the_schema(fake_servers, body, problem):
    code, _h, answer = keboola(fake_servers, "/jobs", method="POST", body=body)
    assert code == 400 and problem in answer["error"]
    validate_keboola_response("POST", "/jobs", 400, answer)
    assert fake_servers.keboola_jobs_created == 0


def test_keboola_token_errors_and_unknown_job(fake_servers):
    code, _h, answer = keboola(fake_servers, "/jobs", method="POST", body=JOB_BODY, token="")
    assert code == 401
    validate_keboola_response("POST", "/jobs", 401, answer)
    fake_servers.reject_keboola_token(KEBOOLA_TOKEN)
    assert keboola(fake_servers, "/jobs", method="POST", body=JOB_BODY)[0] == 401
    assert fake_servers.keboola_jobs_created == 0
    code, _h, answer = keboola(fake_servers, "/jobs/42", token="another-token")
    assert code == 404
    validate_keboola_response("GET", "/jobs/{jobId}", 404, answer)


# --- faults ---------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["429", "500", "401", "404"])
def test_status_faults_answer_in_each_vendors_error_shape(fake_servers, kind):
    fake_servers.add_batch("batch_a")
    fake_servers.fail("openai.retrieve", kind, times=1, retry_after=7)
    fake_servers.fail("keboola.create", kind, times=1, retry_after=7)
    code, headers, body = openai_get(fake_servers, "/batches/batch_a")
    assert code == int(kind)
    validate_openai_response("GET", "/batches/{batch_id}", code, body)
    code, kheaders, kbody = keboola(fake_servers, "/jobs", method="POST", body=JOB_BODY)
    assert code == int(kind)
    validate_keboola_response("POST", "/jobs", code, kbody)
    if kind == "429":
        assert headers["Retry-After"] == "7" and kheaders["Retry-After"] == "7"
    assert openai_get(fake_servers, "/batches/batch_a")[0] == 200  # times=1: used up
    assert fake_servers.keboola_jobs_created == 0


def test_timed_fault_lasts_for_its_seconds_and_target_limits_it(fake_servers):
    fake_servers.add_batch("batch_a")
    fake_servers.add_batch("batch_b")
    fake_servers.fail("openai.retrieve", "500", seconds=1.5, target="batch_a")
    assert [openai_get(fake_servers, "/batches/batch_a")[0] for _ in range(3)] == [500, 500, 500]
    assert openai_get(fake_servers, "/batches/batch_b")[0] == 200
    time.sleep(1.6)
    assert openai_get(fake_servers, "/batches/batch_a")[0] == 200


def test_timeout_fault_hangs_past_the_client_timeout(fake_servers):
    fake_servers.add_batch("batch_a")
    fake_servers.fail("openai.retrieve", "timeout", delay=3.0)
    with pytest.raises((TimeoutError, urllib.error.URLError)):
        openai_get(fake_servers, "/batches/batch_a", timeout=0.3)
    started = time.monotonic()
    assert openai_get(fake_servers, "/batches/batch_a")[0] == 200
    # Well before the hung request ends (2.7 s from here): it does not hold the server up.
    assert time.monotonic() - started < 2


def test_slow_fault_and_global_latency_delay_the_answer(fake_servers):
    fake_servers.add_batch("batch_a")
    fake_servers.fail("openai.retrieve", "slow", delay=0.2)
    started = time.monotonic()
    assert openai_get(fake_servers, "/batches/batch_a")[0] == 200
    assert time.monotonic() - started >= 0.2
    fake_servers.set_latency(0.05)
    started = time.monotonic()
    openai_get(fake_servers, "/batches/batch_a")
    assert time.monotonic() - started >= 0.05


def test_reset_fault_closes_without_answering(fake_servers):
    fake_servers.fail("keboola.get", "reset")
    with pytest.raises((ConnectionError, urllib.error.URLError, OSError)):
        keboola(fake_servers, "/jobs/1")
    assert keboola(fake_servers, "/jobs/1")[0] == 404


def test_timeout_after_create_creates_the_job_then_hangs(fake_servers):
    fake_servers.fail("keboola.create", "timeout_after_create", delay=1.0)
    with pytest.raises((TimeoutError, urllib.error.URLError)):
        keboola(fake_servers, "/jobs", method="POST", body=JOB_BODY, timeout=0.3)
    assert fake_servers.keboola_jobs_created == 1


def test_fault_arguments_are_checked(fake_servers):
    with pytest.raises(ValueError, match="route"):
        fake_servers.fail("openai.create", "500")
    with pytest.raises(ValueError, match="kind"):
        fake_servers.fail("openai.retrieve", "418")
    with pytest.raises(ValueError, match="keboola.create"):
        fake_servers.fail("keboola.get", "timeout_after_create")


def test_stop_cuts_off_a_hanging_request_quickly():
    fake = FakeServer().start()
    fake.fail("keboola.search", "timeout", delay=30)
    with pytest.raises((TimeoutError, urllib.error.URLError)):
        keboola(fake, "/search/jobs", timeout=0.2)
    started = time.monotonic()
    fake.stop()
    assert time.monotonic() - started < 2


# --- request log ----------------------------------------------------------------------------
def test_requests_are_recorded_with_secrets_only_as_fingerprints(fake_servers):
    fake_servers.add_batch("batch_a")
    openai_get(fake_servers, "/batches/batch_a")
    openai_get(fake_servers, "/batches/batch_a")
    keboola(fake_servers, "/jobs", method="POST", body=JOB_BODY)
    recorded = fake_servers.requests()
    assert [r["route"] for r in recorded] == ["openai.retrieve", "openai.retrieve", "keboola.create"]
    assert recorded[2]["body"] == JOB_BODY and recorded[2]["method"] == "POST"
    assert recorded[0]["auth_fingerprint"] == fingerprint(OPENAI_KEY)
    assert recorded[2]["auth_fingerprint"] == fingerprint(KEBOOLA_TOKEN)
    everything = json.dumps([recorded, fake_servers.keboola_jobs(), fake_servers.stats()])
    assert OPENAI_KEY not in everything and KEBOOLA_TOKEN not in everything
    assert fake_servers.openai_requests_per_batch() == {"batch_a": 2}
    assert fake_servers.requests("keboola.create")[0]["path"] == "/jobs"


# --- control over HTTP ----------------------------------------------------------------------
def test_remote_control_scripts_a_fake_in_another_process(fake_servers):
    remote = RemoteFake(fake_servers.url)
    assert remote.health()["ok"] is True
    remote.add_batch("batch_r", script=[(0, "in_progress"), (5, "completed")], total=10)
    remote.add_batches([{"id": "batch_s", "finish_after": 0}, {"id": "batch_t", "status": "failed"}])
    assert remote.batch("batch_s")["status"] == "completed"
    assert remote.batch("batch_t")["status"] == "failed"
    assert remote.batch("batch_missing") is None
    assert len(remote.list_batches()) == 3
    remote.fail("openai.retrieve", "429", times=1, retry_after=3)
    assert openai_get(fake_servers, "/batches/batch_r")[0] == 429
    remote.set_latency(0.01)
    remote.configure_keboola(start_after=0, finish_after=0, outcome="success")
    job = keboola(fake_servers, "/jobs", method="POST", body=JOB_BODY)[2]
    assert job["status"] == "success" and job["isFinished"] is True
    assert remote.keboola_jobs()[0]["id"] == job["id"] and remote.keboola_jobs_created == 1
    assert [r["route"] for r in remote.requests("keboola.create")] == ["keboola.create"]
    assert remote.openai_requests_per_batch() == {"batch_r": 1}
    remote.reject_keboola_token(KEBOOLA_TOKEN)
    assert keboola(fake_servers, "/jobs/1")[0] == 401
    remote.fail("keboola.get", "500", seconds=10)
    remote.clear_faults()
    remote.reset()
    assert remote.stats()["batches"] == 0 and remote.keboola_jobs() == []
    code, _h, answer = call(
        f"{fake_servers.url}/_control/faults", method="POST", body={"route": "x", "kind": "500"}
    )
    assert code == 400 and "route" in answer["error"]


def test_fake_binds_loopback_on_a_free_port(fake_servers):
    assert fake_servers.url.startswith("http://127.0.0.1:")
    assert (
        fake_servers.openai_base_url == fake_servers.url + "/v1"
        and fake_servers.stack_url == fake_servers.url
    )
    with socket.create_connection(("127.0.0.1", int(fake_servers.url.rsplit(":", 1)[1])), timeout=1):
        pass


def test_set_batch_without_counts_lets_them_follow_the_status(fake_servers):
    fake_servers.set_batch("batch_x", status="in_progress", completed=10, total=100)
    assert fake_servers.batch("batch_x")["request_counts"]["completed"] == 10
    body = fake_servers.set_batch("batch_x", status="completed")
    assert body["request_counts"] == {"total": 100, "completed": 100, "failed": 0}
    assert body["in_progress_at"] <= body["completed_at"]


# --- files and Storage API: what the script templates call (neither is in the spec copies) -----
def test_a_completed_batch_output_and_error_files_are_jsonl_one_line_per_request(fake_servers):
    batch = fake_servers.set_batch("batch_files", status="completed", completed=3, failed=2, total=5)
    request = urllib.request.Request(
        f"{fake_servers.openai_base_url}/files/{batch['output_file_id']}/content",
        headers={"Authorization": f"Bearer {OPENAI_KEY}"},
    )
    with urllib.request.urlopen(request, timeout=5) as response:
        lines = [json.loads(line) for line in response.read().splitlines()]
    assert [line["custom_id"] for line in lines] == ["request-1", "request-2", "request-3"]
    assert all(line["response"]["status_code"] == 200 and line["error"] is None for line in lines)

    request.full_url = f"{fake_servers.openai_base_url}/files/{batch['error_file_id']}/content"
    with urllib.request.urlopen(request, timeout=5) as response:
        errors = [json.loads(line) for line in response.read().splitlines()]
    assert [e["custom_id"] for e in errors] == ["request-4", "request-5"] and errors[0]["response"] is None

    code, _headers, body = openai_get(fake_servers, "/files/file-unknown/content")
    assert code == 404
    validate_openai_response("GET", "/batches/{batch_id}", code, body)  # OpenAI's error shape


def test_storage_buckets_need_a_token(fake_servers):
    code, _headers, body = keboola(fake_servers, "/v2/storage/buckets")
    assert code == 200 and [b["id"] for b in body] == ["in.c-main", "out.c-results"]
    code, _headers, body = keboola(fake_servers, "/v2/storage/buckets", token="")
    assert code == 401 and body["error"] == "Invalid access token"
