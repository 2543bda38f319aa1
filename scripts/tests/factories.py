import factory
from django.utils import timezone

from scripts.models import EnvState, RunState, RunTrigger, Script, ScriptEnvVar, ScriptRun


class ScriptFactory(factory.django.DjangoModelFactory):
    """A stored script whose environment counts as built (no build runs: use the services for that)."""

    class Meta:
        model = Script

    name = factory.Sequence(lambda n: f"Script {n}")
    slug = factory.Sequence(lambda n: f"script-{n}")
    code = "print('hello')\n"
    python_version = "3.11"
    env_state = EnvState.READY
    env_built_at = factory.LazyFunction(timezone.now)


class ScriptEnvVarFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = ScriptEnvVar

    script = factory.SubFactory(ScriptFactory)
    name = factory.Sequence(lambda n: f"VAR_{n}")
    value = "plain"


class ScriptRunFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = ScriptRun

    script = factory.SubFactory(ScriptFactory)
    trigger = RunTrigger.MANUAL
    state = RunState.QUEUED
