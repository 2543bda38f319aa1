from django.db import models
from django.utils import timezone

from secrets_vault.models import Secret


class JobStatus(models.TextChoices):
    ACTIVE = "active", "Active"
    PAUSED = "paused", "Paused"
    COMPLETED = "completed", "Completed"
    COMPLETED_WITH_FAILURES = "completed_with_failures", "Completed with failures"
    FAILED = "failed", "Failed"


FINISHED_STATUSES = {JobStatus.COMPLETED, JobStatus.COMPLETED_WITH_FAILURES, JobStatus.FAILED}


class TriggerState(models.TextChoices):
    """Where the Keboola trigger of a job stands. Moves only forward, by conditional updates."""

    NONE = "", "Not started"
    SENDING = "sending", "Request sent, outcome not yet known"
    RETRY = "retry", "Last request created nothing; send again when due"
    DONE = "done", "Keboola job created"
    FAILED = "failed", "Gave up"


class BatchStatus(models.TextChoices):
    PENDING = "pending", "Not checked yet"
    VALIDATING = "validating", "Validating"
    IN_PROGRESS = "in_progress", "In progress"
    FINALIZING = "finalizing", "Finalizing"
    COMPLETED = "completed", "Completed"
    FAILED = "failed", "Failed"
    EXPIRED = "expired", "Expired"
    CANCELLING = "cancelling", "Cancelling"
    CANCELLED = "cancelled", "Cancelled"


TERMINAL_BATCH_STATUSES = {
    BatchStatus.COMPLETED,
    BatchStatus.FAILED,
    BatchStatus.EXPIRED,
    BatchStatus.CANCELLED,
}
FAILED_BATCH_STATUSES = {BatchStatus.FAILED, BatchStatus.EXPIRED, BatchStatus.CANCELLED}


class ActionType(models.TextChoices):
    """What happens when every batch is terminal. Each has a module in `polling/actions/`."""

    KEBOOLA = "keboola", "Run a Keboola job"
    WEBHOOK = "webhook", "POST to a webhook URL"
    SCRIPT = "script", "Run a script"


KEBOOLA_FAILED_STATUSES = {"error", "terminated", "cancelled"}


