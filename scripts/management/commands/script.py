"""`manage.py script add|list|show|edit|run|runs|output|cancel|env|pythons|delete|versions|diff|
restore|templates`: users' scripts without a server. Thin: every change and read goes through scripts.services/selectors."""

from __future__ import annotations

import argparse
import getpass
import re
import time
from pathlib import Path

from django.core.management.base import CommandError
from rich.text import Text

from live.streams import run_events
from scripts import environments, selectors, services
from scripts.models import RunState
from scripts.serializers import (
    run_representation,
    script_representation,
    template_representation,
    version_representation,
)
from teckochecker.cli import (
    TeckoCommand,
    cell,
    details_table,
    fmt_time,
    one_line,
    positive_id,
    table,
    whole_number,
)

# After this long still queued, `run --wait` says that a scripts worker must be running.
QUEUED_HINT_SECONDS = 5.0
RUN_ICONS = {
    "queued": "⏳",
    "running": "🔄",
    "succeeded": "✅",
    "failed": "🔴",
    "timed_out": "⏰",
    "killed": "💀",
    "cancelled": "⚪",
}
UNITS = {"s": "seconds", "m": "minutes", "h": "hours"}
DEFAULT_RUNS = 20
DEFAULT_VERSIONS = 20


def cli_author() -> str:
    """Who a version saved from the command line is by: the shell's user, marked as such."""
    try:
        return f"{getpass.getuser()} (manage.py)"
    except (KeyError, OSError):  # no name for this uid (a bare container)
        return "manage.py"


# --- argparse types ----------------------------------------------------------------------------


def interval(raw: str) -> dict:
    """`30s`, `5m`, `2h` (a bare number is seconds) -> an interval schedule."""
    match = re.fullmatch(r"(\d{1,9})\s*([smh]?)", raw.strip().lower())
    if not match:
        raise argparse.ArgumentTypeError(f"takes a number and a unit: 30s, 5m or 2h (got '{one_line(raw)}')")
    return {"type": "interval", "every": int(match[1]), "unit": UNITS[match[2] or "s"]}


def env_pair(raw: str) -> tuple[str, str]:
    """`NAME=VALUE` (the service checks the name)."""
    name, sep, value = raw.partition("=")
    if not sep or not name.strip():
        raise argparse.ArgumentTypeError(f"takes NAME=VALUE (got '{one_line(raw)[:60]}')")
    return name.strip(), value


def read_text(path: str, option: str, *, stdin) -> str:
    """A UTF-8 text file's content, or `-` for `stdin`; one clear error otherwise."""
    if path == "-":
        return stdin.read()
    try:
        return Path(path).read_bytes().decode("utf-8")
    except UnicodeDecodeError:
        raise CommandError(f"{option}: '{one_line(path)}' is not UTF-8 text.") from None
    except OSError as exc:
        raise CommandError(f"{option}: cannot read '{one_line(path)}': {exc.strerror or exc}.") from None


# --- formatting --------------------------------------------------------------------------------


def fmt_run_state(state: str) -> str:
    return f"{RUN_ICONS.get(state, '•')} {state}"


def fmt_schedule(schedule: dict) -> str:
    kind = schedule.get("type")
    if kind == "interval":
        return f"every {schedule['every']} {schedule['unit']}"
    if kind == "cron":
        return f"cron {schedule['cron']} ({schedule.get('timezone') or 'UTC'})"
    return "at startup" if kind == "startup" else "manual"


def fmt_bytes(value: int | None) -> str:
    if value is None:
        return "-"
    return f"{value / 1024 / 1024:.1f} MB" if value >= 1024 * 1024 else f"{-(-value // 1024)} KB"


def fmt_seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f} s"


def fmt_env(entries: list[dict]) -> str:
    return ", ".join(
        f"{e['name']}=<secret {e['secret']}>" if "secret" in e else f"{e['name']}={e['value']}"
        for e in entries
    )


def fmt_url_trigger(script) -> str:
    if not script.url_trigger:
        return "off"
    return f"POST{' and GET' if script.url_trigger_get else ''} /api/scripts/{script.slug}/trigger"


