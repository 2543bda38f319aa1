"""Run one user script as an unprivileged, isolated process, and tell how it ended.

A run executes code typed into a web page on the machine that holds everyone's API keys, so by
default every run goes through bubblewrap (`bwrap`). What the script sees:

- `/usr`, `/etc` and the `/bin`, `/lib*` links of the system, read-only (Python needs the C
  library, certificates, time zones, DNS configuration; none of it is a service secret: the
  secrets live in the service's environment, `.env` and the database);
- its interpreter's installation, read-only, at its real path (a virtual environment links to
  it), and its own environment read-only at `/env`;
- `/etc/passwd` and `/etc/group` with an entry `script` for its uid (libraries ask who they are);
- its script at `/sandbox/script.py` (read-only) and its private working directory at
  `/workdir` (read-write, the current directory), a fresh `/tmp` (tmpfs, capped at the memory
  limit, because tmpfs pages do not count against the address-space limit) and `/dev/shm`
  (for multiprocessing; 64 MB at most), fresh `/proc` of its own PID namespace (only its own
  processes), a minimal `/dev`;
- a cleared environment: PATH, HOME=/tmp, LANG, TMPDIR, PWD, and what the caller puts in
  `RunSpec.env` (the script's declared variables and the run facts). Variable values reach bwrap
  through a file descriptor, never its command line, so the host's `ps` does not show them.

It never sees the project directory, `.env`, DATA_DIR (the database file, other scripts'
folders), `/root`, `/home`, `/opt`, `/var`, `/run` or the service's processes: they are simply not
mounted. Network: its own empty network namespace (loopback only) unless `RunSpec.network`;
then a network namespace of its own all the same, connected to the outside by slirp4netns
(`scripts/usernet.py`), which never reaches the worker's loopback (PostgreSQL, Redis, the web
server). What the worker reaches through other interfaces, the script reaches too (in Docker:
the compose network, so PostgreSQL and Redis still need passwords). Only `run_command` with
`network_shared` (the installer, for the package index) shares the worker's own network.

Who it runs as: never the service's user with its privileges.
- Service is root (this machine, CI): bwrap runs privileged with only CAP_SETUID/CAP_SETGID kept,
  so it can bind paths an unprivileged user cannot reach (/root/.pyenv is 0700 here); a tiny
  bootstrap (`python -I -S`) then drops to the script's own uid (`run_uid()`: one per working
  directory, in a range no account uses), clears supplementary groups, sets the rlimits, enters
  /workdir and starts the script. Capabilities are gone after the drop and no_new_privs is set,
  so nothing regains them. The working directory is handed to that uid (lchown, never following
  a link) before the run.
- Service is an ordinary user (uid 10001 in Docker): bwrap creates a user namespace (needs
  unprivileged user namespaces; in Docker the default seccomp profile forbids them - see
  `sandbox_problem()`), maps the service uid to 65534 inside, drops all capabilities and forbids
  further user namespaces.
- Either way a seccomp filter refuses new user namespaces to the script (`_seccomp_filter`):
  inside one it would hold every capability, and the kernel code that opens up is where many
  privilege escalations were found.

Limits (rlimits, set by the bootstrap inside the sandbox): address space (memory), CPU seconds
(SIGXCPU at the limit, SIGKILL a second later), file size, core dumps off, and number of
processes - counted in the sandbox's own user namespace when there is one, else per uid, which
is the script's own (so a fork bomb never starves another script's runs). A wall-clock timeout
and a cancel kill the process group of bwrap; bwrap is PID 1 of the sandbox's PID namespace,
and when it dies the kernel kills every process in it, so nothing a script leaves behind
survives its run (`--die-with-parent` covers the service dying). When the script's main process
ends, the rest of its processes end too.

Peak memory and CPU seconds: the bootstrap starts the script as its child and reports the
child's `wait4` rusage on a pipe (a child of the service itself would count the service's memory
as its peak): peak is the largest resident set of the script or any process it waited for, CPU
is their user+system time. A run stopped by its timeout or a cancel has neither (None).

Watching the process (output cap, deadline, cancel, reaping) and reading its end are in
`scripts/supervise.py`. How a run ended (`RunResult.state`, `message`): the bootstrap's exact
wait status tells an exit code from a signal. SIGXCPU is the CPU limit; a MemoryError (or a crash near the limit) the
memory limit; a fork/thread failure with EAGAIN the process limit; EFBIG the file-size limit:
all "killed". Another signal is "killed" too (or "cancelled" when should_cancel says so). Exit
code 0 is "succeeded", anything else "failed". `exit_code` is shell-style (128+N for signal N).

`run_command()` confines the service's own helpers that run user-chosen code the same way (the
uv installer: package builds execute their setup code): same-path mounts, network as asked,
and as root the uid BUILD_UID.

SCRIPTS_SANDBOX=off (a trusted single-user machine only): no bwrap, so the script sees the
whole filesystem as its user can; still a cleared environment, the same rlimits and timeout,
and when the service is root the script runs as its own uid (so its interpreter and
environment must be readable by any user: /root/.pyenv is not). When the service is not root,
the script runs as the service's user and can read whatever that user can, the service's
files and /proc/<pid>/environ included: that is why off is for a trusted machine only. The bootstrap's parent-death
signal ends the run's process group with the service; processes that leave the group (setsid)
can outlive the run there.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import shutil
import signal
import struct
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from scripts.supervise import Output, asks_to_cancel, classify, kill_group, watch
from scripts.usernet import UserNetwork, network_problem

SANDBOX_UID = 65534  # nobody: the uid inside a user namespace, and the fallback
SANDBOX_GID = 65534  # nogroup
# A root service gives each working directory (each script) a uid of its own in this range, in
# no /etc/passwd: the process limit counts per uid, so one script's fork bomb cannot use up
# another's processes, and with SCRIPTS_SANDBOX=off scripts cannot read each other's files.
RUN_UID_BASE = 1_900_000_000
RUN_UID_SPAN = 1_000_000
BUILD_UID = RUN_UID_BASE + RUN_UID_SPAN  # builds environments (see run_command)
BWRAP_PATHS = ("/usr/bin/bwrap", "/bin/bwrap", "/usr/local/bin/bwrap")
ENV_MOUNT = "/env"
WORKDIR_MOUNT = "/workdir"
SCRIPT_MOUNT = "/sandbox/script.py"
SANDBOX_TMP = "/tmp"  # noqa: S108 - a fresh tmpfs of the sandbox's own
SHM_MAX_MB = 64
SANDBOX_SHM = "/dev/shm"  # noqa: S108 - a fresh tmpfs of the sandbox's own
SYSTEM_DIRS = ("/usr", "/etc")
SYSTEM_LINKS = ("/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
MARKER = "teckochecker-run"  # in every run's command line: cancel_process_group checks it
STATES = ("succeeded", "failed", "timed_out", "killed", "cancelled")
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")

# Runs first inside the sandbox with `python -I -S` (no site, no user paths, so nothing the
# script's environment installed runs before the limits are in place). Python 3.8 syntax.
# It becomes `nobody` when started as root, sets the rlimits, and starts the script as its
# child: a process forked from this small one has a true peak-memory figure (a child of the
# service would count the service's own memory), and its wait status tells a signal from an
# exit code. It reports "status maxrss_kb cpu_seconds" on the report fd and exits like the script.
_BOOTSTRAP = """\
import os, resource, signal, sys
a = sys.argv
nproc, mem, cpu, fsize, uid, report, umask, gate = (int(v) for v in a[1:9])
if gate >= 0:
    # The run's own network (usernet.py): say we are here, and wait until it is connected.
    os.write(gate, b"r")
    if os.read(gate, 1) != b"g":
        sys.exit("the run's network was not set up")
    os.close(gate)
