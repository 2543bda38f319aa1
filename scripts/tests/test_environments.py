"""Interpreters, requirement validation and real uv-built environments (installs come from the
package index pip is configured with on this machine)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from packaging.version import Version

from scripts import environments, sandbox
from scripts.environments import (
    EnvironmentError_,
    environment_build,
    environment_check,
    environment_disk_bytes,
    environment_remove,
    python_resolve,
    pythons_available,
    requirements_parse,
)
from teckochecker.errors import ValidationFailed


@pytest.fixture
def cache_dir(tmp_path):
    return tmp_path / "uv-cache"


@pytest.fixture(scope="module")
def python():
    return python_resolve("")


# --- Interpreters ---------------------------------------------------------------------------


def test_pythons_available_lists_each_version_once_newest_first_with_one_default():
    pythons = pythons_available(refresh=True)
    versions = [p.version for p in pythons]
    assert len(versions) >= 2, "this machine has several interpreters"
    assert len(set(versions)) == len(versions)
    assert versions == sorted(versions, key=Version, reverse=True)
    assert all(Version(v) >= Version("3.8") for v in versions)
    assert sum(p.default for p in pythons) == 1


def test_each_listed_interpreter_is_the_version_it_claims():
    for info in pythons_available():
        out = subprocess.run(
            [info.path, "-c", "import platform; print(platform.python_version())"], capture_output=True
        )
        assert out.stdout.decode().strip() == info.version


def test_python_resolve_takes_an_exact_version_a_minor_version_or_nothing_for_the_default():
    pythons = pythons_available()
    newest = pythons[0]
    assert python_resolve(newest.version) == newest
    minor = ".".join(newest.version.split(".")[:2])
    assert python_resolve(minor).version.startswith(minor + ".")
    assert python_resolve("").default


@pytest.mark.parametrize("version", ["2.7", "3.99", "3.12.999", "latest", "3"])
def test_python_resolve_names_the_versions_that_exist(version):
    with pytest.raises(EnvironmentError_) as err:
        python_resolve(version)
    assert isinstance(err.value, ValidationFailed)
    assert "is not available" in err.value.detail
    assert pythons_available()[0].version in err.value.detail


# --- Requirements ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", []),
        ("# only a comment\n\n   \n", []),
        ("requests", ["requests"]),
        ("Requests >= 2.0 , <3", ["Requests<3,>=2.0"]),
        ("six==1.17.0  # pinned\nattrs", ["six==1.17.0", "attrs"]),
        ("pandas[excel]>=2; python_version >= '3.9'", ['pandas[excel]>=2; python_version >= "3.9"']),
        ("\ttabbed-name\r\n", ["tabbed-name"]),
    ],
)
def test_requirements_parse_accepts_and_normalises(text, expected):
    assert requirements_parse(text) == expected


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("-e git+https://example.com/x.git", "Line 1: pip options such as '-e'"),
        ("six\n--index-url https://evil.example/simple", "Line 2: pip options such as '--index-url'"),
        ("-r other.txt", "'-r'"),
        ("--extra-index-url=https://x", "'--extra-index-url'"),
        ("six\n\nrequests @ https://example.com/r.whl", "Line 3: direct URLs are not allowed"),
        ("./local/dir", "Line 1: './local/dir' is not a valid requirement"),
        ("https://example.com/pkg.tar.gz", "is not a valid requirement"),
        ("six\nrequests>=>2\n", "Line 2: 'requests>=>2' is not a valid requirement"),
        ("foo bar", "Line 1: 'foo bar' is not a valid requirement"),
        ("six\nSix>=1", "Line 2: 'Six' is already listed on line 1"),
        ("x" * 501, "longer than 500 characters"),
        ("\n".join(f"pkg{i}" for i in range(201)), "Line 201: at most 200 requirements"),
        ("# " + "x" * 100_000, "Requirements are longer than 100,000 characters."),
    ],
)
def test_requirements_parse_refuses_with_the_line_and_the_problem(text, fragment):
    with pytest.raises(EnvironmentError_) as err:
        requirements_parse(text)
    assert fragment in err.value.detail


def test_requirements_parse_refuses_what_is_not_text():
    with pytest.raises(EnvironmentError_):
        requirements_parse(["six"])


# --- Index configuration --------------------------------------------------------------------


def test_uv_gets_the_index_configuration_of_pip(monkeypatch):
    monkeypatch.setattr(
        environments,
        "_pip_config",
        lambda: {
            "index-url": "https://user:pw@mirror.example/simple",
            "extra-index-url": "file:///opt/a file:///opt/b",
            "find-links": "/opt/wheels",
            "cert": "/etc/ssl/certs/ca-certificates.crt",
            "constraint": "/nonexistent/constraints.txt",
        },
    )
    args, env, paths = environments._uv_index_args()
    assert args == [
        "--index-url",
        "https://user:pw@mirror.example/simple",
        "--extra-index-url",
        "file:///opt/a",
        "--extra-index-url",
        "file:///opt/b",
        "--find-links",
        "/opt/wheels",
    ]
    assert env == {"SSL_CERT_FILE": "/etc/ssl/certs/ca-certificates.crt"}
    # local paths the installer's sandbox must see; missing ones are left out
    assert paths == [p for p in (Path("/opt"), Path("/opt"), Path("/opt/wheels")) if p.exists()] + [
        Path("/etc/ssl/certs/ca-certificates.crt")
    ]


def test_pip_config_is_read_from_pip_itself():
    environments._pip_config_cache = None
    listing = subprocess.run(
        [os.sys.executable, "-m", "pip", "config", "list"], capture_output=True, text=True
    ).stdout
    config = environments._pip_config()
    for key in ("index-url", "extra-index-url", "find-links", "cert"):
        if f".{key}=" in listing:
            assert config.get(key), key
        else:
            assert key not in config


def test_installer_messages_lose_credentials_and_colours():
    text = "\x1b[31merror\x1b[0m: cannot reach https://bob:hunter2@mirror.example/simple/six/"
    cleaned = environments._clean_error(text)
    assert "hunter2" not in cleaned and "\x1b" not in cleaned
    assert "https://***@mirror.example/simple/six/" in cleaned
    assert len(environments._clean_error("x" * 10000)) <= environments.ERROR_MAX_CHARS + 4


# --- Building, checking, removing -----------------------------------------------------------


def test_build_installs_a_real_package_and_reports_its_states(tmp_path, cache_dir, python):
    env_dir = tmp_path / "env"
    states = []
    result = environment_build(
        env_dir=env_dir, python=python, requirements=["six"], on_state=states.append, cache_dir=cache_dir
    )
    assert result.ok, result.error
    assert states == ["creating", "installing"]
    out = subprocess.run(
        [str(env_dir / "bin" / "python"), "-c", "import six, sys; print(six.__name__, sys.prefix)"],
        capture_output=True,
        text=True,
    )
    assert out.stdout.split() == ["six", str(env_dir)]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".env.")], "no build directory left behind"
    check = environment_check(env_dir=env_dir, requirements=["six>=1"])
    assert check.ok and check.problems == [] and check.python_version == python.version
    assert environment_disk_bytes(env_dir) > 10_000


def test_a_failed_install_keeps_the_previous_environment_and_the_installer_message(
    tmp_path, cache_dir, python
):
    env_dir = tmp_path / "env"
    assert environment_build(env_dir=env_dir, python=python, requirements=["six"], cache_dir=cache_dir).ok
    before = sorted(p.name for p in env_dir.rglob("*"))
    states = []
    result = environment_build(
        env_dir=env_dir,
        python=python,
        requirements=["six", "teckochecker-no-such-package-zzqx"],
        on_state=states.append,
        cache_dir=cache_dir,
    )
    assert not result.ok
    assert states == ["creating", "installing"]
    assert "teckochecker-no-such-package-zzqx" in result.error
    assert sorted(p.name for p in env_dir.rglob("*")) == before
    assert environment_check(env_dir=env_dir, requirements=["six"]).ok
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".env.")]


def test_a_rebuild_replaces_the_environment_in_one_step(tmp_path, cache_dir, python):
    env_dir = tmp_path / "env"
    assert environment_build(env_dir=env_dir, python=python, requirements=["six"], cache_dir=cache_dir).ok
    other = next(p for p in pythons_available() if p.version != python.version)
    assert environment_build(env_dir=env_dir, python=other, requirements=[], cache_dir=cache_dir).ok
    check = environment_check(env_dir=env_dir, requirements=["six"])
    assert check.python_version == other.version
    assert check.problems == ["six is not installed."]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["env", "uv-cache"]


def test_a_missing_interpreter_is_a_failed_build_not_an_exception(tmp_path, cache_dir):
    fake = environments.PythonInfo(version="3.99.0", path=str(tmp_path / "no-python"))
    result = environment_build(env_dir=tmp_path / "env", python=fake, requirements=[], cache_dir=cache_dir)
    assert not result.ok and result.error
    assert not (tmp_path / "env").exists()


def test_check_reports_missing_and_unsatisfied_requirements_and_skips_other_platforms(
    tmp_path, cache_dir, python
):
    env_dir = tmp_path / "env"
    assert environment_build(env_dir=env_dir, python=python, requirements=["six"], cache_dir=cache_dir).ok
    check = environment_check(
        env_dir=env_dir,
        requirements=["six<1", "attrs", "colorama; sys_platform == 'win32'", "six>=1.0"],
    )
    assert not check.ok
    assert check.problems[0].startswith("six ") and "six<1 is required" in check.problems[0]
    assert check.problems[1:] == ["attrs is not installed."]


def test_check_of_a_missing_or_broken_environment(tmp_path, cache_dir, python):
    assert environment_check(env_dir=tmp_path / "none", requirements=[]).problems == [
        "The environment does not exist (build it first)."
    ]
    env_dir = tmp_path / "env"
    assert environment_build(env_dir=env_dir, python=python, requirements=[], cache_dir=cache_dir).ok
    (env_dir / "bin" / "python").unlink()
    (env_dir / "bin" / "python").write_text("#!/bin/sh\nexit 3\n")
    (env_dir / "bin" / "python").chmod(0o755)
    check = environment_check(env_dir=env_dir, requirements=[])
    assert check.problems == ["The environment's interpreter is not one of this machine's; rebuild it."]


def test_remove_deletes_the_environment_and_leftover_builds(tmp_path, cache_dir, python):
    env_dir = tmp_path / "env"
    assert environment_build(env_dir=env_dir, python=python, requirements=[], cache_dir=cache_dir).ok
    (tmp_path / ".env.build-dead").mkdir()
    environment_remove(env_dir)
    environment_remove(env_dir)  # twice is fine
    assert sorted(p.name for p in tmp_path.iterdir()) == ["uv-cache"]
    assert environment_disk_bytes(env_dir) == 0


def test_the_default_cache_is_under_scripts_dir(settings, tmp_path, python):
    settings.SCRIPTS_DIR = tmp_path / "scripts"
    assert environment_build(
        env_dir=tmp_path / "scripts" / "a" / "env", python=python, requirements=["six"]
    ).ok
    assert (tmp_path / "scripts" / ".uv-cache").is_dir()


EVIL_SETUP = """
import os
from setuptools import setup

