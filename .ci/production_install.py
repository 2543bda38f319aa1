"""Prove the production install the way the image and docker-compose.yml run it, without Docker.

1. A clean virtualenv on the Dockerfile's Python, filled by the Dockerfile's own `pip install`
   lines (read from the Dockerfile, so the two cannot drift) and nothing else: no dev tools.
   `pip check` must pass.
2. `manage.py init` writes the `.env` that compose reads (`env_file: .env`).
3. Every service of docker-compose.yml built from the app image runs with its own command and
   compose's environment, pointed at this machine's PostgreSQL and Redis instead of the
   containers' host names, web first (the others wait for it, as `depends_on` says).
4. Against the fake OpenAI + Keboola server (`manage.py fakeservers`, from the same venv): a job
   through the API, its batches finish, and Keboola receives exactly one job with the right
   variables.
5. Every process stops cleanly on SIGTERM, and no log shows a traceback or a missing module.

Run by `.ci/run` with the dev virtualenv's Python (it reads YAML); the product never runs from it.
Usage: python .ci/production_install.py [--keep]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
PG = "postgresql://postgres@127.0.0.1:5432"
REDIS = "redis://127.0.0.1:6379/0"
BAD_LOG_LINES = re.compile(r"Traceback|No module named|ModuleNotFoundError|ImportError|CRITICAL")


def say(text: str) -> None:
    print(f"[production-install] {text}", flush=True)


def fail(text: str) -> None:
    raise SystemExit(f"[production-install] FAILED: {text}")


def dockerfile_python() -> str:
    """The interpreter matching the Dockerfile's `FROM python:X.Y...` image."""
    match = re.search(r"^FROM python:(\d+\.\d+)", (ROOT / "Dockerfile").read_text(), re.MULTILINE)
    if not match:
        fail("the Dockerfile does not start FROM a python:X.Y image")
    version = match.group(1)
    candidates = [shutil.which(f"python{version}")]
    candidates += sorted(Path.home().glob(f".pyenv/versions/{version}.*/bin/python{version}"), reverse=True)
    for candidate in candidates:
        if candidate and Path(candidate).exists():
            return str(candidate)
    fail(f"no Python {version} on this machine (the Dockerfile's version)")
    raise AssertionError


def dockerfile_pip_installs() -> list[list[str]]:
    """The arguments of every `RUN pip install ...` line of the Dockerfile."""
    lines = re.findall(r"^RUN\s+pip install\s+(.+)$", (ROOT / "Dockerfile").read_text(), re.MULTILINE)
    if not lines:
        fail("the Dockerfile has no `RUN pip install` line")
    return [shlex.split(line) for line in lines]


def make_venv(work: Path) -> Path:
    venv = work / "venv"
    python = dockerfile_python()
    subprocess.run([python, "-m", "venv", str(venv)], check=True)
    for args in dockerfile_pip_installs():
        say(f"pip install {' '.join(args)}   (the Dockerfile's line, Python {python})")
        subprocess.run(
            [str(venv / "bin" / "pip"), "install", "-q", "--disable-pip-version-check", *args],
            cwd=ROOT,
            check=True,
            env={**os.environ, "PIP_NO_CACHE_DIR": "1"},
        )
    subprocess.run([str(venv / "bin" / "pip"), "check"], check=True)
    probe = subprocess.run([str(venv / "bin" / "python"), "-c", "import pytest"], capture_output=True)
    if probe.returncode == 0:
        fail("pytest is importable: the production venv has dev packages in it")
    return venv


def dotenv(path: Path) -> dict[str, str]:
    """KEY=value lines of a .env file as init writes them (values may be single-quoted)."""
    values = {}
    for line in path.read_text().splitlines() if path.exists() else []:
        if "=" in line and not line.lstrip().startswith("#"):
            key, _, value = line.partition("=")
            values[key.strip()] = value.strip().strip("'")
    return values


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def http(method: str, url: str, body: dict | None = None, token: str | None = None) -> tuple[int, object]:
    data = json.dumps(body).encode() if body else None
    request = urllib.request.Request(url, method=method, data=data)  # noqa: S310 - loopback only
    request.add_header("Content-Type", "application/json")
    if token:
        request.add_header("Authorization", f"Token {token}")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 - loopback only
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode(errors="replace")


def wait_for(what: str, predicate, *, timeout: float, procs: dict | None = None) -> object:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for name, proc in (procs or {}).items():
            if proc.poll() is not None:
                fail(f"{name} exited with code {proc.returncode} while waiting for {what}")
        try:
            value = predicate()
        except (OSError, urllib.error.URLError):
            value = None
        if value:
            return value
        time.sleep(0.5)
    fail(f"timed out after {timeout:.0f}s waiting for {what}")
    raise AssertionError