if os.getuid() == 0:
    os.setgroups([])
    os.setresgid(uid, uid, uid)
    os.setresuid(uid, uid, uid)
if os.getuid() == 0 or os.geteuid() == 0:
    sys.exit("refusing to run a script as root")
for fd in [int(n) for n in os.listdir("/proc/self/fd")]:
    if fd > 2 and fd != report:
        try:
            os.close(fd)
        except OSError:
            pass
R = resource
R.setrlimit(R.RLIMIT_CORE, (0, 0))
R.setrlimit(R.RLIMIT_NPROC, (nproc, nproc))
R.setrlimit(R.RLIMIT_AS, (mem, mem))
R.setrlimit(R.RLIMIT_CPU, (cpu, cpu + 1))
R.setrlimit(R.RLIMIT_FSIZE, (fsize, fsize))
os.umask(umask)
os.chdir(a[9])
os.environ["PWD"] = a[9]
for s in (signal.SIGINT, signal.SIGHUP):
    signal.signal(s, signal.SIG_IGN)
# When whatever started us dies (the service), SIGTERM arrives (PR_SET_PDEATHSIG, set after the
# uid change, which clears it) and takes the whole process group along: without bwrap's PID
# namespace that is the only way the script's own children end with it.
signal.signal(signal.SIGTERM, lambda *_: os.killpg(0, signal.SIGKILL))
import ctypes
prctl = ctypes.CDLL(None).prctl
prctl(1, signal.SIGTERM)
pid = os.fork()
if pid == 0:
    prctl(1, signal.SIGKILL)
    for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGPIPE, signal.SIGXFSZ):
        signal.signal(s, signal.SIG_DFL)
    os.close(report)
    os.execv(a[10], a[10:])
