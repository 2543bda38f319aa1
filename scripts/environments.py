"""Python interpreters on this machine and the per-script virtual environments built with uv.

Plain functions, no models: the scripts app records the states these functions report.

- `pythons_available()` finds interpreters (pyenv versions, /usr/bin, /usr/local/bin, the
  service's own), 3.8 and newer, one per version, by asking each one its version.
- `requirements_parse()` validates pip requirement lines before anything is installed.
- `environment_build()` makes a fresh environment in a temporary sibling directory and swaps it
  into place in one rename, so a run never sees a half-built environment; a failed build leaves
  the previous environment as it was and returns the installer's message.
- uv gets a cleared environment: PATH, HOME, its cache under SCRIPTS_DIR, and the package
  index settings of this machine's pip configuration (`pip config list`: index-url,
  extra-index-url, find-links, cert, constraint), so an environment installs from wherever pip
  installs from here. uv never downloads interpreters (UV_PYTHON_DOWNLOADS=never).
- uv runs confined like a script (`sandbox.run_command`), with the network: installing a
  source package runs that package's build code, which must not reach the service's files. It
  sees the system, the interpreter, uv itself, the local index paths of pip's configuration,
  the cache and the directory being built; as root it runs as `sandbox.BUILD_UID`, which owns
  the cache. All scripts share that cache (one user's build could plant files in it that
  another's build then installs; fine for the trusted staff this service is for).
- `environment_check()` runs nothing from the environment: the environment's interpreter must
  be a link to one of the machine's, and that trusted interpreter reads the packages' metadata.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import glob
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from scripts import sandbox
from teckochecker.errors import ValidationFailed

MIN_PYTHON = (3, 8)
PYTHONS_CACHE_SECONDS = 60.0
MAX_REQUIREMENT_LINES = 200
MAX_REQUIREMENT_LINE_CHARS = 500
MAX_REQUIREMENTS_CHARS = 100_000
ERROR_MAX_CHARS = 4000
BUILD_TIMEOUT_SECONDS = 900.0
CHECK_TIMEOUT_SECONDS = 60.0


class EnvironmentError_(ValidationFailed):  # noqa: N801 - the builtin EnvironmentError is OSError
    """A Python version or a requirements text that cannot be used; `detail` says why."""


@dataclass(frozen=True)
class PythonInfo:
    version: str  # "3.12.1"
    path: str  # the interpreter's executable, as found (not resolved)
    default: bool = False


@dataclass(frozen=True)
class BuildResult:
    ok: bool
    error: str = ""


@dataclass(frozen=True)
class CheckResult:
    ok: bool
    problems: list[str] = field(default_factory=list)
    python_version: str = ""


# --- Interpreters ---------------------------------------------------------------------------

_pythons_lock = threading.Lock()
_pythons_cache: tuple[float, list[PythonInfo]] | None = None

_VERSION_CODE = "import sys; print('%d.%d.%d' % sys.version_info[:3])"


def _python_candidates() -> list[str]:
    """Executables that may be interpreters, most preferred first (pyenv builds, then system)."""
    pyenv_root = os.environ.get("PYENV_ROOT") or os.path.expanduser("~/.pyenv")
    patterns = [
        os.path.join(pyenv_root, "versions", "*", "bin", "python3"),
        "/usr/local/bin/python3.*",
        "/usr/bin/python3.*",
        "/usr/local/bin/python3",
        "/usr/bin/python3",
    ]
    found: list[str] = []
    for pattern in patterns:
        found.extend(sorted(glob.glob(pattern)))
    found.append(getattr(sys, "_base_executable", "") or sys.executable)
    return [p for p in found if re.search(r"python3(\.\d+)?$", p)]


def _ask_version(path: str) -> str | None:
    try:
        proc = subprocess.run(
            [path, "-I", "-S", "-c", _VERSION_CODE],
            capture_output=True,
            text=True,
            timeout=10,
            env={"PATH": "/usr/bin:/bin"},
        )
    except (OSError, subprocess.SubprocessError):
        return None
    version = proc.stdout.strip()
    return version if proc.returncode == 0 and re.fullmatch(r"\d+\.\d+\.\d+", version) else None


def _discover_pythons() -> list[PythonInfo]:
    by_version: dict[str, str] = {}
    seen_real: set[str] = set()
    for path in _python_candidates():
        real = os.path.realpath(path)
        if real in seen_real or not os.access(real, os.X_OK):
            continue
        seen_real.add(real)
        version = _ask_version(path)
        if version is None or tuple(int(p) for p in version.split(".")[:2]) < MIN_PYTHON:
            continue
        by_version.setdefault(version, path)
    if not by_version:
        return []
    own = "{}.{}.{}".format(*sys.version_info[:3])
    ordered = sorted(by_version, key=Version, reverse=True)
    default = own if own in by_version else ordered[0]
    return [PythonInfo(version=v, path=by_version[v], default=v == default) for v in ordered]


def pythons_available(*, refresh: bool = False) -> list[PythonInfo]:
    """Interpreters 3.8+ on this machine, one per version, newest first; one is the default
    (the service's own version when present). Cached for a minute."""
    global _pythons_cache
    with _pythons_lock:
        now = time.monotonic()
        if refresh or _pythons_cache is None or now - _pythons_cache[0] > PYTHONS_CACHE_SECONDS:
            _pythons_cache = (now, _discover_pythons())
        return list(_pythons_cache[1])


def python_resolve(version: str) -> PythonInfo:
    """The interpreter for "3.12.1" (exact) or "3.12" (newest 3.12.x); "" means the default.
    Raises EnvironmentError_ naming the versions that exist."""
    pythons = pythons_available()
    wanted = (version or "").strip()
    if not wanted:
        for info in pythons:
            if info.default:
                return info
    elif re.fullmatch(r"\d+\.\d+(\.\d+)?", wanted):
        for info in pythons:  # newest first, so "3.12" picks the newest 3.12.x
            if info.version == wanted or info.version.startswith(wanted + "."):
                return info
    existing = ", ".join(info.version for info in pythons) or "none"
    raise EnvironmentError_(
        f"Python {wanted or '(default)'} is not available on this machine; available: {existing}."
    )


# --- Requirements ---------------------------------------------------------------------------


def requirements_parse(text: str) -> list[str]:
    """Validated requirement lines, normalised ("Requests >= 2" -> "requests>=2"), in order.

    Blank lines and comments are fine. Refused, with the line number: pip options (-e, -r,
    --index-url, ...; the index is the machine's), direct URLs and paths (`pkg @ https://...`,
    `./dir`: only packages from the index are installed), duplicates and anything that is not
    a PEP 508 requirement. Raises EnvironmentError_.
    """
    if not isinstance(text, str):
        raise EnvironmentError_("Requirements must be text, one package per line.")
    if len(text) > MAX_REQUIREMENTS_CHARS:
        raise EnvironmentError_(f"Requirements are longer than {MAX_REQUIREMENTS_CHARS:,} characters.")
    lines = text.splitlines()
    result: list[str] = []
    seen: dict[str, int] = {}
    for number, raw in enumerate(lines, start=1):
        line = raw.split(" #", 1)[0].split("\t#", 1)[0].strip()
        if not line or line.startswith("#"):
            continue
        if len(result) >= MAX_REQUIREMENT_LINES:
            raise EnvironmentError_(f"Line {number}: at most {MAX_REQUIREMENT_LINES} requirements.")
        if len(line) > MAX_REQUIREMENT_LINE_CHARS:
            raise EnvironmentError_(f"Line {number}: longer than {MAX_REQUIREMENT_LINE_CHARS} characters.")
        if line.startswith("-"):
            option = line.split()[0].split("=")[0]
            raise EnvironmentError_(
                f"Line {number}: pip options such as '{option}' are not allowed; write one package per line."
            )
        try:
            req = Requirement(line)
        except InvalidRequirement as exc:
            reason = str(exc).splitlines()[0]
            raise EnvironmentError_(
                f"Line {number}: '{line}' is not a valid requirement ({reason})."
            ) from None
        if req.url:
            raise EnvironmentError_(
                f"Line {number}: direct URLs are not allowed ('{req.name} @ ...'); packages come from the package index."
            )
        name = canonicalize_name(req.name)
        if name in seen:
            raise EnvironmentError_(f"Line {number}: '{req.name}' is already listed on line {seen[name]}.")
        seen[name] = number
        result.append(str(req))
    return result


# --- uv -------------------------------------------------------------------------------------


def _uv_bin() -> str:
    from uv import find_uv_bin

    return find_uv_bin()


_pip_config_lock = threading.Lock()
_pip_config_cache: dict[str, str] | None = None
_PIP_SCOPE_RANK = {"global": 0, "user": 1, "site": 2, ":env:": 3}


def _pip_config() -> dict[str, str]:
    """pip's effective settings on this machine (key -> value), read once per process."""
    global _pip_config_cache
    with _pip_config_lock:
        if _pip_config_cache is None:
            try:
                proc = subprocess.run(
                    [sys.executable, "-m", "pip", "config", "list"],
                    capture_output=True,
                    text=True,
                    timeout=30,
                )
                listing = proc.stdout if proc.returncode == 0 else ""
            except (OSError, subprocess.SubprocessError):
                listing = ""
            ranked: dict[str, tuple[int, str]] = {}
            for line in listing.splitlines():
                match = re.fullmatch(r"([^.]+|:env:)\.([\w-]+)=(['\"])(.*)\3", line.strip())
                if not match:
                    continue
                scope, key, _, value = match.groups()
                rank = _PIP_SCOPE_RANK.get(scope, 0)
                if key not in ranked or rank >= ranked[key][0]:
                    ranked[key] = (rank, value)
            _pip_config_cache = {key: value for key, (_, value) in ranked.items()}
        return dict(_pip_config_cache)


def _uv_index_args() -> tuple[list[str], dict[str, str], list[Path]]:
    """uv arguments and variables that make it use pip's index configuration, and the local
    paths that configuration names (mounted read-only into the installer's sandbox)."""
    config = _pip_config()
    args: list[str] = []
    env: dict[str, str] = {}
    paths: list[Path] = []
    urls = config.get("index-url", "").split()[:1] + config.get("extra-index-url", "").split()
    for i, url in enumerate(urls):
        if i == 0 and config.get("index-url"):
            args += ["--index-url", url]
        else:
            args += ["--extra-index-url", url]
        if url.startswith("file://"):
            # A local index's pages link to files beside it (../../files/...): mount its parent.
            paths.append(Path(url[len("file://") :].rstrip("/")).parent)
    for link in config.get("find-links", "").split():
        args += ["--find-links", link]
        paths.append(Path(link[len("file://") :] if link.startswith("file://") else link))
    for host in config.get("trusted-host", "").split():
        args += ["--allow-insecure-host", host]
    for constraint in config.get("constraint", "").split():
        if os.path.isfile(constraint):
            args += ["--constraint", constraint]
            paths.append(Path(constraint))
    if config.get("cert"):
        env["SSL_CERT_FILE"] = config["cert"]
        paths.append(Path(config["cert"]))
    return args, env, [p for p in paths if p.is_absolute() and p.exists()]


def _uv_env(cache_dir: Path) -> dict[str, str]:
    return {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "HOME": str(cache_dir),
        "LANG": "C.UTF-8",
        "UV_CACHE_DIR": str(cache_dir),
        "UV_NO_CONFIG": "1",
        "UV_NO_PROGRESS": "1",
        "UV_PYTHON_DOWNLOADS": "never",
        # Files are copied, not hard-linked from the cache: an environment then owns its files
        # (the cache can be pruned) and its disk use is its own.
        "UV_LINK_MODE": "copy",
    }


def _default_cache_dir() -> Path:
    from django.conf import settings

    return Path(settings.SCRIPTS_DIR) / ".uv-cache"


_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
_URL_CREDENTIALS = re.compile(r"(?i)([a-z][a-z0-9+.-]*://)[^/@\s]+@")


def _clean_error(text: str) -> str:
    """The installer's message without colour codes or credentials in index URLs, trimmed."""
    text = _URL_CREDENTIALS.sub(r"\1***@", _ANSI.sub("", text))
    # uv's progress lines name our temporary build directory; they say nothing about the error.
    text = "\n".join(
        line for line in text.splitlines() if not line.startswith(("Using Python", "Using CPython"))
    )
    text = text.strip()
    if len(text) > ERROR_MAX_CHARS:
        text = "...\n" + text[-ERROR_MAX_CHARS:]
    return text


def _run_uv(
    args: list[str],
    *,
    python: PythonInfo,
    env: dict[str, str],
    cache_dir: Path,
    writable: list[Path],
    read_only: list[Path],
    timeout: float,
) -> str | None:
    """Run uv confined like a script (package builds run their own code), with the network;
    None when it succeeded, else its trimmed message."""
    uv = os.path.realpath(_uv_bin())
    result = sandbox.run_command(
        [uv, *args],
        python_path=python.path,
        cwd=Path(sandbox.SANDBOX_TMP),
        env=env,
        read_only=[Path(uv), *read_only],
        writable=[cache_dir, *writable],
        network=True,
        timeout_seconds=timeout,
    )
    if result.state == "succeeded":
        return None
    if result.state == "timed_out":
        return f"The installer did not finish within {int(timeout)} seconds."
    return _clean_error(result.output) or result.message


_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
_RENAME_EXCHANGE = 2
_AT_FDCWD = -100


def _swap_into_place(built: Path, target: Path) -> Path | None:
    """Put `built` at `target` in one step; returns where the previous target now is (to be
    removed), or None when there was none."""
    if not target.exists():
        os.rename(built, target)
        return None
    renameat2 = getattr(_libc, "renameat2", None)
    if renameat2 is not None:
        if renameat2(_AT_FDCWD, os.fsencode(built), _AT_FDCWD, os.fsencode(target), _RENAME_EXCHANGE) == 0:
            return built  # the names were exchanged: `built` now holds the old environment
    # Without RENAME_EXCHANGE (old C library or filesystem) there is a moment without `target`.
    old = target.with_name(f".{target.name}.old-{uuid.uuid4().hex[:8]}")
    os.rename(target, old)
    os.rename(built, target)
    return old


def environment_build(
    *,
    env_dir: Path,
    python: PythonInfo,
    requirements: list[str],
    on_state: Callable[[str], None] | None = None,
    cache_dir: Path | None = None,
) -> BuildResult:
    """Build a fresh environment for `python` with `requirements` (already validated by
    requirements_parse) and swap it into `env_dir`. Calls on_state("creating") then
    on_state("installing"). On failure the previous env_dir stays as it was and `error` holds
    the installer's message. Never raises for an installer failure."""
    env_dir = Path(env_dir)
    cache_dir = Path(cache_dir) if cache_dir is not None else _default_cache_dir()
    env_dir.parent.mkdir(parents=True, exist_ok=True)
    cache_dir.mkdir(parents=True, exist_ok=True)
    building = env_dir.with_name(f".{env_dir.name}.build-{uuid.uuid4().hex[:8]}")
    env = _uv_env(cache_dir)
    index_args, index_env, index_paths = _uv_index_args()
    env.update(index_env)
    confined = {"python": python, "env": env, "cache_dir": cache_dir, "writable": [building]}
    try:
        if on_state:
            on_state("creating")
        error = _run_uv(
            ["venv", "--relocatable", "--no-project", "--python", python.path, str(building)],
            read_only=[],
            timeout=120,
            **confined,
        )
        if error is None:
            if on_state:
                on_state("installing")
            if requirements:
                error = _run_uv(
                    [
                        "pip",
                        "install",
                        "--python",
                        str(building / "bin" / "python"),
                        *index_args,
                        "--",
                        *requirements,
                    ],
                    read_only=index_paths,
                    timeout=BUILD_TIMEOUT_SECONDS,
                    **confined,
                )
        if error is not None:
            return BuildResult(ok=False, error=error)
        os.chmod(building, 0o755)  # noqa: S103 - the sandboxed user reads it as "other"
        old = _swap_into_place(building, env_dir)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
        return BuildResult(ok=True)
    except OSError as exc:
        return BuildResult(
            ok=False, error=f"The environment could not be put in place: {exc.strerror or exc}."
        )
    finally:
        if building.exists():
            shutil.rmtree(building, ignore_errors=True)


# --- Checks, disk use, removal --------------------------------------------------------------

# Runs inside the environment's interpreter (3.8+) without `site`, so nothing installed in the
# environment runs; prints the version, the marker values and every installed distribution.
_CHECK_CODE = r"""
import json, os, platform, sys
from importlib import metadata
dists = {}
for dist in metadata.distributions(path=sys.argv[1:]):
    name = dist.metadata["Name"]
    if name:
        dists[name] = dist.version
impl = sys.implementation
iv = "%d.%d.%d" % impl.version[:3]
print(json.dumps({
    "version": "%d.%d.%d" % sys.version_info[:3],
    "markers": {
        "implementation_name": impl.name, "implementation_version": iv, "os_name": os.name,
        "platform_machine": platform.machine(), "platform_release": platform.release(),
        "platform_system": platform.system(), "platform_version": platform.version(),
        "python_full_version": platform.python_version(),
        "platform_python_implementation": platform.python_implementation(),
        "python_version": ".".join(platform.python_version_tuple()[:2]), "sys_platform": sys.platform,
    },
    "dists": dists,
}))
"""


def _base_interpreter(env_dir: Path) -> PythonInfo | None:
    """The machine's interpreter an environment was made from (its pyvenv.cfg `home`), or None
    when that is not one of pythons_available(): the file was written next to user code."""
    try:
        lines = (env_dir / "pyvenv.cfg").read_text(errors="replace").splitlines()
    except OSError:
        return None
    homes = [line.split("=", 1)[1].strip() for line in lines if line.split("=", 1)[0].strip() == "home"]
    if not homes:
        return None
    prefix = os.path.realpath(Path(homes[0]).parent)
    for info in pythons_available():
        if str(Path(os.path.realpath(info.path)).parent.parent) == prefix:
            return info
    return None


def environment_check(*, env_dir: Path, requirements: list[str]) -> CheckResult:
    """Whether the environment's interpreter starts and each requirement (whose markers apply)
    is installed in a version that satisfies it. Never raises for a broken environment.

    Nothing from the environment runs (it holds what package builds wrote, so this is safe to
    call from the web process, sandbox or not): its `bin/python` must be a link to one of the
    machine's interpreters, that trusted interpreter is started (`-I -S`: no site, nothing of
    the environment imported) and reads the installed packages' metadata files."""
    env_dir = Path(env_dir)
    python = env_dir / "bin" / "python"
    if not os.path.lexists(python):
        return CheckResult(ok=False, problems=["The environment does not exist (build it first)."])
    base = _base_interpreter(env_dir)
    if base is None or os.path.realpath(python) != os.path.realpath(base.path):
        return CheckResult(
            ok=False, problems=["The environment's interpreter is not one of this machine's; rebuild it."]
        )
    inside = os.path.realpath(env_dir) + os.sep
    site_dirs = [
        d
        for d in sorted(glob.glob(str(env_dir / "lib" / "python*" / "site-packages")))
        if os.path.realpath(d).startswith(inside)  # a link out of the environment is not read
    ]
    try:
        proc = subprocess.run(
            [base.path, "-I", "-S", "-c", _CHECK_CODE, *site_dirs],
            capture_output=True,
            text=True,
            errors="replace",
            timeout=CHECK_TIMEOUT_SECONDS,
            env={"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"},
            stdin=subprocess.DEVNULL,
            cwd="/",
        )
    except subprocess.TimeoutExpired:
        return CheckResult(ok=False, problems=["The interpreter did not answer within a minute."])
    except OSError as exc:
        return CheckResult(ok=False, problems=[f"The interpreter does not start: {exc.strerror or exc}."])
    try:
        facts = json.loads(proc.stdout) if proc.returncode == 0 else None
    except ValueError:
        facts = None
    if not isinstance(facts, dict) or not isinstance(facts.get("dists"), dict):
        last = _clean_error(proc.stderr).splitlines()[-1:] or [f"exit code {proc.returncode}"]
        return CheckResult(ok=False, problems=[f"The interpreter does not start: {last[0]}"])
    installed = {canonicalize_name(str(name)): str(version) for name, version in facts["dists"].items()}
    problems: list[str] = []
    for line in requirements:
        req = Requirement(line)
        if req.marker is not None and not req.marker.evaluate(facts.get("markers") or {}):
            continue
        version = installed.get(canonicalize_name(req.name))
        if version is None:
            problems.append(f"{req.name} is not installed.")
            continue
        try:
            satisfied = req.specifier.contains(Version(version), prereleases=True)
        except InvalidVersion:
            satisfied = not req.specifier
        if not satisfied:
            problems.append(f"{req.name} {version} is installed, but {line} is required.")
    return CheckResult(ok=not problems, problems=problems, python_version=str(facts.get("version", "")))


def environment_disk_bytes(env_dir: Path) -> int:
    """Bytes the environment's files take (each hard-linked file once); 0 when it is missing."""
    total = 0
    seen: set[tuple[int, int]] = set()
    for root, dirs, files in os.walk(env_dir):
        for name in files + dirs:
            try:
                st = os.lstat(os.path.join(root, name))
            except OSError:
                continue
            if (st.st_dev, st.st_ino) in seen:
                continue
            seen.add((st.st_dev, st.st_ino))
            total += st.st_size
    return total


def environment_remove(env_dir: Path) -> None:
    """Delete the environment and any build of it left behind by a crash; missing is fine."""
    env_dir = Path(env_dir)
    shutil.rmtree(env_dir, ignore_errors=True)
    for leftover in env_dir.parent.glob(f".{env_dir.name}.build-*"):
        shutil.rmtree(leftover, ignore_errors=True)
    for leftover in env_dir.parent.glob(f".{env_dir.name}.old-*"):
        shutil.rmtree(leftover, ignore_errors=True)
