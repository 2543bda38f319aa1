"""Worker "hosts" on one machine, for the multi-host test: each is a network namespace of its
own (and a host name of its own), joined to this machine by a veth pair, running its processes
as a worker machine would. PostgreSQL, Redis and the fake servers listen on this machine's
loopback only, so a forwarder (`forward.py`) answers on each host's veth address for them, and
one inside each host answers on that host's loopback for the fake Keboola stack URL
(http://127.0.0.1:<port>, the only kind a job accepts besides real Keboola).

Needs root and `ip` (iproute2) and `unshare` (util-linux); `netns_problem` says what is missing.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from django.conf import settings

from teckochecker.processes import pid_alive

FORWARDER = Path(__file__).with_name("forward.py")
NAME = re.compile(r"^tcmh(\d+)h(\d+)$")  # tcmh<pid of the test>h<index>


def netns_problem() -> str | None:
    """Why worker hosts cannot be simulated here, or None."""
    if os.geteuid() != 0:
        return "simulating worker hosts needs root (network namespaces and veth pairs)"
    for tool, package in (("ip", "iproute2"), ("unshare", "util-linux")):
        if not shutil.which(tool):
            return f"`{tool}` is not installed (Debian package {package})"
    return None


def _run(*argv: str) -> str:
    return subprocess.run(argv, check=True, capture_output=True, text=True).stdout


def remove_leftovers() -> None:
    """Namespaces of an earlier run whose test process died before it could clean up."""
    for line in _run("ip", "netns", "list").splitlines():
        name = line.split()[0] if line.strip() else ""
        match = NAME.match(name)
        if match and not pid_alive(int(match[1])):
            subprocess.run(["ip", "netns", "del", name], check=False, capture_output=True)


def free_subnet() -> int:
    """A third octet for 10.213.X.0/24 that no interface of this machine uses."""
    used = _run("ip", "-o", "-4", "addr", "show")
    start = os.getpid() % 200
    for offset in range(200):
        octet = 20 + (start + offset) % 200
        if f" 10.213.{octet}." not in used:
            return octet
    raise RuntimeError("no free 10.213.X.0/24 subnet for the worker hosts")


def via(url: str, host: str) -> str:
    """`url` with its host replaced by `host` (a service on this machine, seen from a host)."""
    parts = urlsplit(url)
    userinfo = parts.netloc.rpartition("@")[0]
    netloc = (f"{userinfo}@" if userinfo else "") + f"{host}:{parts.port}"
    return urlunsplit(parts._replace(netloc=netloc))


@dataclass
class WorkerHost:
    index: int
    namespace: str
    hostname: str
    address: str  # this machine's end of the veth pair: where the host reaches the services
    veth: str
    data_dir: Path
    log_dir: Path
    procs: dict[str, subprocess.Popen] = field(default_factory=dict)

    def run(self, role: str, argv: list[str], env: dict[str, str]) -> subprocess.Popen:
        """Start `argv` inside this host: its network namespace and a host name of its own."""
        log = open(self.log_dir / f"{self.hostname}-{role}.log", "ab")  # noqa: SIM115 (closed by kill)
        command = ["ip", "netns", "exec", self.namespace, "unshare", "--uts", "--"]
        command += ["sh", "-c", 'hostname "$0" && exec "$@"', self.hostname, *argv]
        proc = subprocess.Popen(
            command,
            env=env,
            cwd=settings.BASE_DIR,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        proc._log = log
        self.procs[role] = proc
        return proc

    def log(self, role: str) -> str:
        path = self.log_dir / f"{self.hostname}-{role}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def pids(self) -> list[int]:
        return [int(p) for p in _run("ip", "netns", "pids", self.namespace).split()]

    def kill(self) -> None:
        """The machine's processes die: every process in it gets SIGKILL. Its kernel still
        closes their connections, so PostgreSQL ends their sessions at once; a machine that
        loses power closes nothing (README, "More worker machines": TCP keepalives)."""
        deadline = time.monotonic() + 10
        while (pids := self.pids()) and time.monotonic() < deadline:
            for pid in pids:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            time.sleep(0.05)
        assert not self.pids(), f"processes survived in {self.namespace}"
        for proc in self.procs.values():
            proc.wait(timeout=10)
            proc._log.close()
        self.procs.clear()


class WorkerHosts:
    """`count` worker hosts plus the forwarder that lets them reach this machine's `ports`."""

    def __init__(self, count: int, *, ports: list[int], base_dir: Path, log_dir: Path) -> None:
        self.count, self.ports, self.base_dir, self.log_dir = count, ports, base_dir, log_dir
        self.hosts: list[WorkerHost] = []
        self.forwarder: subprocess.Popen | None = None

    def __enter__(self) -> WorkerHosts:
        remove_leftovers()
        octet = free_subnet()
        pid = os.getpid()
        try:
            for index in range(1, self.count + 1):
                self.hosts.append(self._make(index, octet, pid))
            self.forwarder = self._forward(
                "forwarder", [f"{h.address}:{p}=127.0.0.1:{p}" for h in self.hosts for p in self.ports]
            )
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def _make(self, index: int, octet: int, pid: int) -> WorkerHost:
        namespace = f"tcmh{pid}h{index}"
        outside, inside = f"tcmh{pid}o{index}", f"tcmh{pid}i{index}"
        address, peer = f"10.213.{octet}.{4 * index + 1}", f"10.213.{octet}.{4 * index + 2}"
        _run("ip", "netns", "add", namespace)
        host = WorkerHost(
            index=index,
            namespace=namespace,
            hostname=f"tcmh{pid}-host{index}",
            address=address,
            veth=outside,
            data_dir=self.base_dir / f"host{index}",
            log_dir=self.log_dir,
        )
        host.data_dir.mkdir(parents=True, exist_ok=True)
        _run("ip", "link", "add", outside, "type", "veth", "peer", "name", inside)
        _run("ip", "link", "set", inside, "netns", namespace)
        _run("ip", "addr", "add", f"{address}/30", "dev", outside)
        _run("ip", "link", "set", outside, "up")
        in_ns = ("ip", "netns", "exec", namespace, "ip")
        _run(*in_ns, "addr", "add", f"{peer}/30", "dev", inside)
        _run(*in_ns, "link", "set", inside, "up")
        _run(*in_ns, "link", "set", "lo", "up")
        _run(*in_ns, "route", "add", "default", "via", address)
        return host

    def _forward(self, name: str, specs: list[str], host: WorkerHost | None = None) -> subprocess.Popen:
        argv = [sys.executable, str(FORWARDER), *specs]
        log = self.log_dir / (f"{host.hostname}-{name}.log" if host else f"tcmh{os.getpid()}-{name}.log")
        log.unlink(missing_ok=True)
        if host is None:
            out = open(log, "ab")  # noqa: SIM115 (closed in __exit__)
            proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
            proc._log = out
        else:
            proc = host.run(name, argv, dict(os.environ))
        deadline = time.monotonic() + 20
        while "ready" not in (log.read_text() if log.exists() else ""):
            assert proc.poll() is None, f"the forwarder {name} exited: {log.read_text()[-2000:]}"
            assert time.monotonic() < deadline, f"the forwarder {name} did not start"
            time.sleep(0.05)
        return proc

    def forward_loopback(self, host: WorkerHost, port: int) -> None:
        """Inside `host`, 127.0.0.1:`port` reaches this machine's 127.0.0.1:`port`."""
        self._forward("loopback", [f"127.0.0.1:{port}={host.address}:{port}"], host)

    def accepted(self, host: WorkerHost, port: int) -> int:
        """Connections `host` opened to this machine's `port` (through the forwarder)."""
        log = self.log_dir / f"tcmh{os.getpid()}-forwarder.log"
        return log.read_text().count(f"accept {host.address}:{port}\n")

    def __exit__(self, *exc_info: object) -> None:
        for host in self.hosts:
            with contextlib.suppress(Exception):
                host.kill()
            subprocess.run(["ip", "netns", "del", host.namespace], check=False, capture_output=True)
        if self.forwarder is not None:
            self.forwarder.kill()
            self.forwarder.wait()
            self.forwarder._log.close()