while True:
    try:
        _, status, use = os.wait4(pid, 0)
        break
    except InterruptedError:
        pass
os.write(report, ("%d %d %.3f\\n" % (status, use.ru_maxrss, use.ru_utime + use.ru_stime)).encode())
if os.WIFSIGNALED(status):
    os._exit(128 + os.WTERMSIG(status))
os._exit(os.WEXITSTATUS(status))
"""


@dataclass
class RunSpec:
    code: str
    env_dir: Path | None  # the script's virtual environment; None runs the bare interpreter
    python_path: str  # the base interpreter (PythonInfo.path); its installation is mounted
    workdir: Path  # private, persistent working directory of the script
    env: dict[str, str]  # declared variables (secrets resolved) + run facts
    network: bool
    timeout_seconds: float
    memory_mb: int
    cpu_seconds: int
    output_max_bytes: int
    max_processes: int = 128  # threads count as processes for the kernel
    file_size_mb: int = 1024
    # With `network`: the worker's own network instead of one of the run's own (usernet.py).
    network_shared: bool = False


@dataclass
class RunResult:
    state: str  # one of STATES
    exit_code: int | None  # shell style: 128+N when ended by signal N; None when never started
    message: str
    output: str
    output_truncated: bool
    peak_memory_kb: int | None
    cpu_seconds: float | None
    started_at: datetime
    finished_at: datetime
    facts: dict[str, object] = field(default_factory=dict)  # timings for the benchmark


# --- Is the sandbox usable? -----------------------------------------------------------------

_problem_lock = threading.Lock()
_problem_cache: tuple[float, str | None] | None = None
PROBLEM_RECHECK_SECONDS = 60.0

INSTALL_HINT = (
    "Install it (Debian/Ubuntu: apt-get install bubblewrap), or set SCRIPTS_SANDBOX=off on a "
    "trusted single-user machine only."
)


def _sandbox_enabled() -> bool:
    from django.conf import settings

    return bool(getattr(settings, "SCRIPTS_SANDBOX", True))


def bwrap_path() -> str | None:
    for path in BWRAP_PATHS:
        if os.access(path, os.X_OK):
            return path
    return shutil.which("bwrap")


def _probe() -> str | None:
    bwrap = bwrap_path()
    if bwrap is None:
        return f"Script runs are refused: bubblewrap (bwrap) is not installed. {INSTALL_HINT}"
    args = [*_namespace_args(share_network=False), *_system_args(), "--", "/bin/true"]
    try:
        proc = subprocess.run(
            [bwrap, *args], capture_output=True, text=True, errors="replace", timeout=20, env=_bwrap_env()
        )
    except (OSError, subprocess.SubprocessError) as exc:
        return f"Script runs are refused: bubblewrap does not start ({exc}). {INSTALL_HINT}"
    if proc.returncode != 0:
        reason = (proc.stderr.strip().splitlines() or [f"exit code {proc.returncode}"])[-1]
        return (
            f"Script runs are refused: bubblewrap cannot make a sandbox here ({reason}). In a container, "
            "allow user namespaces and a fresh /proc (Docker: security_opt seccomp=unconfined, "
            "apparmor=unconfined, systempaths=unconfined), or set SCRIPTS_SANDBOX=off on a trusted "
            "single-user machine only."
        )
    return None


def sandbox_problem(*, refresh: bool = False) -> str | None:
    """None when runs can go through bubblewrap (or SCRIPTS_SANDBOX is off); else a sentence
    saying what is wrong and how to fix it. Probes bwrap for real, cached for a minute."""
    if not _sandbox_enabled():
        return None
    return _bwrap_problem(refresh=refresh)


def _bwrap_problem(*, refresh: bool = False) -> str | None:
    global _problem_cache
    with _problem_lock:
        now = time.monotonic()
        if refresh or _problem_cache is None or now - _problem_cache[0] > PROBLEM_RECHECK_SECONDS:
            _problem_cache = (now, _probe())
        return _problem_cache[1]


# --- Building the command -------------------------------------------------------------------


def _is_root() -> bool:
    return os.geteuid() == 0


def _bwrap_env() -> dict[str, str]:
    # bwrap (the sandbox's PID 1) keeps the environment it was started with; never the service's.
    return {"PATH": "/usr/bin:/bin"}


def _namespace_args(*, share_network: bool) -> list[str]:
    args = ["--unshare-ipc", "--unshare-pid", "--unshare-uts", "--unshare-cgroup-try"]
    if not share_network:
        args.append("--unshare-net")
    args += ["--hostname", "sandbox", "--die-with-parent", "--new-session", "--cap-drop", "ALL"]
    if _is_root():
        # Privileged bwrap (no user namespace): the bootstrap needs these two to become nobody.
        args += ["--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID"]
    else:
        args += ["--unshare-user", "--uid", str(SANDBOX_UID), "--gid", str(SANDBOX_GID), "--disable-userns"]
    return args


def _system_args() -> list[str]:
    args: list[str] = []
    for path in SYSTEM_DIRS:
        args += ["--ro-bind", path, path]
    for path in SYSTEM_LINKS:
        if os.path.islink(path):
            args += ["--symlink", os.readlink(path), path]
        elif os.path.isdir(path):
            args += ["--ro-bind", path, path]
    args += ["--ro-bind-try", "/run/systemd/resolve", "/run/systemd/resolve"]
    args += ["--proc", "/proc", "--dev", "/dev"]
    return args


def _covered_by_system(path: str) -> bool:
    return any(path == d or path.startswith(d + "/") for d in (*SYSTEM_DIRS, *SYSTEM_LINKS))


def _dirs_for(dest: str) -> list[str]:
    """`--dir` for each missing parent of a mount point, world-traversable (bwrap would make
    them 0700 when privileged, which nobody cannot enter)."""
    args: list[str] = []
    parts = Path(dest).parent.parts[1:]
    for i in range(len(parts)):
        args += ["--perms", "0755", "--dir", "/" + "/".join(parts[: i + 1])]
    return args


def _interpreter_prefix(python: str) -> str:
    """The installation directory of an interpreter: /root/.pyenv/versions/3.12.1 for its
    bin/python3.12."""
    return str(Path(os.path.realpath(python)).parent.parent)


def _validate(spec: RunSpec) -> None:
    for name, value in spec.env.items():
        if not _ENV_NAME.fullmatch(name) or "\0" in value:
            raise ValueError(f"invalid environment variable {name!r}")
    for what in (
        "timeout_seconds",
        "memory_mb",
        "cpu_seconds",
        "output_max_bytes",
        "max_processes",
        "file_size_mb",
    ):
        if not getattr(spec, what) > 0:
            raise ValueError(f"{what} must be positive")


def _script_env(spec: RunSpec, *, home: str, path: str) -> dict[str, str]:
    env = {"PATH": path, "HOME": home, "LANG": "C.UTF-8", "TMPDIR": SANDBOX_TMP}
    env.update(spec.env)
    return env


def _bootstrap_command(
    spec: RunSpec, launch: _Launch, *, interpreter: str, cwd: str, command: list[str], umask: int = 0o077
) -> list[str]:
    numbers = [
        spec.max_processes,
        spec.memory_mb * 1024 * 1024,
        spec.cpu_seconds,
        spec.file_size_mb * 1024 * 1024,
        launch.uid,
        launch.report_w,
        umask,
        launch.network.gate_inside if launch.network is not None else -1,
    ]
    return [interpreter, "-I", "-S", "-c", _BOOTSTRAP, *[str(v) for v in numbers], cwd, *command]


def _uid_mapped(uid: int) -> bool:
    """Whether this process's user namespace has `uid` (a root in a container may have only a
    range of uids)."""
    try:
        with open("/proc/self/uid_map") as f:
            ranges = [tuple(int(v) for v in line.split()) for line in f if line.strip()]
    except (OSError, ValueError):
        return False
    return any(inside <= uid < inside + count for inside, _, count in ranges)


def run_uid(workdir: Path) -> int:
    """The uid the runs of a working directory get when the service is root: stable per
    directory, so the files a run leaves are the next run's; nobody where the range is not
    available."""
    digest = hashlib.sha256(os.fsencode(os.path.realpath(workdir))).digest()
    uid = RUN_UID_BASE + int.from_bytes(digest[:8], "big") % RUN_UID_SPAN
    return uid if _uid_mapped(uid) else SANDBOX_UID


def _hand_over(workdir: Path, uid: int) -> None:
    """Make `workdir` (created when missing) and everything in it the confined uid's."""
    workdir.mkdir(parents=True, exist_ok=True)
    if not _is_root():
        return
    st = os.lstat(workdir)
    if st.st_uid == uid and st.st_gid == uid:
        return
    # lchown: a script may have left symlinks to files it must not get.
    os.lchown(workdir, uid, uid)
    os.chmod(workdir, 0o700)
    for root, dirs, files in os.walk(workdir):
        for name in dirs + files:
            os.lchown(os.path.join(root, name), uid, uid)