report = []
for path in {secrets!r}:
    try:
        with open(path) as f:
            report.append("READ " + path + " " + f.read())
    except OSError:
        report.append("DENIED " + path)
try:
    with open({outside!r}, "w") as f:
        f.write("pwned")
    report.append("WROTE outside")
except OSError:
    report.append("COULD NOT WRITE outside")
report.append("uid=%d" % os.getuid())
raise SystemExit("evil build says: " + " | ".join(report))
"""


def _sdist(directory: Path, setup_py: str) -> None:
    import io
    import tarfile

    directory.mkdir()
    files = {
        "evil-1.0/setup.py": setup_py,
        "evil-1.0/PKG-INFO": "Metadata-Version: 2.1\nName: evil\nVersion: 1.0\n",
    }
    with tarfile.open(directory / "evil-1.0.tar.gz", "w:gz") as tar:
        for name, text in files.items():
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))


@pytest.mark.slow
def test_a_package_build_runs_confined(tmp_path, cache_dir, python, monkeypatch, settings):
    """Installing a source package runs its setup code: it must not reach the service's files
    or write outside the environment, and it does not run as root."""
    secret = tmp_path / "service" / ".env"
    secret.parent.mkdir()
    secret.write_text("SECRET_KEY=must-not-leak")
    outside = tmp_path / "service" / "pwned"
    links = tmp_path / "links"
    _sdist(links, EVIL_SETUP.format(secrets=[str(secret), "/proc/1/environ"], outside=str(outside)))
    config = environments._pip_config()
    config["find-links"] = (config.get("find-links", "") + f" {links}").strip()
    monkeypatch.setattr(environments, "_pip_config", lambda: config)
    result = environment_build(
        env_dir=tmp_path / "env", python=python, requirements=["evil==1.0"], cache_dir=cache_dir
    )
    assert not result.ok
    assert "evil build says:" in result.error, result.error
    assert f"DENIED {secret}" in result.error and "DENIED /proc/1/environ" in result.error
    assert "must-not-leak" not in result.error
    assert "COULD NOT WRITE outside" in result.error and not outside.exists()
    assert "uid=0 " not in result.error + " "


def test_without_bwrap_a_build_is_refused_with_how_to_install_it(
    tmp_path, cache_dir, python, monkeypatch, settings
):
    settings.SCRIPTS_SANDBOX = True
    monkeypatch.setattr(sandbox, "BWRAP_PATHS", ("/nonexistent/bwrap",))
    monkeypatch.setattr(sandbox.shutil, "which", lambda *args, **kwargs: None)
    try:
        sandbox.sandbox_problem(refresh=True)
        states = []
        result = environment_build(
            env_dir=tmp_path / "env",
            python=python,
            requirements=[],
            on_state=states.append,
            cache_dir=cache_dir,
        )
        assert not result.ok and "apt-get install bubblewrap" in result.error
        assert states == ["creating"] and not (tmp_path / "env").exists()
    finally:
        monkeypatch.undo()
        assert sandbox.sandbox_problem(refresh=True) is None


def test_check_runs_nothing_from_the_environment_and_needs_no_sandbox(
    tmp_path, cache_dir, python, monkeypatch
):
    env_dir = tmp_path / "env"
    assert environment_build(env_dir=env_dir, python=python, requirements=["six"], cache_dir=cache_dir).ok
    marker = tmp_path / "ran"
    site = next((env_dir / "lib").glob("python*/site-packages"))
    (site / "zz-evil.pth").write_text(f"import os; open({str(marker)!r}, 'w').write('x')\n")
    (site / "sitecustomize.py").write_text(f"open({str(marker)!r}, 'w').write('x')\n")
    monkeypatch.setattr(sandbox, "BWRAP_PATHS", ("/nonexistent/bwrap",))  # as in a web container
    monkeypatch.setattr(sandbox.shutil, "which", lambda *args, **kwargs: None)
    check = environment_check(env_dir=env_dir, requirements=["six"])
    assert check.ok, check.problems
    assert not marker.exists()


def test_check_reads_no_packages_through_a_link_out_of_the_environment(tmp_path, cache_dir, python):
    env_dir = tmp_path / "env"
    assert environment_build(env_dir=env_dir, python=python, requirements=["six"], cache_dir=cache_dir).ok
    site = next((env_dir / "lib").glob("python*/site-packages"))
    elsewhere = tmp_path / "elsewhere"
    site.rename(elsewhere)
    site.symlink_to(elsewhere)
    assert environment_check(env_dir=env_dir, requirements=["six"]).problems == ["six is not installed."]
