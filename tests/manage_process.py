"""`manage.py` as a real process for the tests, without paying Django's start-up each time.

The command-line tests run a few hundred `manage.py` processes, and each spent about a second of
CPU importing Django, the settings and the apps before it looked at its arguments: most of the
parallel phase's time. A `ManageProcesses` starts one server process for one environment, which
imports all of that once and then forks a child per command. The child is a real process: its
stdin, stdout and stderr are its own files, it runs `manage.py`'s own `main()` from the top
with its own argv, and its exit code and output are what the test sees, as from
`subprocess.run`. What a fork cannot show is the import itself, which every other test of a
`manage.py` process (init, start, the demo, the production install) still starts from scratch.

`init` first runs with development keys and sets them up in `manage.py` before Django reads its
settings, so it is exec'd in the child, a fresh interpreter like any other process.
"""

from __future__ import annotations

import json
import locale
import socket
import subprocess
import sys
import threading
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FRESH = {"init"}  # commands that must start in a fresh interpreter (see the docstring)

# The server: imports Django, the settings, the apps and every command once, then for each request
# line forks a child that becomes `manage.py <argv>` with the given stdin and its own output files.
_SERVER = r"""
import atexit, json, os, signal, socket, sys, tempfile, time
sock = socket.socket(fileno=int(sys.argv[1]))
requests = sock.makefile("rb")
sys.path.insert(0, os.getcwd())
import manage
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "teckochecker.settings")
import django
django.setup()
from django.core.management import get_commands, load_command_class
for name, app in get_commands().items():
    try:
        load_command_class(app, name)
    except Exception:
        pass


def child(argv, stdin, out, err):
    sock.close()
    os.dup2(stdin.fileno(), 0)
    os.dup2(out.fileno(), 1)
    os.dup2(err.fileno(), 2)
    if argv[1:2] and argv[1] in FRESH:
        os.execv(sys.executable, [sys.executable, *argv])
    sys.argv = argv
    code = 0
    try:
        manage.main()
    except SystemExit as exc:  # as the interpreter treats it at exit
        if exc.code is None:
            code = 0
        elif isinstance(exc.code, int):
            code = exc.code & 0xFF
        else:
            print(exc.code, file=sys.stderr)
            code = 1
    except BaseException:
        sys.excepthook(*sys.exc_info())
        code = 1
    try:
        atexit._run_exitfuncs()
        sys.stdout.flush()
        sys.stderr.flush()
    finally:
        os._exit(code)


for line in requests:
    request = json.loads(line)
    stdin, out, err = (tempfile.TemporaryFile() for _ in range(3))
    stdin.write(request["stdin"].encode())
    stdin.seek(0)
    pid = os.fork()
    if pid == 0:
        child(request["argv"], stdin, out, err)
    deadline = time.monotonic() + request["timeout"]
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
        time.sleep(0.005)
    out.seek(0)
    err.seek(0)
    answer = {
        "returncode": os.waitstatus_to_exitcode(status),
        "stdout": out.read().decode("latin-1"),
        "stderr": err.read().decode("latin-1"),
    }
    for f in (stdin, out, err):
        f.close()
    sock.sendall(json.dumps(answer).encode() + b"\n")
"""


class ManageProcesses:
    """Run `manage.py` commands in `env` as forked processes: `manage("job", "list")` returns a
    `subprocess.CompletedProcess` with text output, like `subprocess.run(..., text=True)`."""

    def __init__(self, env: dict[str, str], *, cwd: Path = ROOT) -> None:
        ours, theirs = socket.socketpair()
        code = f"FRESH = {sorted(FRESH)!r}\n{_SERVER}"
        self._server = subprocess.Popen(
            [sys.executable, "-c", code, str(theirs.fileno())],
            cwd=cwd,
            env=env,
            pass_fds=[theirs.fileno()],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
        )
        theirs.close()
        self._sock = ours
        self._answers = ours.makefile("rb")
        self._lock = threading.Lock()
        self._encoding = locale.getpreferredencoding(False)

    def __call__(self, *args: str, stdin: str = "", timeout: float = 60) -> subprocess.CompletedProcess:
        argv = ["manage.py", *args]
        request = {"argv": argv, "stdin": stdin, "timeout": timeout}
        with self._lock:
            self._sock.sendall(json.dumps(request).encode() + b"\n")
            line = self._answers.readline()
        if not line:
            raise RuntimeError(f"the manage.py launcher ended (exit code {self._server.wait()})")
        answer = json.loads(line)

        def text(value: str) -> str:  # the bytes the child wrote, decoded as subprocess.run would
            decoded = value.encode("latin-1").decode(self._encoding)
            return decoded.replace("\r\n", "\n").replace("\r", "\n")

        return subprocess.CompletedProcess(
            [sys.executable, *argv], answer["returncode"], text(answer["stdout"]), text(answer["stderr"])
        )

    def close(self) -> None:
        self._answers.close()
        self._sock.close()
        try:
            self._server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._server.kill()
            self._server.wait()
