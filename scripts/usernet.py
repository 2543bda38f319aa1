"""A network of its own for a script run with the network on: user-mode TCP/IP by slirp4netns.

Sharing the scripts worker's network would let a script reach whatever the worker reaches on
this machine's loopback: PostgreSQL, Redis (an unauthenticated broker accepts anyone's tasks),
the web server, the fake servers in tests. So bubblewrap gives the run an empty network
namespace, as for a run without network, and slirp4netns connects it to the outside from user
space: the script gets an address (10.0.2.100), a gateway and a DNS forwarder (10.0.2.3), and
its connections are made for it by slirp4netns from the worker's network namespace. With
`--disable-host-loopback` nothing reaches the worker's loopback: 127.0.0.1 inside is the
sandbox's own, and the gateway address that slirp4netns would otherwise map to the host's
loopback is unreachable. What the worker reaches through other interfaces (the internet, the
LAN and, in Docker, the compose network) the script reaches too.

The order matters. The script must not run before its network exists, and slirp4netns must not
touch the namespace before bubblewrap has finished setting it up: both configure its loopback,
and when they overlap bubblewrap fails ("loopback: Failed RTM_NEWADDR", about 1 run in 30 on a
loaded machine). So bubblewrap reports the sandbox's pid on `--info-fd`; the bootstrap, the first
program in the finished sandbox, says "r" on the gate (a socket pair) and waits; slirp4netns
joins the pid's namespaces and says it is ready on `--ready-fd`; then the gate says "g" and the
bootstrap goes on. slirp4netns ends when its `--exit-fd` closes: at the end of the run, or when
the service dies.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import select
import shutil
import socket
import subprocess
import tempfile
import time

SLIRP_PATHS = ("/usr/bin/slirp4netns", "/usr/local/bin/slirp4netns")
DNS = "10.0.2.3"  # slirp4netns's DNS forwarder; the sandbox's /etc/resolv.conf names it
SETUP_SECONDS = 10.0
TUN = "/dev/net/tun"
INSTALL_HINT = "Debian/Ubuntu: apt-get install slirp4netns"


def slirp_path() -> str | None:
    for path in SLIRP_PATHS:
        if os.access(path, os.X_OK):
            return path
    return shutil.which("slirp4netns")


def network_problem() -> str | None:
    """None when runs with the network on can get a network of their own; else why not."""
    if slirp_path() is None:
        return (
            "Script runs with the network on are refused: slirp4netns is not installed "
            f"({INSTALL_HINT}). It gives each such run a network of its own that cannot reach "
            "this machine's services. Runs without network are not affected."
        )
    if os.geteuid() != 0 and not os.access(TUN, os.R_OK | os.W_OK):
        return (
            f"Script runs with the network on are refused: slirp4netns needs {TUN}, which this "
            "user cannot open (Docker: give the scripts worker `devices: [/dev/net/tun]`). "
            "Runs without network are not affected."
        )
    return None


NS_GET_USERNS = 0xB701  # ioctl on a namespace fd: a new fd for the user namespace owning it


def _owning_userns(pid: int) -> int:
    """An fd of the user namespace that owns `pid`'s network namespace (the caller closes it)."""
    net = os.open(f"/proc/{pid}/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    try:
        return fcntl.ioctl(net, NS_GET_USERNS)
    finally:
        os.close(net)


class UserNetwork:
    """The file descriptors and the slirp4netns process of one run's network."""

    def __init__(self) -> None:
        self.info_r, self.info_w = os.pipe()
        outside, inside = socket.socketpair()
        self.gate, self.gate_inside = outside.detach(), inside.detach()
        self.exit_w = -1
        self.proc: subprocess.Popen | None = None
        self.errors = tempfile.TemporaryFile()

    def bwrap_args(self, data_fd) -> list[str]:
        """bubblewrap options (next to `--unshare-net`): report the pid, and a resolv.conf naming
        slirp4netns's DNS (the host's may name a loopback resolver)."""
        resolv = data_fd(f"nameserver {DNS}\n".encode())
        return [
            "--info-fd",
            str(self.info_w),
            "--perms",
            "0444",
            "--ro-bind-data",
            str(resolv),
            "/etc/resolv.conf",
        ]

    @property
    def pass_fds(self) -> list[int]:
        return [self.info_w, self.gate_inside]

    def spawned(self) -> None:
        """After bubblewrap started: only it may hold its ends (EOF on info-fd means it died)."""
        for fd in ("info_w", "gate_inside"):
            if getattr(self, fd) >= 0:
                os.close(getattr(self, fd))
                setattr(self, fd, -1)

    def attach(self, *, as_root: bool, timeout: float = SETUP_SECONDS) -> str | None:
        """Connect the sandbox to the outside and let it start; None, or what went wrong.

        None also when the sandbox ended by itself on the way (bubblewrap failed): supervising
        it then reports its exit and bubblewrap's own message."""
        deadline = time.monotonic() + timeout

        def wait(fd: int) -> bool:
            return bool(select.select([fd], [], [], max(0.0, deadline - time.monotonic()))[0])

        data = b""
        while b"}" not in data:
            if not wait(self.info_r):
                return "bubblewrap did not report its sandbox in time"
            chunk = os.read(self.info_r, 4096)
            if not chunk:
                return None
            data += chunk
        pid = int(json.loads(data[: data.index(b"}") + 1])["child-pid"])
        if not wait(self.gate):
            return "the sandbox did not start in time"
        if os.read(self.gate, 1) != b"r":
            return None
        ready_r, ready_w = os.pipe()
        exit_r, self.exit_w = os.pipe()
        fds = [ready_w, exit_r]
        argv = [slirp_path() or "slirp4netns", "--configure", "--mtu=65520", "--disable-host-loopback"]
        argv += ["--ready-fd", str(ready_w), "--exit-fd", str(exit_r)]
        try:
            if not as_root:
                # An unprivileged slirp4netns must first join the user namespace that owns the
                # network namespace: bubblewrap's first one, asked of the network namespace
                # itself, since the sandbox's own may already be a nested one (--disable-userns).
                owner = _owning_userns(pid)
                fds.append(owner)
                argv += ["--userns-path", f"/proc/self/fd/{owner}"]
            argv += [str(pid), "tap0"]
            self.proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=self.errors,
                stderr=self.errors,
                pass_fds=fds,
                start_new_session=True,
                env={"PATH": "/usr/bin:/bin"},
            )
        except OSError as exc:
            return f"slirp4netns does not start ({exc.strerror or exc})"
        finally:
            for fd in fds:
                os.close(fd)
        try:
            ok = wait(ready_r) and os.read(ready_r, 1) == b"1"
        finally:
            os.close(ready_r)
        if not ok:
            return f"slirp4netns did not connect the sandbox ({self.error_tail() or 'no answer in time'})"
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            os.write(self.gate, b"g")
        return None

    def error_tail(self) -> str:
        self.errors.seek(0)
        lines = self.errors.read().decode(errors="replace").strip().splitlines()
        return "; ".join(lines[-2:])

    def close(self) -> None:
        self.spawned()
        for fd in ("info_r", "gate", "exit_w"):
            if getattr(self, fd) >= 0:
                os.close(getattr(self, fd))
                setattr(self, fd, -1)
        if self.proc is not None:  # its exit-fd just closed: it ends by itself
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
            self.proc = None
        with contextlib.suppress(OSError):
            self.errors.close()
