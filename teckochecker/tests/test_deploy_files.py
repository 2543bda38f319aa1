"""No Docker engine runs here, so the deployment files are checked by reading them: every command
must name something that exists in this project, or `docker compose up` fails on a server."""

from __future__ import annotations

import importlib
import json
import re
import shlex
from pathlib import Path

import pytest
import yaml
from django.conf import settings
from django.core.management import get_commands
from django.urls import resolve

BASE_DIR = Path(settings.BASE_DIR)
APP_SERVICES = ("web", "worker", "beat", "scripts-worker")


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((BASE_DIR / "docker-compose.yml").read_text())


@pytest.fixture(scope="module")
def dockerfile() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    text = (BASE_DIR / "Dockerfile").read_text()
    text = re.sub(r"\\\n", " ", "\n".join(ln for ln in text.splitlines() if not ln.lstrip().startswith("#")))
    pairs = []
    for line in text.splitlines():
        if line.strip():
            instruction, _, rest = line.strip().partition(" ")
            pairs.append((instruction.upper(), rest.strip()))
    return pairs


def exec_form(arguments: str) -> list[str]:
    return json.loads(arguments) if arguments.startswith("[") else ["sh", "-c", arguments]


def assert_runs_something_real(argv: list[str]) -> None:
    """Fail unless argv starts one of this project's programs with arguments that exist."""
    if argv[:2] == ["sh", "-c"]:
        for step in re.split(r"&&|;", argv[2]):
            assert_runs_something_real(shlex.split(step))
        return
    if argv and argv[0] == "exec":
        argv = argv[1:]
    program = argv[0]
    if program == "python" and argv[1] == "manage.py":
        assert (BASE_DIR / "manage.py").is_file()
        assert argv[2] in get_commands(), f"manage.py has no command {argv[2]!r}"
    elif program == "python" and argv[1] == "-c":
        compile(argv[2], "<healthcheck>", "exec")
    elif program == "gunicorn":
        module_name, _, attribute = argv[1].partition(":")
        assert callable(getattr(importlib.import_module(module_name), attribute)), argv[1]
    elif program == "celery":
        assert argv[1] == "-A"
        project = importlib.import_module(argv[2])
        assert project.celery_app.main == "teckochecker"
        assert argv[3] in {"worker", "beat", "inspect"}
        if "-Q" in argv:
            queue = argv[argv.index("-Q") + 1]
            assert queue in {
                settings.CELERY_TASK_DEFAULT_QUEUE,
                "${CELERY_QUEUE:-teckochecker}",
                "${WEBHOOK_QUEUE:-${CELERY_QUEUE:-teckochecker}-webhooks},${CELERY_QUEUE:-teckochecker}",
                settings.SCRIPTS_QUEUE,
                "${SCRIPTS_QUEUE:-${CELERY_QUEUE:-teckochecker}-scripts}",
            }
    else:
        pytest.fail(f"unexpected program {program!r} in {argv}")


def health_urls(text: str) -> list[str]:
    return re.findall(r"http://127\.0\.0\.1:8000(/[\w/]+)", text)


def test_compose_has_the_six_services(compose):
    assert set(compose["services"]) == {"web", "worker", "beat", "scripts-worker", "redis", "postgres"}


def test_app_services_share_one_image_build(compose):
    builds = {
        name: (compose["services"][name]["build"], compose["services"][name]["image"])
        for name in APP_SERVICES
    }
    assert len(set(builds.values())) == 1, builds
    assert builds["web"][0] == "."


@pytest.mark.parametrize("name", APP_SERVICES)
def test_app_service_command_names_existing_things(compose, name):
    service = compose["services"][name]
    assert "entrypoint" not in service or service["entrypoint"] is None
    command = service["command"]
    assert_runs_something_real(command if isinstance(command, list) else shlex.split(command))


def test_web_migrates_and_syncs_schedules_before_serving(compose):
    script = compose["services"]["web"]["command"][2]
    assert script.index("migrate") < script.index("sync_schedules") < script.index("gunicorn")


def test_workers_and_beat_wait_for_the_migrated_web(compose):
    for name in ("worker", "beat", "scripts-worker"):
        assert compose["services"][name]["depends_on"]["web"]["condition"] == "service_healthy"


def test_exactly_one_beat(compose):
    assert compose["services"]["beat"]["deploy"]["replicas"] == 1


@pytest.mark.parametrize("name", ["web", "worker", "beat", "scripts-worker", "redis", "postgres"])
def test_every_service_restarts_and_has_a_health_check(compose, name):
    service = compose["services"][name]
    assert service["restart"] == "unless-stopped"
    assert service["healthcheck"]["test"]