class PollingJob(models.Model):
    name = models.CharField(max_length=255)
    # SET_NULL: deleting a secret never deletes a job (in-use secrets cannot be deleted at all).
    openai_secret = models.ForeignKey(
        Secret, null=True, blank=True, on_delete=models.SET_NULL, related_name="openai_jobs"
    )
    keboola_secret = models.ForeignKey(
        Secret, null=True, blank=True, on_delete=models.SET_NULL, related_name="keboola_jobs"
    )
    action_type = models.CharField(max_length=32, choices=ActionType.choices, default=ActionType.KEBOOLA)
    keboola_stack_url = models.CharField(max_length=500, blank=True, default="")
    keboola_component_id = models.CharField(max_length=255, blank=True, default="")
    keboola_configuration_id = models.CharField(max_length=255, blank=True, default="")
    # The webhook action: URL and an optional secret sent as a header.
    action_url = models.CharField(max_length=500, blank=True, default="")
    action_secret = models.ForeignKey(
        Secret, null=True, blank=True, on_delete=models.SET_NULL, related_name="action_jobs"
    )
    # The script action: which script runs (scripts.services.script_delete refuses while an
    # active or paused job names it; a finished job keeps its history).
    action_script = models.ForeignKey(
        "scripts.Script", null=True, blank=True, on_delete=models.SET_NULL, related_name="polling_jobs"
    )
    # Notifications when the job finishes, fails or its Keboola job fails (empty: the global default).
    notify_emails = models.CharField(max_length=1000, blank=True, default="")
    notify_webhook_url = models.CharField(max_length=500, blank=True, default="")
    poll_interval_seconds = models.PositiveIntegerField()
    status = models.CharField(max_length=32, choices=JobStatus.choices, default=JobStatus.ACTIVE)

    last_check_at = models.DateTimeField(null=True, blank=True)
    next_check_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)
    completed_at = models.DateTimeField(null=True, blank=True)

    # Engine state. A worker holds the lease while it polls; it expires if the worker dies.
    lease_token = models.CharField(max_length=32, blank=True, default="")
    lease_expires_at = models.DateTimeField(null=True, blank=True)
    consecutive_failures = models.PositiveIntegerField(default=0)
    # Set when a webhook asked for a confirmation of this job and its task is on the way; events
    # for the job meanwhile join that task instead of sending their own (services/confirm.py).
    confirm_requested_at = models.DateTimeField(null=True, blank=True)
    trigger_state = models.CharField(
        max_length=16, choices=TriggerState.choices, default=TriggerState.NONE, blank=True
    )
    trigger_attempts = models.PositiveIntegerField(default=0)
    trigger_started_at = models.DateTimeField(null=True, blank=True)
    keboola_job_id = models.CharField(max_length=64, blank=True, default="")
    keboola_job_url = models.CharField(max_length=500, blank=True, default="")
    # Following the triggered Keboola job until it finishes.
    keboola_job_status = models.CharField(max_length=32, blank=True, default="")
    keboola_job_finished_at = models.DateTimeField(null=True, blank=True)
    keboola_job_duration_seconds = models.FloatField(null=True, blank=True)
    keboola_next_follow_at = models.DateTimeField(null=True, blank=True)
    keboola_follow_failures = models.PositiveIntegerField(default=0)
    last_error = models.TextField(blank=True, default="")

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["-created_at", "-id"], name="job_newest_idx"),
            models.Index(fields=["status", "-created_at"], name="job_status_newest_idx"),
            models.Index(fields=["status", "next_check_at"], name="job_due_idx"),
            models.Index(fields=["keboola_next_follow_at"], name="job_follow_due_idx"),
            # Pending webhook confirmations, oldest first (confirm.py takes them in groups).
            models.Index(
                fields=["confirm_requested_at"],
                name="job_confirm_pending_idx",
                condition=models.Q(confirm_requested_at__isnull=False),
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name} (#{self.pk})"

    @property
    def is_finished(self) -> bool:
        return self.status in FINISHED_STATUSES


class JobBatch(models.Model):
    job = models.ForeignKey(PollingJob, on_delete=models.CASCADE, related_name="batches")
    batch_id = models.CharField(max_length=255, db_index=True)
    status = models.CharField(max_length=32, choices=BatchStatus.choices, default=BatchStatus.PENDING)
    request_total = models.PositiveIntegerField(default=0)
    request_completed = models.PositiveIntegerField(default=0)
    request_failed = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)
    completed_at = models.DateTimeField(null=True, blank=True)
    # When a verified webhook announced that this batch ended; the next confirmation reads it
    # (and only it) from OpenAI. The announcement itself changes nothing.
    announced_at = models.DateTimeField(null=True, blank=True)
    # When OpenAI created the batch (known after its first read): where it stands in OpenAI's
    # list of batches, newest first, so a sweep of the list knows where to start and stop.
    openai_created_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(fields=["job", "batch_id"], name="unique_batch_per_job"),
        ]
        # A sweep looks up the batch just above its newest one (sweeps.py: _known_above).
        indexes = [models.Index(fields=["openai_created_at", "id"], name="batch_list_place_idx")]

    def __str__(self) -> str:
        return self.batch_id

    @property
    def is_terminal(self) -> bool:
        return self.status in TERMINAL_BATCH_STATUSES


class LogLevel(models.TextChoices):
    INFO = "info", "Info"
    WARNING = "warning", "Warning"
    ERROR = "error", "Error"


class PollingLog(models.Model):
    job = models.ForeignKey(PollingJob, on_delete=models.CASCADE, related_name="logs")
    # A short event name (e.g. "batch_status", "triggered"); `level` drives colour and filters.
    status = models.CharField(max_length=32)
    level = models.CharField(max_length=16, choices=LogLevel.choices, default=LogLevel.INFO)
    message = models.TextField()
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["job", "-created_at", "-id"], name="log_job_newest_idx"),
            models.Index(fields=["-created_at", "-id"], name="log_newest_idx"),
            models.Index(fields=["level", "-created_at"], name="log_level_newest_idx"),
        ]

    def __str__(self) -> str:
        return f"[{self.level}] {self.status}: {self.message[:60]}"


class ServiceHeartbeat(models.Model):
    """Last sign of life of a worker or of beat, for /api/health and `manage.py status`."""

    name = models.CharField(max_length=255, unique=True)  # "beat" or "worker:<hostname>"
    kind = models.CharField(max_length=16)
    hostname = models.CharField(max_length=255, blank=True, default="")
    pid = models.PositiveIntegerField(null=True, blank=True)
    started_at = models.DateTimeField(default=timezone.now)
    last_seen = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class WebhookDelivery(models.Model):
    """An OpenAI webhook we accepted; its id makes a replay a no-op."""

    webhook_id = models.CharField(max_length=255, unique=True)
    event_type = models.CharField(max_length=64)
    batch_id = models.CharField(max_length=255, blank=True, default="")
    received_at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        ordering = ["-received_at"]

    def __str__(self) -> str:
        return f"{self.event_type} {self.batch_id} ({self.webhook_id})"
