"""`manage.py job create|list|show|update|pause|resume|delete`: polling jobs without a server."""

from __future__ import annotations

from django.core.management.base import CommandError
from rich.text import Text

from polling import selectors, services
from polling import validation as v
from polling.models import KEBOOLA_FAILED_STATUSES, ActionType, JobStatus
from polling.serializers import LogSerializer, job_representation
from scripts.services import script_get_by_ref
from secrets_vault.services import secret_get_by_name
from teckochecker.cli import (
    TeckoCommand,
    cell,
    details_table,
    fmt_batch_status,
    fmt_job_status,
    fmt_time,
    positive_id,
    table,
    whole_number,
)

RECENT_LOGS = 10
# `job update` option → services.job_update field.
UPDATE_OPTIONS = {
    "name": "name",
    "keboola_stack": "keboola_stack_url",
    "component_id": "keboola_component_id",
    "config_id": "keboola_configuration_id",
    "poll_interval": "poll_interval_seconds",
    "action_url": "action_url",
    "notify_email": "notify_emails",
    "notify_webhook_url": "notify_webhook_url",
}


def batch_progress(shape: dict) -> str:
    """`3/5 completed, 1 failed` from a job's wire shape (`job_representation`)."""
    text = f"{shape['completed_count']}/{shape['batch_count']} completed"
    return f"{text}, {shape['failed_count']} failed" if shape["failed_count"] else text