def test_app_services_read_dot_env(compose):
    for name in APP_SERVICES:
        assert compose["services"][name]["env_file"] == ".env"


def test_web_health_check_calls_the_health_endpoint(compose):
    test = compose["services"]["web"]["healthcheck"]["test"]
    assert test[:3] == ["CMD", "python", "-c"]
    compile(test[3], "<healthcheck>", "exec")
    assert health_urls(test[3]) == ["/api/health"]
    assert resolve("/api/health").url_name


def test_named_volumes_are_declared_and_used(compose):
    declared = set(compose["volumes"])
    used = {
        volume.split(":", 1)[0]
        for service in compose["services"].values()
        for volume in service.get("volumes", [])
        if not volume.startswith((".", "/"))
    }
    assert used == declared
    assert {"postgres-data", "redis-data"} <= declared


def test_scripts_worker_serves_the_scripts_queue_with_its_own_slots(compose):
    command = compose["services"]["scripts-worker"]["command"]
    assert command[command.index("-Q") + 1] == "${SCRIPTS_QUEUE:-${CELERY_QUEUE:-teckochecker}-scripts}"
    assert command[command.index("--concurrency") + 1] == "${SCRIPTS_CONCURRENCY:-2}"
    assert command[command.index("--pool") + 1] == "threads"
    assert command[command.index("-n") + 1] == "scripts@%h"
    health = compose["services"]["scripts-worker"]["healthcheck"]["test"][1]
    assert "inspect ping" in health and "-d scripts@$$HOSTNAME" in health


def test_compose_defaults_match_the_settings_defaults(compose):
    """The ${VAR:-default} in the scripts worker's command is what settings.py would choose."""
    command = compose["services"]["scripts-worker"]["command"]
    default_slots = command[command.index("--concurrency") + 1].removeprefix("${SCRIPTS_CONCURRENCY:-")
    assert int(default_slots.rstrip("}")) == 2 == _settings_default("SCRIPTS_CONCURRENCY")


def _settings_default(name: str) -> int:
    match = re.search(rf'env_int\("{name}", (\d+)', (BASE_DIR / "teckochecker" / "settings.py").read_text())
    assert match, name
    return int(match.group(1))


def test_dockerfile_installs_bubblewrap_without_recommends(dockerfile):
    runs = [args for instruction, args in dockerfile if instruction == "RUN"]
    install = next(r for r in runs if "bubblewrap" in r)
    assert "apt-get install -y --no-install-recommends bubblewrap" in install
    assert "slirp4netns" in install  # a network of their own for runs with the network on
    assert "rm -rf /var/lib/apt/lists/*" in install


def test_dockerfile_runs_as_a_non_root_user(dockerfile):
    instructions = [instruction for instruction, _ in dockerfile]
    users = [args for instruction, args in dockerfile if instruction == "USER"]
    assert users and users[-1] not in {"root", "0"}
    last_user = len(instructions) - 1 - instructions[::-1].index("USER")
    assert instructions.index("CMD") > last_user


def test_dockerfile_cmd_and_health_check_name_existing_things(dockerfile):
    instructions = dict(dockerfile)
    assert "ENTRYPOINT" not in instructions
    assert instructions["FROM"].startswith("python:3.11-slim")
    assert_runs_something_real(exec_form(instructions["CMD"]))
    health = instructions["HEALTHCHECK"]
    cmd = exec_form(health.split(" CMD ", 1)[1].strip())
    assert_runs_something_real(cmd)
    assert health_urls(cmd[2]) == ["/api/health"]


def test_dockerfile_copies_every_local_app(dockerfile):
    copied = {word for instruction, args in dockerfile if instruction == "COPY" for word in args.split()}
    local_apps = {
        app.split(".")[0] for app in settings.INSTALLED_APPS if (BASE_DIR / app.split(".")[0]).is_dir()
    }
    for app in local_apps:
        assert f"{app}/" in copied, f"Dockerfile does not COPY {app}/"
    assert "manage.py" in copied


def test_only_the_scripts_worker_may_make_sandboxes(compose):
    services = compose["services"]
    loosened = {name for name, spec in services.items() if spec.get("security_opt")}
    assert loosened == {"scripts-worker"}
    assert set(services["scripts-worker"]["security_opt"]) == {
        "seccomp=unconfined",
        "apparmor=unconfined",
        "systempaths=unconfined",
    }
    # slirp4netns (a network of a run's own) needs the tun device; nobody else gets devices.
    assert {name for name, spec in services.items() if spec.get("devices")} == {"scripts-worker"}
    assert services["scripts-worker"]["devices"] == ["/dev/net/tun:/dev/net/tun"]
