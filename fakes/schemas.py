"""Check JSON against the vendors' OpenAPI descriptions (copies in `fakes/spec/`).

For tests: needs the dev dependencies `openapi-schema-validator` and `PyYAML` (imported lazily,
so the fake server itself stays stdlib only).
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

SPEC_DIR = Path(__file__).resolve().parent / "spec"
OPENAI_SPEC = SPEC_DIR / "openai-batch-openapi.json"
KEBOOLA_SPEC = SPEC_DIR / "keboola-queue-openapi.yaml"

# OpenAI's spec does not describe error bodies; this is the shape its API and SDK use.
OPENAI_ERROR_SCHEMA = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["message", "type", "param", "code"],
            "properties": {
                "message": {"type": "string"},
                "type": {"type": "string"},
                "param": {"type": ["string", "null"]},
                "code": {"type": ["string", "null"]},
            },
        }
    },
}


@cache
def openai_spec() -> dict:
    return json.loads(OPENAI_SPEC.read_text())


@cache
def keboola_spec() -> dict:
    import yaml

    return yaml.safe_load(KEBOOLA_SPEC.read_text())


def _validate(spec: dict, schema: dict, instance: object) -> None:
    """Validate `instance` against `schema`, resolving `#/components/...` within `spec`.
    Raises jsonschema.ValidationError."""
    from openapi_schema_validator import OAS30Validator, OAS31Validator

    oas31 = str(spec.get("openapi", "")).startswith("3.1")
    cls = OAS31Validator if oas31 else OAS30Validator
    # The schema becomes the root document next to `components`, so local $refs resolve.
    root = {"components": spec.get("components", {}), **schema}
    validator = cls(root, format_checker=cls.FORMAT_CHECKER)
    validator.validate(instance)


def _operation(spec: dict, method: str, path: str) -> dict:
    try:
        return spec["paths"][path][method.lower()]
    except KeyError:
        raise KeyError(f"{method} {path} is not in the spec") from None


def response_schema(spec: dict, method: str, path: str, status: int) -> dict:
    responses = _operation(spec, method, path)["responses"]
    response = responses.get(str(status)) or responses.get("default")
    if response is None:
        raise KeyError(f"{method} {path} has no response {status} in the spec")
    return response["content"]["application/json"]["schema"]


def validate_openai_response(method: str, path: str, status: int, body: object) -> None:
    """`path` as in the spec, e.g. "/batches/{batch_id}". Error answers use OPENAI_ERROR_SCHEMA."""
    if status >= 400:
        return _validate({"openapi": "3.1.0"}, OPENAI_ERROR_SCHEMA, body)
    spec = openai_spec()
    _validate(spec, response_schema(spec, method, path, status), body)


def validate_keboola_response(method: str, path: str, status: int, body: object) -> None:
    """`path` as in the spec, e.g. "/jobs/{jobId}"; errors validate against its `default`."""
    spec = keboola_spec()
    _validate(spec, response_schema(spec, method, path, status), body)


def validate_keboola_request(method: str, path: str, body: object) -> None:
    spec = keboola_spec()
    schema = _operation(spec, method, path)["requestBody"]["content"]["application/json"]["schema"]
    _validate(spec, schema, body)
