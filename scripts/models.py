"""Users' scripts, their environment variables and their runs.

A script's schedule lives in one django-celery-beat PeriodicTask (`Script.periodic_task`), kept
in step by `scripts.services.schedules`; the fields here are what the user chose.
"""

from django.conf import settings
from django.db import models
from django.utils import timezone

from secrets_vault.models import Secret


class ScheduleType(models.TextChoices):
    MANUAL = "manual", "Manual only"
    INTERVAL = "interval", "Every N seconds, minutes or hours"
    CRON = "cron", "Cron expression"
    STARTUP = "startup", "When the service starts"


class IntervalUnit(models.TextChoices):
    SECONDS = "seconds", "Seconds"
    MINUTES = "minutes", "Minutes"
    HOURS = "hours", "Hours"


class OverlapPolicy(models.TextChoices):
    SKIP = "skip", "Skip a scheduled run while one is queued or running"
    QUEUE = "queue", "Queue it and run it when the current run ends"


class EnvState(models.TextChoices):
    CREATING = "creating", "Creating"
    INSTALLING = "installing", "Installing requirements"
    READY = "ready", "Ready"
    FAILED = "failed", "Failed"


def _default_timeout() -> int:
    return settings.SCRIPTS_DEFAULT_TIMEOUT_SECONDS


def _default_memory() -> int:
    return settings.SCRIPTS_DEFAULT_MEMORY_MB


def _default_cpu() -> int:
    return settings.SCRIPTS_DEFAULT_CPU_SECONDS


class Script(models.Model):
    name = models.CharField(max_length=255)
    # The safe name: a folder name under SCRIPTS_DIR. Made once, never changes (rename keeps it).
    slug = models.SlugField(max_length=100, unique=True)
    folder = models.CharField(max_length=255, blank=True, default="")
    code = models.TextField(blank=True, default="")
    requirements = models.TextField(blank=True, default="")
    python_version = models.CharField(max_length=32)
    timeout_seconds = models.PositiveIntegerField(default=_default_timeout)
    memory_mb = models.PositiveIntegerField(default=_default_memory)
    cpu_seconds = models.PositiveIntegerField(default=_default_cpu)
    network = models.BooleanField(default=False)
    enabled = models.BooleanField(default=True)
    # May an API key run it through POST /api/scripts/{slug}/trigger, and also through GET?
    url_trigger = models.BooleanField(default=False)
    url_trigger_get = models.BooleanField(default=False)

    schedule_type = models.CharField(max_length=16, choices=ScheduleType.choices, default=ScheduleType.MANUAL)
    schedule_every = models.PositiveIntegerField(null=True, blank=True)
    schedule_unit = models.CharField(max_length=16, choices=IntervalUnit.choices, blank=True, default="")
    schedule_cron = models.CharField(max_length=255, blank=True, default="")
    schedule_timezone = models.CharField(max_length=64, default="UTC")
    overlap = models.CharField(max_length=8, choices=OverlapPolicy.choices, default=OverlapPolicy.SKIP)
    periodic_task = models.OneToOneField(
        "django_celery_beat.PeriodicTask",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="script",
    )

    notify_on_success = models.BooleanField(default=False)
    notify_on_failure = models.BooleanField(default=False)
    notify_emails = models.CharField(max_length=1000, blank=True, default="")

    # The environment: what was asked for (hash of python + requirements) and where it stands.
    env_state = models.CharField(max_length=16, choices=EnvState.choices, default=EnvState.CREATING)
    env_error = models.TextField(blank=True, default="")
    env_python = models.CharField(max_length=32, blank=True, default="")
    env_python_path = models.CharField(max_length=500, blank=True, default="")
    env_built_at = models.DateTimeField(null=True, blank=True)
    env_disk_bytes = models.PositiveBigIntegerField(null=True, blank=True)  # measured after a build
    env_requirements_hash = models.CharField(max_length=64, blank=True, default="")
    # A new build request replaces the token; a build that finds another token was superseded.
    env_build_token = models.CharField(max_length=32, blank=True, default="")

    # The number of the newest ScriptVersion (0 before the first); a save that started from an
    # older one is refused (scripts.services.versions).
    version = models.PositiveIntegerField(default=0)

    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["folder", "name", "id"]

    def __str__(self) -> str:
        return f"{self.name} ({self.slug})"


class ScriptEnvVar(models.Model):
    """A variable the script's process gets: a plain value, or the value of a vault secret."""

    script = models.ForeignKey(Script, on_delete=models.CASCADE, related_name="env_vars")
    name = models.CharField(max_length=128)
    value = models.TextField(blank=True, default="")
    # PROTECT: a secret a script uses cannot be deleted (secret_delete names the scripts).
    secret = models.ForeignKey(
        Secret, null=True, blank=True, on_delete=models.PROTECT, related_name="script_env_vars"
    )

    class Meta:
        ordering = ["id"]
        constraints = [models.UniqueConstraint(fields=["script", "name"], name="unique_env_var_per_script")]

    def __str__(self) -> str:
        return self.name