class _Launch:
    """The argv, file descriptors and temporary files of one run, closed by `close()`."""

    def __init__(self, uid: int) -> None:
        self.argv: list[str] = []
        self.executable: str | None = None
        self.pass_fds: list[int] = []
        self.files: list[object] = []
        self.tmpdir: str | None = None
        self.cwd: str = "/"
        self.env: dict[str, str] = {}
        self.uid = uid
        self.network: UserNetwork | None = None
        self.report_r, self.report_w = os.pipe()
        self.pass_fds.append(self.report_w)

    def data_fd(self, data: bytes) -> int:
        f = tempfile.TemporaryFile()
        f.write(data)
        f.flush()
        f.seek(0)
        self.files.append(f)
        self.pass_fds.append(f.fileno())
        return f.fileno()

    def spawned(self) -> None:
        """After the spawn: only the child may hold the report's write end (its EOF matters)."""
        for f in self.files:
            f.close()
        self.files = []
        if self.report_w >= 0:
            os.close(self.report_w)
            self.report_w = -1
        if self.network is not None:
            self.network.spawned()

    def report(self) -> tuple[int, int, float] | None:
        """(wait status, peak KB, CPU seconds) of the script from the bootstrap, if it told."""
        os.set_blocking(self.report_r, False)
        try:
            data = os.read(self.report_r, 256)
            status, peak, cpu = data.split()
            return int(status), int(peak), float(cpu)
        except (OSError, ValueError):
            return None

    def close(self) -> None:
        self.spawned()
        os.close(self.report_r)
        if self.network is not None:
            self.network.close()
        if self.tmpdir:
            shutil.rmtree(self.tmpdir, ignore_errors=True)


