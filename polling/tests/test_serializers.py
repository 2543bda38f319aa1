import io
import json
from datetime import UTC, datetime

import pytest
from django.core.management import call_command
from django.utils import timezone
from jsonschema import ValidationError
from openapi_schema_validator import OAS30ReadValidator, oas30_format_checker
from rest_framework import serializers

from polling.models import JobBatch
from polling.serializers import _iso
from polling.tests.factories import PollingJobFactory, PollingLogFactory

pytestmark = pytest.mark.django_db


def _varied_jobs():
    """Jobs that exercise every branch of the job shape: secrets gone, triggered, a webhook action."""
    now = timezone.now()
    plain = PollingJobFactory(batch_ids=["batch_a", "batch_b", "batch_c"])
    JobBatch.objects.filter(job=plain, batch_id="batch_b").update(
        status="completed", request_total=5, request_completed=5, completed_at=now
    )
    JobBatch.objects.filter(job=plain, batch_id="batch_c").update(status="expired", completed_at=now)
    triggered = PollingJobFactory(
        status="completed",
        completed_at=now,
        last_check_at=now,
        keboola_job_id="987",
        keboola_job_url="https://connection.keboola.com/jobs/987",
        keboola_job_status="success",
        keboola_job_finished_at=now,
        keboola_job_duration_seconds=12,
        trigger_state="done",
        notify_emails="ops@example.com",
    )
    orphan = PollingJobFactory(openai_secret=None, keboola_secret=None, last_error="OpenAI rejected the key.")
    webhook = PollingJobFactory(
        action_type="webhook", action_url="https://hooks.example.com/x", keboola_secret=None, batch_ids=[]
    )
    return [plain, triggered, orphan, webhook]


def _strict(node):
    """The schema with `additionalProperties: false` on every object that lists its properties,
    so an answer with a key the schema does not document fails too."""
    if isinstance(node, dict):
        node = {key: _strict(value) for key, value in node.items()}
        if "properties" in node and "additionalProperties" not in node:
            node["additionalProperties"] = False
        return node
    if isinstance(node, list):
        return [_strict(value) for value in node]
    return node


@pytest.fixture
def served_schema(api):
    response = api.get("/api/schema", HTTP_ACCEPT="application/json")
    assert response.status_code == 200
    return _strict(response.json())


def _validate(schema: dict, body, ref: dict) -> None:
    """Raise unless `body` is exactly what `ref` (a schema inside the served one) documents."""
    OAS30ReadValidator(
        {**ref, "components": schema["components"]}, format_checker=oas30_format_checker
    ).validate(body)


def _answer_schema(schema: dict, path: str, method: str, code: int) -> dict:
    return schema["paths"][path][method]["responses"][str(code)]["content"]["application/json"]["schema"]


@pytest.mark.parametrize("zone", ["UTC", "Europe/Prague"])
def test_the_schema_documents_every_job_answer_exactly(api, served_schema, settings, zone):
    settings.TIME_ZONE = zone
    jobs = _varied_jobs()
    PollingLogFactory(job=jobs[0])

    def check(response, path, method, code=200):
        assert response.status_code == code, response.content
        _validate(served_schema, response.json(), _answer_schema(served_schema, path, method, code))
        return response.json()

    listed = check(api.get("/api/jobs"), "/api/jobs", "get")
    assert len(listed["jobs"]) == len(jobs)
    check(api.get("/api/jobs", {"limit": 2, "offset": 1}), "/api/jobs", "get")
    for job in jobs:
        check(api.get(f"/api/jobs/{job.pk}"), "/api/jobs/{job_id}", "get")
        shown = check(api.get(f"/api/jobs/{job.pk}", {"include_logs": "true"}), "/api/jobs/{job_id}", "get")
        assert "logs" in shown
    check(api.post(f"/api/jobs/{jobs[0].pk}/pause"), "/api/jobs/{job_id}/pause", "post")
    check(api.post(f"/api/jobs/{jobs[0].pk}/resume"), "/api/jobs/{job_id}/resume", "post")
    check(api.put(f"/api/jobs/{jobs[0].pk}", {"name": "x"}, format="json"), "/api/jobs/{job_id}", "put")


def test_the_schema_would_catch_an_undocumented_or_missing_key(api, served_schema):
    job = api.get(f"/api/jobs/{PollingJobFactory().pk}").json()
    ref = _answer_schema(served_schema, "/api/jobs/{job_id}", "get", 200)
    _validate(served_schema, job, ref)
    with pytest.raises(ValidationError, match="extra"):
        _validate(served_schema, {**job, "extra": 1}, ref)
    with pytest.raises(ValidationError, match="trigger_state"):
        _validate(served_schema, {k: v for k, v in job.items() if k != "trigger_state"}, ref)


def test_the_cli_json_is_the_documented_job_shape(served_schema):
    jobs = _varied_jobs()
    PollingLogFactory(job=jobs[0])

    def cli(*args) -> dict:
        out = io.StringIO()
        call_command("job", *args, "--json", stdout=out)
        return json.loads(out.getvalue())

    _validate(served_schema, cli("list"), {"$ref": "#/components/schemas/JobList"})
    for job in jobs:
        _validate(served_schema, cli("show", str(job.pk)), {"$ref": "#/components/schemas/JobWithLogs"})


@pytest.mark.parametrize("zone", ["UTC", "Europe/Prague"])
def test_fast_times_are_formatted_like_drf(settings, zone):
    settings.TIME_ZONE = zone
    field = serializers.DateTimeField()
    for value in (
        datetime(2025, 1, 22, 9, 15, tzinfo=UTC),
        datetime(2025, 7, 1, 23, 59, 59, 123456, tzinfo=UTC),
        timezone.now(),
    ):
        assert _iso(value) == field.to_representation(value)
    assert _iso(None) is None


def test_the_job_rows_take_the_same_queries_for_one_job_or_many(django_assert_max_num_queries):
    from polling import selectors

    _varied_jobs()
    with django_assert_max_num_queries(4):
        rows, _ = selectors.job_rows(limit=100)
    assert len(rows) == 4
    for _ in range(20):
        PollingJobFactory(batch_ids=["batch_x", "batch_y"])
    with django_assert_max_num_queries(4):
        rows, _ = selectors.job_rows(limit=100, search="batch_")
    assert len(rows) == 24


def test_job_row_of_a_missing_or_invalid_id_is_not_found():
    from polling import selectors
    from polling.services import JobNotFound

    for bad in (424242, 0, -1, 2**70):
        with pytest.raises(JobNotFound):
            selectors.job_row(job_id=bad)