class Deployment:
    def __init__(self, work: Path, venv: Path) -> None:
        self.work = work
        self.venv = venv
        self.port = free_port()
        self.database = f"teckochecker_prodcheck_{os.getpid()}"
        self.queue = f"teckochecker-prodcheck-{os.getpid()}"
        self.procs: dict[str, subprocess.Popen] = {}
        self.logs: dict[str, Path] = {}
        compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
        self.services = {
            name: spec
            for name, spec in compose["services"].items()
            if spec.get("image", "").startswith("teckochecker")
        }
        if not {"web", "worker", "beat"} <= set(self.services):
            fail(
                f"docker-compose.yml app services are {sorted(self.services)}; expected web, worker and beat"
            )
        app_env = next(iter(self.services.values())).get("environment", {})
        unknown = set(app_env) - {"DATABASE_URL", "CELERY_BROKER_URL"}
        if unknown:
            fail(f"compose sets {sorted(unknown)} for the app; teach this check what they mean here")
        # Compose's environment, with this machine's services for the containers' host names.
        self.env = {
            **{k: v for k, v in os.environ.items() if k.startswith(("LANG", "LC_", "HOME", "TERM", "TZ"))},
            "PATH": f"{venv / 'bin'}:/usr/local/bin:/usr/bin:/bin",
            "TECKOCHECKER_ENV_FILE": str(work / ".env"),
            "DATA_DIR": str(work / "data"),
            "DATABASE_URL": f"{PG}/{self.database}",
            "CELERY_BROKER_URL": REDIS,
            "CELERY_QUEUE": self.queue,
            # The fake servers run on loopback; a real deployment talks to OpenAI and Keboola.
            "ALLOW_LOCAL_URLS": "true",
            "MIN_POLL_INTERVAL": "2",
        }

    def manage(self, *args: str, **extra: str) -> str:
        result = subprocess.run(
            [str(self.venv / "bin" / "python"), "manage.py", *args],
            cwd=ROOT,
            env={**self.env, **extra},
            capture_output=True,
            text=True,
            timeout=300,
            stdin=subprocess.DEVNULL,
        )
        if result.returncode:
            fail(f"manage.py {' '.join(args)} exited {result.returncode}: {result.stderr.strip()[-2000:]}")
        return result.stdout

    def spawn(self, name: str, argv: list[str], **extra: str) -> subprocess.Popen:
        log = self.work / f"{name}.log"
        self.logs[name] = log
        handle = log.open("w")
        proc = subprocess.Popen(
            argv,
            cwd=ROOT,
            env={**self.env, **extra},
            stdout=handle,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        self.procs[name] = proc
        return proc

    def interpolate(self, text: str) -> str:
        """Compose's variable syntax (`$$`, `${VAR}`, `${VAR:-default}`, `${VAR:?error}`), with the
        values compose would use: the environment, then the `.env` file."""
        values = {**dotenv(self.work / ".env"), **self.env}

        def one(match: re.Match) -> str:
            name, op, arg = match.group("name") or match.group("bare"), match.group("op"), match.group("arg")
            value = values.get(name, "")
            if op == ":-" and not value:
                return arg
            if op == ":?" and not value:
                fail(f"compose needs {name}: {arg}")
            return value

        # Innermost first, until nothing changes: `${A:-${B:-x}-y}` (compose nests defaults).
        # `$$` is a literal dollar, split off first so that it is never read as a variable.
        pattern = r"\$\{(?P<name>\w+)(?:(?P<op>:[-?])(?P<arg>[^${}]*))?\}|\$(?P<bare>\w+)"
        parts = []
        for part in text.split("$$"):
            for _level in range(5):  # a value that names itself must not loop forever
                if (expanded := re.sub(pattern, one, part)) == part:
                    break
                part = expanded
            parts.append(part)
        return "$".join(parts)

    def service_argv(self, name: str) -> list[str]:
        command = self.services[name]["command"]
        argv = command if isinstance(command, list) else shlex.split(command)
        # Inside a container each service has port 8000 and /tmp to itself; here they share one host.
        own_tmp = str(self.work / "celerybeat-schedule")
        return [
            self.interpolate(part)
            .replace("0.0.0.0:8000", f"127.0.0.1:{self.port}")
            .replace("/tmp/celerybeat-schedule", own_tmp)  # noqa: S108 - compose's path, replaced
            for part in argv
        ]

    def up(self, fake_url: str) -> None:
        subprocess.run(["createdb", "-h", "127.0.0.1", "-U", "postgres", self.database], check=True)
        self.env["OPENAI_BASE_URL"] = f"{fake_url}/v1"
        out = self.manage("init", "--no-input")
        if "✓ Wrote" not in out:
            fail(f"init did not write the .env: {out}")
        say(f"web: {' '.join(self.service_argv('web'))[:120]}…")
        self.spawn("web", self.service_argv("web"))
        base = f"http://127.0.0.1:{self.port}"
        wait_for(
            "the web service's health check",
            lambda: http("GET", f"{base}/api/health")[0] == 200,
            timeout=120,
            procs=self.procs,
        )
        for name in self.services:
            if name != "web":
                say(f"{name}: {' '.join(self.service_argv(name))[:120]}")
                self.spawn(name, self.service_argv(name))

    def down(self) -> dict[str, int]:
        codes = {}
        for name, proc in reversed(list(self.procs.items())):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
            try:
                codes[name] = proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                codes[name] = proc.wait()
                say(f"{name} did not stop within 60 s of SIGTERM")
        return codes

    def cleanup(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
        subprocess.run(
            ["dropdb", "-h", "127.0.0.1", "-U", "postgres", "--if-exists", "--force", self.database]
        )
        subprocess.run(
            [
                "redis-cli",
                "-h",
                "127.0.0.1",
                "del",
                self.queue,
                f"{self.queue}-scripts",
                f"{self.queue}-webhooks",
            ],
            capture_output=True,
        )


def scenario(deployment: Deployment, fake_url: str) -> None:
    base = f"http://127.0.0.1:{deployment.port}"
    token = deployment.manage("apitoken", "create", "--user", "admin").strip().split()[-1]
    for batch_id, outcome in (("batch_prod_ok", "completed"), ("batch_prod_bad", "failed")):
        http("POST", f"{fake_url}/_control/batches", {"id": batch_id, "finish_after": 3, "outcome": outcome})
    secrets = {}
    for name, kind, value in (
        ("prod-openai", "openai", "sk-prodcheck"),
        ("prod-keboola", "keboola", "kbc-prodcheck"),
    ):
        status, body = http(
            "POST", f"{base}/api/admin/secrets", {"name": name, "type": kind, "value": value}, token
        )
        if status != 201:
            fail(f"creating secret {name}: {status} {body}")
        secrets[kind] = body["id"]
    job = {
        "name": "production install check",
        "batch_ids": ["batch_prod_ok", "batch_prod_bad"],
        "openai_secret_id": secrets["openai"],
        "keboola_secret_id": secrets["keboola"],
        "keboola_stack_url": fake_url,
        "keboola_component_id": "kds-team.app-custom-python",
        "keboola_configuration_id": "4242",
        "poll_interval_seconds": 2,
    }
    status, body = http("POST", f"{base}/api/jobs", job, token)
    if status != 201:
        fail(f"creating the job: {status} {body}")
    job_id = body["id"]
    say(f"job {job_id} created; waiting for its Keboola trigger")

    def finished():
        _, shown = http("GET", f"{base}/api/jobs/{job_id}", token=token)
        return shown if shown["status"] in {"completed", "completed_with_failures", "failed"} else None

    shown = wait_for("the job's trigger", finished, timeout=180, procs=deployment.procs)
    if shown["status"] != "completed_with_failures":
        fail(f"job ended {shown['status']}: {shown.get('last_error')}")
    _, jobs = http("GET", f"{fake_url}/_control/keboola/jobs")
    if len(jobs) != 1:
        fail(f"Keboola received {len(jobs)} jobs, expected exactly 1")
    variables = jobs[0]["variables"]
    expected = {
        "batch_ids_completed": '["batch_prod_ok"]',
        "batch_ids_failed": '["batch_prod_bad"]',
        "batch_count_total": "2",
        "batch_count_completed": "1",
        "batch_count_failed": "1",
    }
    if variables != expected:
        fail(f"Keboola variables {variables} != {expected}")
    say(f"Keboola job {jobs[0]['id']} triggered once with the right variables")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory (logs)")
    options = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="teckochecker-prod-"))
    started = time.monotonic()
    deployment = None
    try:
        venv = make_venv(work)
        say(f"clean venv ready in {time.monotonic() - started:.0f}s; pip check passed")
        deployment = Deployment(work, venv)
        deployment.spawn(
            "fakeservers",
            [str(venv / "bin" / "python"), "manage.py", "fakeservers", "--port", "0"],
            DEBUG="true",
        )
        fake_url = wait_for(
            "the fake servers",
            lambda: (
                (m := re.search(r"listening on (http://\S+)", deployment.logs["fakeservers"].read_text()))
                and m.group(1)
            ),
            timeout=60,
            procs=deployment.procs,
        )
        deployment.up(fake_url)
        scenario(deployment, fake_url)
        codes = deployment.down()
        unclean = {name: code for name, code in codes.items() if code != 0}
        if unclean:
            fail(f"not stopped cleanly (exit codes): {unclean}")
        for name, log in deployment.logs.items():
            bad = [
                line for line in log.read_text(errors="replace").splitlines() if BAD_LOG_LINES.search(line)
            ]
            if bad:
                fail(f"{name}'s log shows: {bad[:5]}")
        say(f"passed in {time.monotonic() - started:.0f}s: {', '.join(codes)} stopped with exit code 0")
    except BaseException:
        if deployment is not None:
            for name, log in deployment.logs.items():
                print(f"----- {name} (last 40 lines) -----", file=sys.stderr)
                print("\n".join(log.read_text(errors="replace").splitlines()[-40:]), file=sys.stderr)
        raise
    finally:
        if deployment is not None:
            deployment.cleanup()
        if not options.keep:
            shutil.rmtree(work, ignore_errors=True)
        else:
            say(f"kept {work}")


if __name__ == "__main__":
    main()
