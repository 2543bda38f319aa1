"""The database triggers that fill the change feed (`live.models.Change`).

Each watched table gets a trigger per operation; an UPDATE counts only when a column a person
would see changed (a lease renewal or a due time moving is not news). On PostgreSQL the
triggers are deferred to commit and take one advisory lock there, so change ids are handed out
in commit order: a reader that has seen id N will never later find a committed N-1. SQLite has
one writer at a time, which gives the same order for free.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.db import connections

# pg_advisory_xact_lock key that orders the commits of changes ("live" in ASCII).
PG_LOCK_KEY = 0x6C697665


@dataclass(frozen=True)
class Watch:
    name: str
    table: str
    operation: str  # INSERT, UPDATE or DELETE
    topic: str
    column: str = "id"  # the row's column that names the changed object
    when: tuple[str, ...] = ()  # UPDATE only: it counts when one of these columns changed


_JOB_COLUMNS = (
    "name",
    "status",
    "poll_interval_seconds",
    "action_type",
    "trigger_state",
    "keboola_job_id",
    "keboola_job_status",
    "last_error",
    "completed_at",
)
_BATCH_COLUMNS = ("status", "request_total", "request_completed", "request_failed")
_RUN_COLUMNS = ("state", "exit_code", "message", "started_at", "finished_at")
_SCRIPT_COLUMNS = ("name", "folder", "enabled", "schedule_type", "env_state", "env_error", "env_built_at")

WATCHES = (
    Watch("job_ins", "polling_pollingjob", "INSERT", "job"),
    Watch("job_upd", "polling_pollingjob", "UPDATE", "job", when=_JOB_COLUMNS),
    Watch("job_del", "polling_pollingjob", "DELETE", "job"),
    Watch("batch_ins", "polling_jobbatch", "INSERT", "job", "job_id"),
    Watch("batch_upd", "polling_jobbatch", "UPDATE", "job", "job_id", when=_BATCH_COLUMNS),
    Watch("batch_del", "polling_jobbatch", "DELETE", "job", "job_id"),
    Watch("log_ins", "polling_pollinglog", "INSERT", "log"),
    Watch("run_ins", "scripts_scriptrun", "INSERT", "run"),
    Watch("run_upd", "scripts_scriptrun", "UPDATE", "run", when=_RUN_COLUMNS),
    Watch("run_del", "scripts_scriptrun", "DELETE", "run"),
    Watch("output_upd", "scripts_scriptrun", "UPDATE", "output", when=("output",)),
    Watch("script_ins", "scripts_script", "INSERT", "script"),
    Watch("script_upd", "scripts_script", "UPDATE", "script", when=_SCRIPT_COLUMNS),
    Watch("script_del", "scripts_script", "DELETE", "script"),
)
WATCHED_TABLES = frozenset(w.table for w in WATCHES)


def _row(watch: Watch) -> str:
    return "OLD" if watch.operation == "DELETE" else "NEW"


# Every name and value in these statements is a constant of this module, never input: S608 is
# silenced for them below.


def _sqlite(watch: Watch) -> list[str]:
    when = " OR ".join(f'OLD."{c}" IS NOT NEW."{c}"' for c in watch.when)
    insert = f"INSERT INTO live_change (topic, object_id) VALUES ('{watch.topic}', {_row(watch)}.\"{watch.column}\")"  # noqa: S608
    return [
        f"DROP TRIGGER IF EXISTS live_{watch.name}",
        f'CREATE TRIGGER live_{watch.name} AFTER {watch.operation} ON "{watch.table}" FOR EACH ROW'
        + (f" WHEN {when}" if when else "")
        + f" BEGIN {insert}; END",
    ]


def _pg_function(column: str) -> str:
    return f"""
CREATE OR REPLACE FUNCTION live_change_by_{column}() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_advisory_xact_lock({PG_LOCK_KEY});
    IF TG_OP = 'DELETE' THEN
        INSERT INTO live_change (topic, object_id) VALUES (TG_ARGV[0], OLD."{column}");
    ELSE
        INSERT INTO live_change (topic, object_id) VALUES (TG_ARGV[0], NEW."{column}");
    END IF;
    RETURN NULL;
END $$"""  # noqa: S608


def _postgresql(watch: Watch) -> list[str]:
    when = " OR ".join(f'OLD."{c}" IS DISTINCT FROM NEW."{c}"' for c in watch.when)
    return [
        f'DROP TRIGGER IF EXISTS live_{watch.name} ON "{watch.table}"',
        f'CREATE CONSTRAINT TRIGGER live_{watch.name} AFTER {watch.operation} ON "{watch.table}" '
        "DEFERRABLE INITIALLY DEFERRED FOR EACH ROW"
        + (f" WHEN ({when})" if when else "")
        + f" EXECUTE FUNCTION live_change_by_{watch.column}('{watch.topic}')",
    ]


def install(using: str = "default") -> int:
    """(Re)create every trigger whose table exists; returns how many. Idempotent."""
    connection = connections[using]
    tables = set(connection.introspection.table_names())
    if "live_change" not in tables:
        return 0
    watches = [w for w in WATCHES if w.table in tables]
    statements: list[str] = []
    if connection.vendor == "postgresql":
        statements += [_pg_function(c) for c in sorted({w.column for w in watches})]
        for watch in watches:
            statements += _postgresql(watch)
    elif connection.vendor == "sqlite":
        for watch in watches:
            statements += _sqlite(watch)
    else:  # settings allow only these two
        raise RuntimeError(f"live updates do not support {connection.vendor}")
    with connection.cursor() as cursor:
        for statement in statements:
            cursor.execute(statement)
    return len(watches)


def uninstall(using: str = "default") -> None:
    """Drop every live trigger (before the change table goes: a trigger writing to a missing
    table would make every write to its table fail)."""
    connection = connections[using]
    tables = set(connection.introspection.table_names())
    with connection.cursor() as cursor:
        for watch in WATCHES:
            if watch.table not in tables:
                continue
            if connection.vendor == "postgresql":
                cursor.execute(f'DROP TRIGGER IF EXISTS live_{watch.name} ON "{watch.table}"')
            else:
                cursor.execute(f"DROP TRIGGER IF EXISTS live_{watch.name}")


def installed(using: str = "default") -> set[str]:
    """The names of the live triggers in the database (for tests and `doctor`)."""
    connection = connections[using]
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("SELECT tgname FROM pg_trigger WHERE tgname LIKE 'live\\_%%'")
        else:
            cursor.execute(
                "SELECT name FROM sqlite_master WHERE type = 'trigger' AND name LIKE 'live\\_%' ESCAPE '\\'"
            )
        return {row[0] for row in cursor.fetchall()}


def install_after_migrate(sender, using="default", **kwargs) -> None:
    install(using)