def _identity_args(launch: _Launch) -> list[str]:
    """/etc/passwd and /etc/group with an entry for the run's uid (getpass, pwd and the many
    libraries that ask who they are fail without one); nobody is there already."""
    if launch.uid == SANDBOX_UID:
        return []
    args: list[str] = []
    for path, line in (
        ("/etc/passwd", f"script:x:{launch.uid}:{launch.uid}:script:{SANDBOX_TMP}:/usr/sbin/nologin\n"),
        ("/etc/group", f"script:x:{launch.uid}:\n"),
    ):
        try:
            with open(path, "rb") as f:
                content = f.read()
        except OSError:
            content = b""
        if content and not content.endswith(b"\n"):
            content += b"\n"
        args += ["--perms", "0644", "--ro-bind-data", str(launch.data_fd(content + line.encode())), path]
    return args


def _seccomp_filter() -> bytes:
    """A seccomp program (x86_64 and aarch64) refusing new user namespaces: unshare() and
    clone() with CLONE_NEWUSER get EPERM, clone3() (whose flags a filter cannot read) ENOSYS
    so the C library falls back to clone(). A user namespace would hand the script every
    capability inside it, and with them much more of the kernel to attack. Other
    architectures pass unfiltered (x32 calls are refused)."""
    ld, jeq, jge, jset, ja, ret = 0x20, 0x15, 0x35, 0x45, 0x05, 0x06
    allow, eperm, enosys = 0x7FFF0000, 0x00050000 | 1, 0x00050000 | 38
    clone_newuser, clone3 = 0x10000000, 435
    # (opcode, k, true-label, false-label); labels resolve to relative jumps below.
    program = [
        (ld, 4, None, None),  # arch
        (jeq, 0xC000003E, "x86_64", None),
        (jeq, 0xC00000B7, "aarch64", "allow"),
        ("x86_64", None, None, None),
        (ld, 0, None, None),  # syscall number
        (jge, 0x40000000, "eperm", None),
        (jeq, clone3, "enosys", None),
        (jeq, 272, "flags", None),  # unshare
        (jeq, 56, "flags", None),  # clone
        (ja, "allow", None, None),
        ("aarch64", None, None, None),
        (ld, 0, None, None),
        (jeq, clone3, "enosys", None),
        (jeq, 97, "flags", None),  # unshare
        (jeq, 220, "flags", None),  # clone
        (ja, "allow", None, None),
        ("flags", None, None, None),
        (ld, 16, None, None),  # low 32 bits of the first argument: the flags
        (jset, clone_newuser, "eperm", "allow"),
        ("allow", None, None, None),
        (ret, allow, None, None),
        ("eperm", None, None, None),
        (ret, eperm, None, None),
        ("enosys", None, None, None),
        (ret, enosys, None, None),
    ]
    labels: dict[str, int] = {}
    instructions = []
    for item in program:
        if isinstance(item[0], str):
            labels[item[0]] = len(instructions)
        else:
            instructions.append(item)
    code = b""
    for index, (op, k, true, false) in enumerate(instructions):
        jt, jf = (0 if label is None else labels[label] - index - 1 for label in (true, false))
        if op == ja:
            code += struct.pack("<HBBI", op, 0, 0, labels[k] - index - 1)
        else:
            code += struct.pack("<HBBI", op, jt, jf, k)
    return code


_SECCOMP = _seccomp_filter()