class Command(TeckoCommand):
    help = "Create, list, show, change, pause, resume and delete polling jobs."

    def add_arguments(self, parser) -> None:
        sub = parser.add_subparsers(
            dest="action", required=True, metavar="{create,list,show,update,pause,resume,delete}"
        )

        create = sub.add_parser(
            "create", help="Watch 1-10 OpenAI batches and then run a Keboola configuration."
        )
        create.add_argument("--name", required=True, help="Descriptive job name.")
        create.add_argument(
            "--batch-id",
            dest="batch_ids",
            action="append",
            default=[],
            help="OpenAI batch ID (batch_...); repeat for several batches (at most 10).",
        )
        create.add_argument("--openai-secret", required=True, help="Name of the OpenAI secret.")
        create.add_argument("--keboola-secret", help="Name of the Keboola secret (the keboola action).")
        self.add_keboola_options(create, required=False)
        create.add_argument(
            "--poll-interval",
            type=whole_number,
            help="Check interval in seconds (default: DEFAULT_POLL_INTERVAL).",
        )
        create.add_argument(
            "--action",
            dest="action_type",
            choices=ActionType.values,
            default=ActionType.KEBOOLA,
            help="What runs when all batches are done (default: keboola).",
        )
        create.add_argument("--action-secret", help="Name of an http_header secret for the webhook action.")
        create.add_argument(
            "--script",
            help="The script to run once when all batches are done (its safe name or id); "
            "implies --action script.",
        )
        self.add_extra_options(create)

        listing = sub.add_parser("list", help="Show jobs, newest first.")
        listing.add_argument("--status", choices=JobStatus.values, help="Only jobs with this status.")
        listing.add_argument(
            "--json", dest="as_json", action="store_true", help="Print JSON instead of a table."
        )

        show = sub.add_parser("show", help="Show one job with its batches and recent log entries.")
        show.add_argument("id", type=positive_id, help="Job ID.")
        show.add_argument("--json", dest="as_json", action="store_true", help="Print JSON instead of tables.")

        update = sub.add_parser("update", help="Change a job's name, Keboola target or poll interval.")
        update.add_argument("id", type=positive_id, help="Job ID.")
        update.add_argument("--name", help="New name.")
        self.add_keboola_options(update, required=False)
        update.add_argument("--poll-interval", type=whole_number, help="New check interval in seconds.")
        self.add_extra_options(update)

        for action, text in (
            ("pause", "Stop checking an active job."),
            ("resume", "Check a paused job again."),
        ):
            sub.add_parser(action, help=text).add_argument("id", type=positive_id, help="Job ID.")

        delete = sub.add_parser("delete", help="Delete a job with its batches and logs.")
        delete.add_argument("id", type=positive_id, help="Job ID.")
        delete.add_argument("--force", action="store_true", help="Do not ask for confirmation.")

    @staticmethod
    def add_keboola_options(parser, *, required: bool) -> None:
        parser.add_argument(
            "--keboola-stack",
            required=required,
            help="Keboola stack URL, e.g. https://connection.eu-central-1.keboola.com",
        )
        parser.add_argument("--component-id", required=required, help="Keboola component ID.")
        parser.add_argument("--config-id", required=required, help="Keboola configuration ID.")

    @staticmethod
    def add_extra_options(parser) -> None:
        parser.add_argument("--action-url", help="URL the webhook action POSTs to (https://...).")
        parser.add_argument(
            "--notify-email", help="Comma-separated addresses told when the job finishes or fails."
        )
        parser.add_argument("--notify-webhook-url", help="URL that receives signed notification webhooks.")

    def handle(self, *args, action: str, **options) -> None:
        getattr(self, action)(**options)

    def create(self, *, name, batch_ids, openai_secret, keboola_secret, **options) -> None:
        # Batch IDs first, so a job with no or bad batch IDs gets the guide's message even
        # before its secret names are looked up.
        v.clean_batch_ids(batch_ids)
        script = options.get("script")
        if script:
            if options["action_type"] not in (ActionType.KEBOOLA, ActionType.SCRIPT):
                raise CommandError("--script goes with the script action, not --action webhook.")
            options["action_type"] = ActionType.SCRIPT
        if options["action_type"] == ActionType.SCRIPT and not script:
            raise CommandError("--script is required for the script action.")
        if options["action_type"] == ActionType.KEBOOLA and not keboola_secret:
            raise CommandError("--keboola-secret is required for the keboola action.")
        action_secret = options.get("action_secret")
        job = services.job_create(
            name=name,
            batch_ids=batch_ids,
            openai_secret_id=secret_get_by_name(name=openai_secret).pk,
            keboola_secret_id=secret_get_by_name(name=keboola_secret).pk if keboola_secret else None,
            keboola_stack_url=options["keboola_stack"] or "",
            keboola_component_id=options["component_id"] or "",
            keboola_configuration_id=options["config_id"] or "",
            poll_interval_seconds=options["poll_interval"],
            action_type=options["action_type"],
            action_url=options.get("action_url") or "",
            action_secret_id=secret_get_by_name(name=action_secret).pk if action_secret else None,
            action_script_id=script_get_by_ref(ref=script).pk if script else None,
            notify_emails=options.get("notify_email") or "",
            notify_webhook_url=options.get("notify_webhook_url") or "",
        )
        self.success(f"✓ Polling job '{job.name}' created successfully (ID: {job.pk})")

    # Tables and --json read the same rows as the API (selectors.job_rows / job_row): the JSON
    # is the API's job shape, the tables show the rows' times in TIME_ZONE.
    def list(self, *, status: str | None, as_json: bool, **_) -> None:
        rows, total = selectors.job_rows(status=status)
        shapes = [job_representation(row) for row in rows]
        if as_json:
            self.write_json({"jobs": shapes, "total": total})
            return
        if not rows:
            self.stdout.write(
                "No polling jobs found." if status is None else f"No {status} polling jobs found."
            )
            return
        t = table("Polling Jobs", ["ID", "Name", "Status", "Batches", "Interval", "Last Check", "Next Check"])
        for row, shape in zip(rows, shapes, strict=True):
            t.add_row(
                cell(row["id"]),
                cell(row["name"]),
                cell(fmt_job_status(row["status"])),
                cell(batch_progress(shape)),
                cell(f"{row['poll_interval_seconds']}s"),
                cell(fmt_time(row["last_check_at"], "Never")),
                cell(fmt_time(row["next_check_at"])),
            )
        self.render(t)

    def show(self, *, id: int, as_json: bool, **_) -> None:
        job = selectors.job_row(job_id=id)
        shape = job_representation(job)
        logs, _total = selectors.job_logs(job_id=job["id"], limit=RECENT_LOGS)
        if as_json:
            self.write_json({**shape, "logs": LogSerializer(logs, many=True).data})
            return
        batches = job["batches"]
        rows = [("ID", job["id"]), ("Name", job["name"]), ("Status", fmt_job_status(job["status"]))]
        if len(batches) == 1:
            rows.append(("Batch ID", batches[0]["batch_id"]))
        rows += [
            ("Batches", batch_progress(shape)),
            ("OpenAI Secret", job["openai_secret_name"] or "(deleted)"),
            ("Keboola Secret", job["keboola_secret_name"] or "(deleted)"),
            ("Keboola Stack", job["keboola_stack_url"]),
            ("Component ID", job["keboola_component_id"]),
            ("Configuration ID", job["keboola_configuration_id"]),
            ("Poll Interval", f"{job['poll_interval_seconds']} seconds"),
            ("Last Check", fmt_time(job["last_check_at"], "Never")),
            ("Next Check", fmt_time(job["next_check_at"])),
            ("Created At", fmt_time(job["created_at"])),
        ]
        if job["completed_at"]:
            rows.append(("Completed At", fmt_time(job["completed_at"])))
        if job["keboola_job_id"]:
            rows.append(("Keboola Job", job["keboola_job_id"]))
        if job["keboola_job_url"]:
            rows.append(("Keboola Job URL", job["keboola_job_url"]))
        if job["keboola_job_status"]:
            outcome = job["keboola_job_status"]
            if job["keboola_job_duration_seconds"] is not None:
                outcome += f" ({job['keboola_job_duration_seconds']:.0f} s)"
            style = "red" if job["keboola_job_status"] in KEBOOLA_FAILED_STATUSES else None
            rows.append(("Keboola Job Status", Text(outcome, style=style or "")))
        if job["action_type"] == ActionType.SCRIPT:
            rows.append(("Action", f"script → #{job['action_script_id']}"))
        elif job["action_type"] != ActionType.KEBOOLA:
            rows.append(("Action", f"{job['action_type']} → {job['action_url']}"))
        if job["notify_emails"] or job["notify_webhook_url"]:
            rows.append(
                ("Notify", ", ".join(filter(None, [job["notify_emails"], job["notify_webhook_url"]])))
            )
        if job["last_error"]:
            rows.append(("Last Error", Text(job["last_error"], style="red")))
        output = [details_table("Polling Job Details", rows)]

        batch_table = table("Batch Status", ["Batch ID", "Status", "Requests", "Completed At"])
        for b in batches:
            requests = f"{b['request_completed']}/{b['request_total']}" if b["request_total"] else "-"
            if b["request_failed"]:
                requests += f" ({b['request_failed']} failed)"
            batch_table.add_row(
                cell(b["batch_id"]),
                cell(fmt_batch_status(b["status"])),
                cell(requests),
                cell(fmt_time(b["completed_at"])),
            )
        output.append(batch_table)

        if logs:
            log_table = table(f"Recent Logs (newest {RECENT_LOGS})", ["Time", "Level", "Event", "Message"])
            for entry in logs:
                log_table.add_row(
                    cell(fmt_time(entry.created_at)),
                    cell(entry.level),
                    cell(entry.status),
                    cell(entry.message),
                )
            output.append(log_table)
        self.render(*output)

    def update(self, *, id: int, **options) -> None:
        changes = {
            field: options[opt] for opt, field in UPDATE_OPTIONS.items() if options.get(opt) is not None
        }
        if not changes:
            flags = ", ".join("--" + opt.replace("_", "-") for opt in UPDATE_OPTIONS)
            raise CommandError(f"Nothing to update: give at least one of {flags}.")
        job = services.job_update(job=services.job_get(job_id=id), **changes)
        self.success(f"✓ Job '{job.name}' updated")

    def pause(self, *, id: int, **_) -> None:
        job = services.job_pause(job=services.job_get(job_id=id))
        self.success(f"✓ Job '{job.name}' has been paused")

    def resume(self, *, id: int, **_) -> None:
        job = services.job_resume(job=services.job_get(job_id=id))
        self.success(f"✓ Job '{job.name}' has been resumed")

    def delete(self, *, id: int, force: bool, **_) -> None:
        job = services.job_get(job_id=id)
        if not force and not self.confirm(
            f"Are you sure you want to delete job '{job.name}' (ID: {job.pk})?"
        ):
            raise CommandError("Not confirmed; nothing was deleted (use --force to skip the question).")
        services.job_delete(job=job)
        self.success("✓ Job deleted successfully")
