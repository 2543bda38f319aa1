"""`python -m bench.idle`: the memory of `manage.py start` at rest, process by process.

Starts the service exactly as `make run` does, on the embedded defaults (a fresh SQLite file and
the file broker in a temporary DATA_DIR, fresh keys), waits until it serves and has settled,
reads each process's resident memory (VmRSS) and proportional share (Pss: shared pages split
between the processes that share them), prints the table and stops the service.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parents[1]


def _status_kb(pid: int, key: str, name: str = "status") -> int | None:
    try:
        for line in Path(f"/proc/{pid}/{name}").read_text().splitlines():
            if line.startswith(f"{key}:"):
                return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return None


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
            if ppid == pid:
                found.append(int(entry.name))
    return sorted(found)


def role(cmdline: list[str], parent_role: str | None) -> str:
    text = " ".join(cmdline)
    if "supervisor.py" in text:
        return "supervisor (manage.py start)"
    if "gunicorn" in text:
        return "gunicorn worker" if parent_role == "gunicorn master" else "gunicorn master"
    if "scripts@" in text:
        return "scripts worker"
    if " worker" in text:
        return "Celery worker" + (" + beat (thread)" if "--beat-thread" in text else "")
    if " beat" in text:
        return "Celery beat"
    return text[:60]


def tree(pid: int, parent_role: str | None = None) -> list[dict]:
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")
    except OSError:
        return []
    name = role(cmdline, parent_role)
    rows = [
        {
            "process": name,
            "pid": pid,
            "rss_mb": round((_status_kb(pid, "VmRSS") or 0) / 1024, 1),
            "pss_mb": round((_status_kb(pid, "Pss", "smaps_rollup") or 0) / 1024, 1),
        }
    ]
    for child in _children(pid):
        rows += tree(child, name)
    return rows


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def measure(*, settle: float = 15.0, extra_env: dict[str, str] | None = None) -> list[dict]:
    from cryptography.fernet import Fernet

    with tempfile.TemporaryDirectory(prefix="teckochecker-idle-") as tmp:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_URL", "CELERY_"))}
        env.update(
            TECKOCHECKER_ENV_FILE="none",
            DATA_DIR=str(Path(tmp) / "data"),
            DATABASE_URL=f"sqlite:///{tmp}/db.sqlite3",
            SECRET_KEY=secrets.token_urlsafe(50),
            FERNET_KEYS=Fernet.generate_key().decode(),
            HTTPS_ONLY="false",
            CELERY_QUEUE=f"idle-{os.getpid()}",
            **(extra_env or {}),
        )
        python = sys.executable
        subprocess.run(
            [python, "manage.py", "migrate", "--no-input", "-v", "0"], cwd=BASE_DIR, env=env, check=True
        )
        port = free_port()
        service = subprocess.Popen(
            [python, "manage.py", "start", "--port", str(port)],
            cwd=BASE_DIR,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        try:
            for line in service.stdout:
                if "Press Ctrl-C" in line:
                    break
            else:
                raise RuntimeError(f"the service did not start (exit code {service.wait()})")
            time.sleep(settle)
            return tree(service.pid)
        finally:
            service.send_signal(signal.SIGTERM)
            service.communicate(timeout=60)


def render(rows: list[dict]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title="manage.py start, idle, embedded defaults (SQLite + file broker)")
    for column in ("process", "pid", "RSS MB", "PSS MB"):
        table.add_column(column, justify="left" if column == "process" else "right")
    for row in rows:
        table.add_row(row["process"], str(row["pid"]), f"{row['rss_mb']:.1f}", f"{row['pss_mb']:.1f}")
    polling = [r for r in rows if r["process"] != "scripts worker"]
    table.add_section()
    for label, part in (("total without the scripts worker", polling), ("total", rows)):
        table.add_row(
            label, "", f"{sum(r['rss_mb'] for r in part):.1f}", f"{sum(r['pss_mb'] for r in part):.1f}"
        )
    Console().print(table)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--settle", type=float, default=15.0, help="Seconds to wait after start (default 15)."
    )
    parser.add_argument("--json", action="store_true", help="Print the rows as JSON.")
    args = parser.parse_args()
    rows = measure(settle=args.settle)
    if args.json:
        print(json.dumps(rows, indent=1))
    else:
        render(rows)


if __name__ == "__main__":
    main()