def _fill_bwrap(
    launch: _Launch,
    spec: RunSpec,
    *,
    mounts: list[str],
    env: dict[str, str],
    interpreter: str,
    cwd: str,
    command: list[str],
    umask: int,
) -> None:
    """Make `launch` start `command` in bwrap: the system read-only, the interpreter's
    installation, a fresh /tmp, the run's identity, then `mounts` (bwrap options)."""
    shared = spec.network and spec.network_shared
    args = [*_namespace_args(share_network=shared), *_system_args()]
    args += ["--perms", "1777", "--size", str(spec.memory_mb * 1024 * 1024), "--tmpfs", SANDBOX_TMP]
    # multiprocessing's locks and queues live in /dev/shm, which bwrap's /dev leaves to root.
    shm = min(spec.memory_mb, SHM_MAX_MB) * 1024 * 1024
    args += ["--perms", "1777", "--size", str(shm), "--tmpfs", SANDBOX_SHM]
    prefix = _interpreter_prefix(spec.python_path)
    if not _covered_by_system(prefix):
        args += [*_dirs_for(prefix), "--ro-bind", prefix, prefix]
    args += _identity_args(launch)
    if spec.network and not shared:
        launch.network = UserNetwork()
        launch.pass_fds += launch.network.pass_fds
        args += launch.network.bwrap_args(launch.data_fd)
    args += ["--seccomp", str(launch.data_fd(_SECCOMP))]
    args += mounts
    args.append("--clearenv")
    for name, value in env.items():
        args += ["--setenv", name, value]
    # Options through a file, not argv: the host's `ps` shows argv, and values may be secrets.
    # (bwrap reads only options from the file; the command follows on argv.)
    args_fd = launch.data_fd(b"\0".join(a.encode("utf-8", "surrogateescape") for a in args) + b"\0")
    boot = _bootstrap_command(spec, launch, interpreter=interpreter, cwd=cwd, command=command, umask=umask)
    # argv[0] names the process for `ps` and for cancel_process_group's check.
    launch.executable = bwrap_path() or "bwrap"
    launch.argv = [f"{MARKER}-bwrap", "--args", str(args_fd), "--", *boot]
    launch.env = _bwrap_env()


def _launch_sandboxed(spec: RunSpec, launch: _Launch) -> None:
    mounts: list[str] = []
    if spec.env_dir is not None:
        # Only the given interpreter's installation is mounted, never one the environment's own
        # links point to: the environment was written by an installer running user code.
        mounts += ["--ro-bind", str(spec.env_dir), ENV_MOUNT]
        interpreter = f"{ENV_MOUNT}/bin/python"
        path = f"{ENV_MOUNT}/bin:/usr/local/bin:/usr/bin:/bin"
    else:
        interpreter = os.path.realpath(spec.python_path)
        path = "/usr/local/bin:/usr/bin:/bin"
    mounts += ["--bind", str(spec.workdir), WORKDIR_MOUNT]
    code_fd = launch.data_fd(spec.code.encode("utf-8", "surrogateescape"))
    mounts += [*_dirs_for(SCRIPT_MOUNT), "--perms", "0444", "--ro-bind-data", str(code_fd), SCRIPT_MOUNT]
    _fill_bwrap(
        launch,
        spec,
        mounts=mounts,
        env=_script_env(spec, home=SANDBOX_TMP, path=path),
        interpreter=interpreter,
        cwd=WORKDIR_MOUNT,
        command=[interpreter, "-u", SCRIPT_MOUNT],
        umask=0o077,
    )


def _launch_unsandboxed(spec: RunSpec, launch: _Launch) -> None:
    launch.tmpdir = tempfile.mkdtemp(prefix=f"{MARKER}-")
    script = os.path.join(launch.tmpdir, "script.py")
    with open(script, "w", encoding="utf-8", errors="surrogateescape") as f:
        f.write(spec.code)
    os.chmod(launch.tmpdir, 0o755)  # noqa: S103 - nobody runs the script
    os.chmod(script, 0o444)
    if spec.env_dir is not None:
        interpreter = str(Path(spec.env_dir) / "bin" / "python")
        path = f"{Path(spec.env_dir) / 'bin'}:/usr/local/bin:/usr/bin:/bin"
    else:
        interpreter = spec.python_path
        path = "/usr/local/bin:/usr/bin:/bin"
    launch.argv = _bootstrap_command(
        spec, launch, interpreter=interpreter, cwd=str(spec.workdir), command=[interpreter, "-u", script]
    )
    launch.env = _script_env(spec, home=str(spec.workdir), path=path)
    launch.cwd = str(spec.workdir)


# --- Running --------------------------------------------------------------------------------


def _now() -> datetime:
    return datetime.now(UTC)