class Command(TeckoCommand):
    help = "Add, list, show, change, run and delete Python scripts; their runs, output and environments."

    def add_arguments(self, parser) -> None:
        sub = parser.add_subparsers(
            dest="action",
            required=True,
            metavar="{add,list,show,edit,run,runs,output,cancel,env,pythons,delete,versions,diff,restore,templates}",
        )

        add = sub.add_parser("add", help="Add a script (its environment is built in the background).")
        add.add_argument("--name", required=True, help="Display name; the safe name (slug) is made from it.")
        add.add_argument(
            "--template",
            help="Start from a built-in template (see `script templates`); the options given win.",
        )
        self.add_script_options(add)

        listing = sub.add_parser("list", help="Show scripts by folder and name.")
        listing.add_argument("--folder", help="Only scripts in this folder.")
        listing.add_argument(
            "--json", dest="as_json", action="store_true", help="Print JSON instead of a table."
        )

        show = sub.add_parser("show", help="Show one script: settings, schedule, environment, last run.")
        show.add_argument("script", help="Script ID or safe name.")
        what = show.add_mutually_exclusive_group()
        what.add_argument("--json", dest="as_json", action="store_true", help="Print JSON instead of tables.")
        what.add_argument(
            "--code", action="store_true", help="Print only the code (e.g. to edit it in a file)."
        )

        edit = sub.add_parser("edit", help="Change a script; only the options given change.")
        edit.add_argument("script", help="Script ID or safe name.")
        edit.add_argument("--name", help="New display name (the safe name stays).")
        self.add_script_options(edit, editing=True)

        run = sub.add_parser("run", help="Run a script now (on the scripts worker).")
        run.add_argument("script", help="Script ID or safe name.")
        run.add_argument(
            "--wait",
            action="store_true",
            help="Print the output as it comes and exit with the script's exit code.",
        )
        run.add_argument("--json", dest="as_json", action="store_true", help="Print the run as JSON.")

        runs = sub.add_parser("runs", help="A script's runs, newest first.")
        runs.add_argument("script", help="Script ID or safe name.")
        runs.add_argument("--state", choices=RunState.values, help="Only runs in this state.")
        runs.add_argument("--search", help="Only runs whose output or message contains this text.")
        runs.add_argument("--limit", type=whole_number, default=DEFAULT_RUNS, help="How many (default 20).")
        runs.add_argument(
            "--json", dest="as_json", action="store_true", help="Print JSON instead of a table."
        )

        output = sub.add_parser("output", help="Print a run's output (stdout and stderr, in order).")
        output.add_argument("run", type=positive_id, help="Run ID.")

        cancel = sub.add_parser("cancel", help="Cancel a queued or running run (its whole process group).")
        cancel.add_argument("run", type=positive_id, help="Run ID.")

        env = sub.add_parser("env", help="Check or rebuild a script's environment.")
        env.add_argument(
            "env_action", choices=["check", "rebuild"], help="check: does it work? rebuild: from scratch."
        )
        env.add_argument("script", help="Script ID or safe name.")
        env.add_argument("--json", dest="as_json", action="store_true", help="Print the check as JSON.")

        pythons = sub.add_parser("pythons", help="The Python versions scripts can use on this machine.")
        pythons.add_argument(
            "--json", dest="as_json", action="store_true", help="Print JSON instead of a table."
        )

        delete = sub.add_parser("delete", help="Delete a script with its runs and environment.")
        delete.add_argument("script", help="Script ID or safe name.")
        delete.add_argument("--force", action="store_true", help="Do not ask for confirmation.")

        versions = sub.add_parser(
            "versions", help="A script's versions of code and requirements, newest first."
        )
        versions.add_argument("script", help="Script ID or safe name.")
        versions.add_argument(
            "--limit", type=whole_number, default=DEFAULT_VERSIONS, help="How many (default 20)."
        )
        versions.add_argument(
            "--json", dest="as_json", action="store_true", help="Print JSON instead of a table."
        )

        diff = sub.add_parser("diff", help="What changed between two versions (a unified diff).")
        diff.add_argument("script", help="Script ID or safe name.")
        diff.add_argument("old", type=positive_id, help="The version to compare from.")
        diff.add_argument(
            "new", type=positive_id, nargs="?", help="The version to compare to (default: current)."
        )

        restore = sub.add_parser("restore", help="Make a version's code and requirements current again.")
        restore.add_argument("script", help="Script ID or safe name.")
        restore.add_argument("number", type=positive_id, help="The version to bring back.")

        templates = sub.add_parser("templates", help="The built-in templates `add --template` starts from.")
        templates.add_argument(
            "--json", dest="as_json", action="store_true", help="Print JSON instead of a table."
        )

    @staticmethod
    def add_script_options(parser, *, editing: bool = False) -> None:
        parser.add_argument("--file", help="The code: a Python file, or - for stdin.")
        parser.add_argument("--requirements", help="A requirements.txt file (pip lines), or - for stdin.")
        parser.add_argument("--folder", help="Folder to file it under (empty string: none).")
        parser.add_argument("--python", help="Python version, e.g. 3.12 (see `script pythons`).")
        when = parser.add_mutually_exclusive_group()
        when.add_argument("--every", type=interval, help="Run every 30s, 5m or 2h.")
        when.add_argument("--cron", help='Run on a cron schedule, five fields: "0 3 * * *".')
        when.add_argument("--at-startup", action="store_true", help="Run when the service starts.")
        if editing:
            when.add_argument("--manual", action="store_true", help="Only run when asked.")
        parser.add_argument("--timezone", help="Time zone of --cron (default UTC), e.g. Europe/Prague.")
        parser.add_argument("--timeout", type=whole_number, help="Wall-clock limit per run, seconds.")
        parser.add_argument("--memory", type=whole_number, help="Memory limit per run, MB.")
        parser.add_argument("--cpu", type=whole_number, help="CPU-time limit per run, seconds.")
        network = parser.add_mutually_exclusive_group()
        network.add_argument(
            "--network", dest="network", action="store_true", default=None, help="Allow network access."
        )
        network.add_argument(
            "--no-network", dest="network", action="store_false", help="No network (the default)."
        )
        url = parser.add_mutually_exclusive_group()
        url.add_argument(
            "--url-trigger",
            dest="url_trigger",
            action="store_true",
            default=None,
            help="An API key may run it: POST /api/scripts/<safe name>/trigger.",
        )
        url.add_argument(
            "--no-url-trigger", dest="url_trigger", action="store_false", help="No URL trigger (the default)."
        )
        get = parser.add_mutually_exclusive_group()
        get.add_argument(
            "--url-trigger-get",
            dest="url_trigger_get",
            action="store_true",
            default=None,
            help="The trigger also answers GET.",
        )
        get.add_argument(
            "--no-url-trigger-get",
            dest="url_trigger_get",
            action="store_false",
            help="POST only (the default).",
        )
        if editing:
            enabled = parser.add_mutually_exclusive_group()
            enabled.add_argument(
                "--enable", dest="enabled", action="store_true", default=None, help="Schedule it again."
            )
            enabled.add_argument("--disable", dest="enabled", action="store_false", help="Stop its schedule.")
        replaces = " (replaces all its variables)" if editing else ""
        parser.add_argument(
            "--env",
            type=env_pair,
            action="append",
            metavar="NAME=VALUE",
            help=f"An environment variable; repeat for more{replaces}.",
        )
        parser.add_argument(
            "--env-secret",
            type=env_pair,
            action="append",
            metavar="NAME=SECRET",
            help=f"A variable whose value is the vault secret SECRET; repeat for more{replaces}.",
        )

    def handle(self, *args, action: str, **options) -> None:
        getattr(self, f"do_{action}")(**options)

    # --- changes ---------------------------------------------------------------------------------

    def script_fields(self, options: dict) -> dict:
        """The service fields the options give; an option not given is not in the result."""
        fields: dict = {}
        if options.get("file") is not None:
            fields["code"] = read_text(options["file"], "--file", stdin=self.stdin)
        if options.get("requirements") is not None:
            fields["requirements"] = read_text(options["requirements"], "--requirements", stdin=self.stdin)
        for option, field in (("name", "name"), ("folder", "folder"), ("python", "python_version")):
            if options.get(option) is not None:
                fields[field] = options[option]
        for option, field in (
            ("timeout", "timeout_seconds"),
            ("memory", "memory_mb"),
            ("cpu", "cpu_seconds"),
        ):
            if options.get(option) is not None:
                fields[field] = options[option]
        for field in ("network", "enabled", "url_trigger", "url_trigger_get"):
            if options.get(field) is not None:
                fields[field] = options[field]
        if options.get("timezone") is not None and options.get("cron") is None:
            raise CommandError("--timezone goes with --cron.")
        if options.get("every"):
            fields["schedule"] = options["every"]
        elif options.get("cron") is not None:
            fields["schedule"] = {
                "type": "cron",
                "cron": options["cron"],
                "timezone": options.get("timezone") or "UTC",
            }
        elif options.get("at_startup"):
            fields["schedule"] = {"type": "startup"}
        elif options.get("manual"):
            fields["schedule"] = {"type": "manual"}
        if options.get("env") is not None or options.get("env_secret") is not None:
            fields["env"] = [{"name": n, "value": v} for n, v in options.get("env") or []] + [
                {"name": n, "secret": s} for n, s in options.get("env_secret") or []
            ]
        return fields

    def do_add(self, *, template: str | None, **options) -> None:
        fields = self.script_fields(options)
        if template is not None:
            script = services.script_create_from_template(template=template, **fields, author=cli_author())
        else:
            script = services.script_create(**fields, author=cli_author())
        self.success(f"✓ Script '{script.name}' added (ID: {script.pk}, safe name: {script.slug})")
        self.stdout.write(f"  Its environment is being built; see `manage.py script show {script.slug}`.")

    def do_edit(self, *, script: str, **options) -> None:
        changes = self.script_fields(options)
        if not changes:
            raise CommandError("Nothing to change: give at least one option (see 'script edit --help').")
        updated = services.script_update(
            script=services.script_get_by_ref(ref=script), author=cli_author(), **changes
        )
        self.success(f"✓ Script '{updated.name}' updated: {', '.join(sorted(changes))}")

    def do_delete(self, *, script: str, force: bool, **_) -> None:
        target = services.script_get_by_ref(ref=script)
        if not force and not self.confirm(
            f"Delete script '{target.name}' (ID: {target.pk}) with its runs and environment?"
        ):
            raise CommandError("Not confirmed; nothing was deleted (use --force to skip the question).")
        services.script_delete(script=target)
        self.success(f"✓ Script '{target.name}' deleted")

    # --- reads -----------------------------------------------------------------------------------

    def do_list(self, *, folder: str | None, as_json: bool, **_) -> None:
        scripts, total = selectors.script_list(folder=folder)
        if as_json:
            self.write_json({"scripts": [script_representation(s) for s in scripts], "total": total})
            return
        if not scripts:
            self.stdout.write("No scripts found." if folder is None else f"No scripts in folder '{folder}'.")
            return
        t = table(
            "Scripts",
            ["ID", "Name", "Safe Name", "Folder", "Schedule", "Environment", "Last Run", "Next Run"],
        )
        for script in scripts:
            shape = script_representation(script)
            last = script.last_run
            next_runs = services.script_next_runs(script=script) if script.enabled else []
            t.add_row(
                cell(script.pk),
                cell(script.name),
                cell(script.slug),
                cell(script.folder),
                cell(fmt_schedule(shape["schedule"]) + ("" if script.enabled else " (disabled)")),
                cell(shape["environment"]["state"]),
                cell(f"{fmt_run_state(last.state)} {fmt_time(last.queued_at)}" if last else "never"),
                cell(fmt_time(next_runs[0]) if next_runs else "-"),
            )
        self.render(t)

    def do_show(self, *, script: str, as_json: bool, code: bool, **_) -> None:
        found = selectors.script_detail(script_id=services.script_get_by_ref(ref=script).pk)
        shape = script_representation(found)
        if code:
            self.stdout.write(found.code, ending="")
            return
        if as_json:
            self.write_json(shape)
            return
        env = shape["environment"]
        next_runs = services.script_next_runs(script=found) if found.enabled else []
        rows = [
            ("ID", found.pk),
            ("Name", found.name),
            ("Safe Name", found.slug),
            ("Folder", found.folder),
            ("Enabled", "yes" if found.enabled else "no"),
            ("Python", found.python_version),
            ("Schedule", fmt_schedule(shape["schedule"])),
            ("Next Runs", "\n".join(fmt_time(t) for t in next_runs) or "-"),
            ("When Busy", shape["overlap"]),
            (
                "Limits",
                f"{found.timeout_seconds} s wall clock, {found.memory_mb} MB, {found.cpu_seconds} s CPU",
            ),
            ("Network", "allowed" if found.network else "off"),
            ("URL Trigger", fmt_url_trigger(found)),
            ("Variables", fmt_env(shape["env"])),
            ("Requirements", "\n".join(found.requirements.split()) if found.requirements.strip() else "-"),
            ("Code", f"{len(found.code.splitlines())} lines (`script show {found.slug} --code`)"),
            ("Version", f"{found.version} (`script versions {found.slug}`)"),
            ("Environment", env["state"]),
            ("Environment Python", env["python_version"]),
            ("Environment Disk", fmt_bytes(env["disk_bytes"])),
            ("Environment Built", fmt_time(found.env_built_at)),
        ]
        if env["error"]:
            rows.append(("Environment Error", Text(env["error"], style="red")))
        notify = shape["notify"]
        if notify["on_success"] or notify["on_failure"]:
            events = " and ".join(
                e for e, on in (("success", notify["on_success"]), ("failure", notify["on_failure"])) if on
            )
            rows.append(("Notify", f"on {events}: {', '.join(notify['emails']) or 'the server default'}"))
        last = found.last_run
        if last:
            rows.append(("Last Run", f"#{last.pk} {fmt_run_state(last.state)} {fmt_time(last.queued_at)}"))
        self.render(details_table("Script Details", rows))

    def do_runs(
        self, *, script: str, state: str | None, search: str | None, limit: int, as_json: bool, **_
    ) -> None:
        if not 1 <= limit <= 1000:
            raise CommandError(f"--limit must be between 1 and 1000 (got {limit}).")
        target = services.script_get_by_ref(ref=script)
        runs, total = selectors.run_list(script_id=target.pk, state=state, search=search or None, limit=limit)
        if as_json:
            self.write_json({"runs": [run_representation(r) for r in runs], "total": total})
            return
        if not runs:
            filtered = state is not None or search
            self.stdout.write(
                f"No matching runs of '{target.name}'." if filtered else f"No runs of '{target.name}' yet."
            )
            return
        t = table(
            f"Runs of {target.name} ({len(runs)} of {total})",
            ["ID", "State", "Trigger", "Queued", "Duration", "Exit", "Peak Memory", "CPU"],
        )
        for run in runs:
            t.add_row(
                cell(run.pk),
                cell(fmt_run_state(run.state)),
                cell(run.trigger),
                cell(fmt_time(run.queued_at)),
                cell(fmt_seconds(run.duration_seconds)),
                cell(run.exit_code),
                cell(fmt_bytes(run.peak_memory_kb * 1024) if run.peak_memory_kb is not None else None),
                cell(fmt_seconds(run.cpu_seconds)),
            )
        self.render(t)

    def do_output(self, *, run: int, **_) -> None:
        found = services.run_get(run_id=run)
        self.stdout.write(found.output, ending="")
        if found.output_truncated:
            self.stderr.write(f"(run {found.pk}: output truncated at the size cap)")

    def do_pythons(self, *, as_json: bool, **_) -> None:
        pythons = environments.pythons_available()
        if as_json:
            self.write_json(
                {"pythons": [{"version": p.version, "path": p.path, "default": p.default} for p in pythons]}
            )
            return
        if not pythons:
            raise CommandError("No Python 3.8+ interpreter was found on this machine.")
        t = table("Python Versions", ["Version", "Path", "Default"])
        for p in pythons:
            t.add_row(cell(p.version), cell(p.path), cell("yes" if p.default else ""))
        self.render(t)

    # --- versions --------------------------------------------------------------------------------

    def do_versions(self, *, script: str, limit: int, as_json: bool, **_) -> None:
        if not 1 <= limit <= 1000:
            raise CommandError(f"--limit must be between 1 and 1000 (got {limit}).")
        target = services.script_get_by_ref(ref=script)
        versions, total = services.version_list(script=target, limit=limit)
        shown = [version_representation(v, current=target.version) for v in versions]
        if as_json:
            self.write_json({"versions": shown, "total": total, "current": target.version})
            return
        if not shown:
            self.stdout.write(f"No versions of '{target.name}' yet (its code has not been saved since).")
            return
        t = table(
            f"Versions of {target.name} ({len(shown)} of {total})",
            ["Version", "Saved", "By", "Change", "Note"],
        )
        for version, row in zip(versions, shown, strict=True):
            note = "current" if row["current"] else ""
            if version.restored_from:
                note = ", ".join(filter(None, [note, f"restored from {version.restored_from}"]))
            t.add_row(
                cell(version.number),
                cell(fmt_time(version.created_at)),
                cell(version.author or "-"),
                cell(f"+{version.added} -{version.removed}"),
                cell(note),
            )
        self.render(t)

    def do_diff(self, *, script: str, old: int, new: int | None, **_) -> None:
        target = services.script_get_by_ref(ref=script)
        diff = services.version_diff(script=target, old=old, new=new if new is not None else target.version)
        text = diff["code_diff"] + diff["requirements_diff"]
        self.stdout.write(text, ending="")
        summary = f"+{diff['added']} -{diff['removed']} from version {diff['from']} to {diff['to']}"
        self.stderr.write(
            summary if text else f"No difference between versions {diff['from']} and {diff['to']}."
        )

    def do_restore(self, *, script: str, number: int, **_) -> None:
        target = services.script_get_by_ref(ref=script)
        updated, changed = services.version_restore(script=target, number=number, author=cli_author())
        if changed:
            self.success(f"✓ Script '{updated.name}': version {number} restored as version {updated.version}")
        else:
            self.success(
                f"✓ Script '{updated.name}': version {number} is what it holds already; nothing changed"
            )

    def do_templates(self, *, as_json: bool, **_) -> None:
        templates = [template_representation(t) for t in services.template_list()]
        if as_json:
            self.write_json({"templates": templates})
            return
        t = table("Script Templates", ["Name", "What it does", "Network", "Variables"])
        for template in templates:
            variables = ", ".join(
                f"{v['name']}=<{v['secret_type']} secret>"
                if v["secret_type"]
                else f"{v['name']}={v['value']}"
                for v in template["variables"]
            )
            t.add_row(
                cell(template["name"]),
                cell(f"{template['title']}: {template['description']}"),
                cell("yes" if template["network"] else "no"),
                cell(variables or "-"),
            )
        self.render(t)
        self.stdout.write(
            'Start one: script add --template NAME --name "My script" [--env-secret VAR=SECRET]'
        )

    # --- runs and environments -----------------------------------------------------------------

    def do_cancel(self, *, run: int, **_) -> None:
        found = services.run_cancel(run=services.run_get(run_id=run))
        self.success(f"✓ Run {found.pk} of '{found.script.name}': {found.state}")

    def do_env(self, *, env_action: str, script: str, as_json: bool, **_) -> None:
        target = services.script_get_by_ref(ref=script)
        if env_action == "rebuild":
            services.environment_rebuild(script=target)
            self.success(
                f"✓ Environment of '{target.name}' is being rebuilt; see `script show {target.slug}`."
            )
            return
        result = services.environment_check(script=target)
        if as_json:
            self.write_json(result)
        elif result["ok"]:
            self.success(f"✓ Environment of '{target.name}' works (Python {result['python_version']}).")
        else:
            t = table(f"Environment of {target.name}: problems", ["Problem"])
            for problem in result["problems"]:
                t.add_row(cell(problem))
            self.render(t)
        if not result["ok"]:
            raise CommandError(f"The environment check found {len(result['problems'])} problem(s).")

    def do_run(self, *, script: str, wait: bool, as_json: bool, **_) -> None:
        run = services.script_run_now(script=services.script_get_by_ref(ref=script))
        if not wait:
            if as_json:
                self.write_json(run_representation(run))
            else:
                self.success(
                    f"✓ Run {run.pk} of '{run.script.name}' queued (`script output {run.pk}` shows its output)."
                )
            return
        run = self.follow(run.pk, echo=not as_json)
        if as_json:
            self.write_json(run_representation(run, with_output=True))
        if run.state != RunState.SUCCEEDED:
            why = f": {one_line(run.message)}" if run.message else ""
            code = f" (exit code {run.exit_code})" if run.exit_code is not None else ""
            self.stderr.write(f"Run {run.pk} {run.state}{code}{why}")
            raise SystemExit(run.exit_code if run.exit_code else 1)

    # Tests stand in for the worker here: called instead of waiting for the change feed.
    wait_for_news = None

    def follow(self, run_id: int, *, echo: bool = True):
        """Wait for the run to end, printing its output as the worker stores it (the same stream
        as GET /api/runs/{id}/stream). Returns the run."""
        started = time.monotonic()
        hinted, state = False, None
        try:
            # A heartbeat a second, so the "still queued" hint comes on time.
            for event in run_events(run_id=run_id, wait=self.wait_for_news, heartbeat=1.0):
                if event.name == "output" and echo:
                    self.stdout.write(event.value["text"], ending="")
                    self.stdout.flush()
                elif event.name == "end":
                    return services.run_get(run_id=run_id)
                elif event.name == "state":
                    state = event.value["state"]
                if (
                    state == RunState.QUEUED
                    and not hinted
                    and time.monotonic() - started > QUEUED_HINT_SECONDS
                ):
                    hinted = True
                    self.stderr.write(
                        f"(run {run_id} is still queued: is a scripts worker running? `manage.py start` runs one)"
                    )
            return services.run_get(run_id=run_id)
        except KeyboardInterrupt:
            self.stderr.write(
                f"Stopped waiting; run {run_id} goes on (`manage.py script cancel {run_id}` ends it)."
            )
            raise SystemExit(130) from None