class ScriptVersion(models.Model):
    """The code and requirements as one save left them, numbered 1, 2, ... per script."""

    script = models.ForeignKey(Script, on_delete=models.CASCADE, related_name="versions")
    number = models.PositiveIntegerField()
    code = models.TextField(blank=True, default="")
    requirements = models.TextField(blank=True, default="")
    created_at = models.DateTimeField(default=timezone.now)
    # Who saved it: a user name, or what the command line says it is. Text, so deleting a user
    # keeps the history readable.
    author = models.CharField(max_length=150, blank=True, default="")
    # Lines added and removed against the version before it (code and requirements together).
    added = models.PositiveIntegerField(default=0)
    removed = models.PositiveIntegerField(default=0)
    restored_from = models.PositiveIntegerField(null=True, blank=True)

    class Meta:
        ordering = ["script", "-number"]
        constraints = [
            models.UniqueConstraint(fields=["script", "number"], name="unique_version_number_per_script")
        ]

    def __str__(self) -> str:
        return f"version {self.number} of script {self.script_id}"


class RunState(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"
    TIMED_OUT = "timed_out", "Timed out"
    KILLED = "killed", "Killed (memory or CPU limit)"
    CANCELLED = "cancelled", "Cancelled"


ACTIVE_RUN_STATES = {RunState.QUEUED, RunState.RUNNING}
FINISHED_RUN_STATES = set(RunState.values) - ACTIVE_RUN_STATES


class RunTrigger(models.TextChoices):
    SCHEDULE = "schedule", "Schedule"
    MANUAL = "manual", "Manual"
    STARTUP = "startup", "Service start"
    JOB = "job", "Polling job"
    URL = "url", "URL"


class ScriptRun(models.Model):
    script = models.ForeignKey(Script, on_delete=models.CASCADE, related_name="runs")
    state = models.CharField(max_length=16, choices=RunState.choices, default=RunState.QUEUED)
    trigger = models.CharField(max_length=16, choices=RunTrigger.choices)
    # A polling job's `script` action starts at most one run per job (exactly once).
    polling_job = models.OneToOneField(
        "polling.PollingJob", null=True, blank=True, on_delete=models.SET_NULL, related_name="script_run"
    )
    # Variables of this run only (a polling job's batch metadata, a URL trigger's parameters);
    # never secrets.
    extra_env = models.JSONField(default=dict, blank=True)
    # A URL trigger's API key, by name and prefix (kept when the key is deleted).
    triggered_by = models.CharField(max_length=300, blank=True, default="")

    queued_at = models.DateTimeField(default=timezone.now)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    exit_code = models.IntegerField(null=True, blank=True)
    peak_memory_kb = models.PositiveBigIntegerField(null=True, blank=True)
    cpu_seconds = models.FloatField(null=True, blank=True)
    message = models.TextField(blank=True, default="")
    output = models.TextField(blank=True, default="")
    output_truncated = models.BooleanField(default=False)

    # The worker that runs it: the process group leader's pid, and a lease it renews while the
    # script runs. A run whose lease expired lost its worker (killed, restarted).
    pid = models.PositiveIntegerField(null=True, blank=True)
    worker = models.CharField(max_length=255, blank=True, default="")
    lease_token = models.CharField(max_length=32, blank=True, default="")
    lease_expires_at = models.DateTimeField(null=True, blank=True)
    cancel_requested = models.BooleanField(default=False)

    class Meta:
        ordering = ["-queued_at", "-id"]
        indexes = [
            models.Index(fields=["script", "-queued_at", "-id"], name="run_script_newest_idx"),
            models.Index(fields=["state", "lease_expires_at"], name="run_state_lease_idx"),
            models.Index(fields=["-queued_at", "-id"], name="run_newest_idx"),
        ]

    def __str__(self) -> str:
        return f"run #{self.pk} of {self.script_id} ({self.state})"

    @property
    def duration_seconds(self) -> float | None:
        if self.started_at is None:
            return None
        end = self.finished_at or timezone.now()
        return round((end - self.started_at).total_seconds(), 3)


class TriggerRequest(models.Model):
    """A URL trigger sent with an `Idempotency-Key`: the same key, script and header value get
    this run back instead of a new one (the unique constraint settles concurrent calls)."""

    api_key = models.ForeignKey("apikeys.ApiKey", on_delete=models.CASCADE, related_name="trigger_requests")
    script = models.ForeignKey(Script, on_delete=models.CASCADE, related_name="trigger_requests")
    idempotency_key = models.CharField(max_length=255)
    # SHA-256 of the parameters: the same Idempotency-Key with other parameters is refused.
    params_hash = models.CharField(max_length=64)
    run = models.ForeignKey(ScriptRun, on_delete=models.CASCADE, related_name="trigger_requests")
    created_at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["api_key", "script", "idempotency_key"], name="unique_idempotency_key_per_key_script"
            )
        ]

    def __str__(self) -> str:
        return f"{self.idempotency_key} -> run {self.run_id}"