def _is_our_group(pid: int) -> bool:
    """Whether `pid` leads a process group and is a run of ours (guards against a reused pid)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            cmdline = f.read()
    except OSError:
        return False
    fields = stat.rsplit(b")", 1)[-1].split()
    return len(fields) > 2 and int(fields[2]) == pid and MARKER.encode() in cmdline


def cancel_process_group(pid: int) -> bool:
    """Kill the run whose process-group leader is `pid` (the pid run() gave on_start), with every
    process in it; safe to call from another process. False when no run of ours has that pid."""
    if not isinstance(pid, int) or pid <= 1 or not _is_our_group(pid):
        return False
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        return False
    return True


def _not_started(spec: RunSpec, message: str, started_at: datetime) -> RunResult:
    return RunResult(
        state="failed",
        exit_code=None,
        message=message,
        output="",
        output_truncated=False,
        peak_memory_kb=None,
        cpu_seconds=None,
        started_at=started_at,
        finished_at=_now(),
    )


def run(
    spec: RunSpec,
    *,
    on_start: Callable[[int], None] | None = None,
    on_output: Callable[[str], None] | None = None,
    should_cancel: Callable[[], bool] | None = None,
    poll_seconds: float = 0.2,
    sandbox: bool | None = None,
) -> RunResult:
    """Run `spec.code` and return how it ended; never raises for anything the script does.

    `sandbox` None follows SCRIPTS_SANDBOX. When the sandbox is on but unusable the run is
    refused: a "failed" result with `sandbox_problem()`'s message and nothing started.
    on_start(pid) gets the process-group leader's pid (for cancel_process_group), on_output the
    kept output as it comes, should_cancel() is asked every `poll_seconds`; an exception from
    on_output or should_cancel is logged and the run goes on (one from on_start ends the run
    and propagates). Raises ValueError for a malformed spec (names, limits): a caller's bug.
    """
    _validate(spec)
    started_at = _now()
    sandboxed = _sandbox_enabled() if sandbox is None else sandbox
    if sandboxed:
        problem = _bwrap_problem() or (network_problem() if spec.network else None)
        if problem:
            return _not_started(spec, problem, started_at)
    uid = run_uid(Path(spec.workdir)) if _is_root() else os.geteuid()
    launch = _Launch(uid)
    try:
        _hand_over(Path(spec.workdir), uid)
        if sandboxed:
            _launch_sandboxed(spec, launch)
        else:
            _launch_unsandboxed(spec, launch)
    except OSError as exc:
        launch.close()
        return _not_started(spec, f"The run could not be prepared: {exc.strerror or exc}.", started_at)
    return _execute(
        spec,
        launch,
        sandboxed=sandboxed,
        started_at=started_at,
        on_start=on_start,
        on_output=on_output,
        should_cancel=should_cancel,
        poll_seconds=poll_seconds,
    )


def build_uid() -> int:
    """The uid environment builds run as when the service is root (nobody where unmapped)."""
    return BUILD_UID if _uid_mapped(BUILD_UID) else SANDBOX_UID


def run_command(
    command: list[str],
    *,
    python_path: str,
    cwd: Path,
    env: dict[str, str],
    read_only: Sequence[Path] = (),
    writable: Sequence[Path] = (),
    network: bool,
    timeout_seconds: float,
    memory_mb: int = 4096,
    cpu_seconds: int = 3600,
    max_processes: int = 512,
    file_size_mb: int = 4096,
    output_max_bytes: int = 1024 * 1024,
    sandbox: bool | None = None,
) -> RunResult:
    """Run `command` (a program outside the user's script: the environment installer, the
    environment check) confined like a script, because it runs code users chose: package
    builds execute their setup code. Paths are mounted at their own paths (`read_only`,
    `writable`; `cwd` must be one of them or exist in the sandbox, like /tmp), `python_path`'s
    installation is mounted and its interpreter runs the bootstrap. As root it runs as
    BUILD_UID, which owns the writable paths; files it creates are readable by all (umask 022).
    With `network` it shares the worker's own network: the package index may be a mirror that
    only this machine reaches.
    """
    spec = RunSpec(
        code="",
        env_dir=None,
        python_path=python_path,
        workdir=Path(cwd),
        env=env,
        network=network,
        timeout_seconds=timeout_seconds,
        memory_mb=memory_mb,
        cpu_seconds=cpu_seconds,
        output_max_bytes=output_max_bytes,
        max_processes=max_processes,
        file_size_mb=file_size_mb,
        network_shared=True,
    )
    _validate(spec)
    started_at = _now()
    sandboxed = _sandbox_enabled() if sandbox is None else sandbox
    if sandboxed:
        problem = _bwrap_problem()
        if problem:
            return _not_started(spec, problem, started_at)
    uid = build_uid() if _is_root() else os.geteuid()
    launch = _Launch(uid)
    try:
        for path in writable:
            _hand_over(Path(path), uid)
        if sandboxed:
            mounts: list[str] = []
            for option, paths in (("--ro-bind", read_only), ("--bind", writable)):
                for path in map(str, paths):
                    if os.path.exists(path) and not (option == "--ro-bind" and _covered_by_system(path)):
                        mounts += [*_dirs_for(path), option, path, path]
            interpreter = os.path.realpath(python_path)
            _fill_bwrap(
                launch,
                spec,
                mounts=mounts,
                env=env,
                interpreter=interpreter,
                cwd=str(cwd),
                command=command,
                umask=0o022,
            )
        else:
            launch.argv = _bootstrap_command(
                spec, launch, interpreter=python_path, cwd=str(cwd), command=command, umask=0o022
            )
            launch.env = dict(env)
            launch.cwd = str(cwd)
    except OSError as exc:
        launch.close()
        return _not_started(spec, f"Could not be prepared: {exc.strerror or exc}.", started_at)
    return _execute(
        spec,
        launch,
        sandboxed=sandboxed,
        started_at=started_at,
        on_start=None,
        on_output=None,
        should_cancel=None,
        poll_seconds=0.5,
    )


def _execute(
    spec: RunSpec,
    launch: _Launch,
    *,
    sandboxed: bool,
    started_at: datetime,
    on_start: Callable[[int], None] | None,
    on_output: Callable[[str], None] | None,
    should_cancel: Callable[[], bool] | None,
    poll_seconds: float,
) -> RunResult:
    """Start a prepared launch, supervise it to its end, and clean up after it."""
    uid = launch.uid
    drop = {} if sandboxed or not _is_root() else {"user": uid, "group": uid, "extra_groups": []}
    spawn_at = time.monotonic()
    try:
        proc = subprocess.Popen(
            launch.argv,
            executable=launch.executable,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            pass_fds=launch.pass_fds,
            env=launch.env,
            cwd=launch.cwd,
            start_new_session=True,
            **drop,
        )
    except OSError as exc:
        launch.close()
        who = f" as the unprivileged uid {uid}" if drop else ""
        return _not_started(spec, f"The interpreter could not start{who}: {exc.strerror or exc}.", started_at)
    launch.spawned()
    try:
        if launch.network is not None:
            problem = launch.network.attach(as_root=_is_root())
            if problem:
                kill_group(proc.pid)
                proc.wait()
                return _not_started(spec, f"The run's network could not be set up: {problem}.", started_at)
        return _supervise(
            spec,
            proc,
            launch,
            sandboxed=sandboxed,
            started_at=started_at,
            spawn_at=spawn_at,
            on_start=on_start,
            on_output=on_output,
            should_cancel=should_cancel,
            poll_seconds=poll_seconds,
        )
    finally:
        if proc.returncode is None:  # only when supervising itself failed (a callback raised)
            kill_group(proc.pid)
            with contextlib.suppress(ChildProcessError):
                os.waitpid(proc.pid, 0)
            proc.returncode = -signal.SIGKILL
        proc.stdout.close()
        launch.close()


def _supervise(
    spec: RunSpec,
    proc: subprocess.Popen,
    launch: _Launch,
    *,
    sandboxed: bool,
    started_at: datetime,
    spawn_at: float,
    on_start: Callable[[int], None] | None,
    on_output: Callable[[str], None] | None,
    should_cancel: Callable[[], bool] | None,
    poll_seconds: float,
) -> RunResult:
    pid = proc.pid
    if on_start is not None:
        on_start(pid)
    output = Output(spec.output_max_bytes, on_output)
    watched = watch(
        proc,
        output,
        deadline=spawn_at + spec.timeout_seconds,
        should_cancel=should_cancel,
        poll_seconds=poll_seconds,
    )
    status, exited_at = watched.status, watched.exited_at
    report = launch.report()
    if report is not None:
        status, peak_kb, cpu = report
    else:  # killed before the script ended (timeout, cancel) or the sandbox failed to start
        peak_kb, cpu = None, None
    text = output.finish()

    def cancelled_after() -> bool:
        return should_cancel is not None and asks_to_cancel(should_cancel)

    state, code, message = classify(
        spec,
        stopped=watched.stopped,
        status=status,
        exact=report is not None,
        sandboxed=sandboxed,
        output=output,
        peak_kb=peak_kb or 0,
        cpu=cpu or 0.0,
        cancelled_after=cancelled_after,
    )
    return RunResult(
        state=state,
        exit_code=code,
        message=message,
        output=text,
        output_truncated=output.truncated,
        peak_memory_kb=peak_kb,
        cpu_seconds=None if cpu is None else round(cpu, 3),
        started_at=started_at,
        finished_at=_now(),
        facts={
            "spawn_to_first_output": None if output.first_at is None else output.first_at - spawn_at,
            "exit_to_result": None if exited_at is None else time.monotonic() - exited_at,
            "exit_to_reaped": None if exited_at is None else watched.reaped_at - exited_at,
            "output_bytes": output.total,
        },
    )
