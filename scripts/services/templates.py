"""Built-in templates to start a script from. Each one is a plain Python file in
`scripts/script_templates/` (linted with the project, run in the sandbox by the tests) plus what
a new script needs around it: requirements, network, variables."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from scripts.models import Script
from teckochecker.errors import ValidationFailed

TEMPLATE_DIR = Path(__file__).resolve().parent.parent / "script_templates"


@dataclass(frozen=True)
class TemplateVariable:
    name: str
    value: str = ""  # a plain variable's starting value
    secret_type: str = ""  # a variable that must name a vault secret of this type
    help: str = ""


@dataclass(frozen=True)
class ScriptTemplate:
    name: str
    title: str
    description: str
    file: str
    network: bool = False
    requirements: str = ""
    variables: tuple[TemplateVariable, ...] = field(default_factory=tuple)

    @property
    def code(self) -> str:
        return (TEMPLATE_DIR / self.file).read_text(encoding="utf-8")


TEMPLATES = (
    ScriptTemplate(
        name="hello-world",
        title="Hello world",
        description="Prints a greeting with the run's id, trigger and Python version.",
        file="hello_world.py",
    ),
    ScriptTemplate(
        name="http-health-check",
        title="HTTP health check",
        description=(
            "Requests a URL and fails the run (exit code 1) when it does not answer with the "
            "expected status: schedule it and notify on failure."
        ),
        file="http_health_check.py",
        network=True,
        variables=(
            TemplateVariable("CHECK_URL", "https://example.com", help="The address to check."),
            TemplateVariable("EXPECT_STATUS", "200", help="The HTTP status that means healthy."),
            TemplateVariable("TIMEOUT_SECONDS", "10", help="How long to wait for an answer."),
        ),
    ),
    ScriptTemplate(
        name="keboola-storage",
        title="Keboola Storage API call",
        description="Lists the project's buckets with a Storage API token from the vault.",
        file="keboola_storage.py",
        network=True,
        variables=(
            TemplateVariable("KBC_URL", "https://connection.keboola.com", help="Your Keboola stack."),
            TemplateVariable("KBC_TOKEN", secret_type="keboola", help="A Storage API token (vault secret)."),
        ),
    ),
    ScriptTemplate(
        name="openai-batch-output",
        title="Download OpenAI batch output",
        description=(
            "Run by a polling job's script action: saves each completed batch's output file "
            "to output/<batch id>.jsonl in the script's working directory."
        ),
        file="openai_batch_output.py",
        network=True,
        variables=(
            TemplateVariable(
                "OPENAI_API_KEY", secret_type="openai", help="An OpenAI API key (vault secret)."
            ),
            TemplateVariable("OPENAI_BASE_URL", "https://api.openai.com/v1", help="OpenAI's API address."),
        ),
    ),
)


def template_list() -> tuple[ScriptTemplate, ...]:
    return TEMPLATES


def template_get(*, name: object) -> ScriptTemplate:
    for template in TEMPLATES:
        if template.name == name:
            return template
    known = ", ".join(t.name for t in TEMPLATES)
    raise ValidationFailed.from_errors(
        {"template": [f"No template '{str(name)[:100]}'; the templates are: {known}."]}
    )


def script_create_from_template(*, template: str, env: list[dict] | None = None, **fields: Any) -> Script:
    """A new script with the template's code, requirements, network and plain variables; every
    field given wins. `env` adds to the template's variables by name (a template's secret
    variable is only set when `env` names the secret: the run says what is missing otherwise).
    """
    from scripts.services.scripts import script_create

    chosen = template_get(name=template)
    if env is not None and not isinstance(env, list):
        raise ValidationFailed.from_errors({"env": ["Variables must be a list."]})
    given = {item.get("name"): item for item in env or [] if isinstance(item, dict)}
    merged = [
        {"name": v.name, "value": v.value}
        for v in chosen.variables
        if not v.secret_type and v.name not in given
    ] + list(env or [])
    defaults = {"code": chosen.code, "requirements": chosen.requirements, "network": chosen.network}
    return script_create(**{**defaults, **fields, "env": merged})
