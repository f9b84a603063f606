"""No network for any Python process a test starts: Ray's workers and actors, CLI runs, probes.

A test puts this folder first on ``PYTHONPATH`` and sets ``SALDATA_NO_NETWORK`` to a log
file; every Python process started with that environment (Ray's raylet starts its workers with
it) imports this module at startup (``site`` imports ``sitecustomize``), and from then on:

- a socket connect to an IP address that is not this machine's (loopback, or one of its own
  interfaces' addresses) raises ``OSError(ENETUNREACH)``, as on a node with no route out;
  unix sockets and other non-IP families are left alone (Ray talks over them and loopback);
- a name lookup of a name other than this machine's raises ``socket.gaierror``, as on a node
  without a resolver for it;

and each refusal is appended to the log as one JSON line (pid, command line, kind, address, the
calling frames), so a refusal that a library catches and hides (telemetry, "is this a Mistral
model?" lookups) still reaches the test. Each process also logs one "armed" line, so a test can
tell which processes ran guarded. Code that does not go through Python's ``socket`` module (C and
Rust extensions with their own network stack) is not covered.

Without ``SALDATA_NO_NETWORK`` it does nothing but run the ``sitecustomize`` it shadows, if any
(a Debian or Ubuntu Python has one), as it does when armed.
"""

from __future__ import annotations

import os

LOG_VARIABLE = "SALDATA_NO_NETWORK"


def _command() -> str:
    """This process's command line (a Ray worker's shows its task or actor once it runs one)."""
    try:
        with open("/proc/self/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace").strip()[:300]
    except OSError:
        import sys

        return " ".join(sys.argv)[:300]


def _write(log_path: str, kind: str, target: str, stack: list[str]) -> None:
    import json

    line = {"pid": os.getpid(), "command": _command(), "kind": kind, "target": target, "stack": stack}
    fd = os.open(log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, (json.dumps(line) + "\n").encode())  # one write: concurrent processes' lines never interleave
    finally:
        os.close(fd)


def _install(log_path: str) -> None:
    import contextlib
    import errno
    import ipaddress
    import socket
    import traceback

    real_getaddrinfo = socket.getaddrinfo
    local_names = {"localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback"}
    with contextlib.suppress(OSError):
        local_names.add(socket.gethostname().lower())
    own_addresses: set = set()

    def this_machine(ip) -> bool:
        if ip.is_loopback or (getattr(ip, "ipv4_mapped", None) and ip.ipv4_mapped.is_loopback):
            return True
        if not own_addresses:  # the machine's own interfaces: traffic to them never leaves it
            import psutil

            for entries in psutil.net_if_addrs().values():
                for entry in entries:
                    if entry.family in (socket.AF_INET, socket.AF_INET6):
                        with contextlib.suppress(ValueError):
                            own_addresses.add(ipaddress.ip_address(entry.address.split("%")[0]))
        return ip in own_addresses

    def record(kind: str, target, skip: int) -> None:
        frames = traceback.extract_stack()[: -1 - skip]  # without this function and the guard's own frames
        _write(log_path, kind, repr(target)[:200], [f"{f.filename}:{f.lineno} {f.name}" for f in frames[-25:]])

    def refused(kind: str, target) -> OSError:
        record(kind, target, 2)
        return OSError(errno.ENETUNREACH, f"Network is unreachable (no network in this test: {kind} {target!r})")

    def ip_of(host):
        """``host`` as an IP address, or None for a name."""
        try:
            return ipaddress.ip_address(str(host).split("%")[0])
        except ValueError:
            return None

    def leaves_machine(family, address) -> bool:
        if family not in (socket.AF_INET, socket.AF_INET6) or not isinstance(address, tuple):
            return False
        ip = ip_of(address[0])
        if ip is not None:
            return not this_machine(ip)
        if str(address[0]).lower() not in local_names:
            return True
        # a name of this machine: look it up locally and check where it points
        return not all(this_machine(ip_of(info[4][0])) for info in real_getaddrinfo(address[0], None))

    real_connect, real_connect_ex = socket.socket.connect, socket.socket.connect_ex

    def connect(self, address):
        if leaves_machine(self.family, address):
            raise refused("connect", address)
        return real_connect(self, address)

    def connect_ex(self, address):
        if leaves_machine(self.family, address):
            refused("connect", address)
            return errno.ENETUNREACH
        return real_connect_ex(self, address)

    def getaddrinfo(host, *args, **kwargs):
        if host is not None:
            name = host.decode() if isinstance(host, bytes) else str(host)
            if ip_of(name) is None and name.lower() not in local_names:
                record("getaddrinfo", name, 1)
                raise socket.gaierror(socket.EAI_NONAME, f"Name or service not known (no network in this test: {name})")
        return real_getaddrinfo(host, *args, **kwargs)

    socket.socket.connect = connect
    socket.socket.connect_ex = connect_ex
    socket.getaddrinfo = getaddrinfo  # socket.create_connection looks names up through it, then connects


def _run_shadowed() -> None:
    """Run the next ``sitecustomize`` on sys.path, the one this module hides."""
    import importlib.machinery
    import importlib.util
    import sys

    here = os.path.dirname(os.path.abspath(__file__))
    path = [p for p in sys.path if os.path.abspath(p or os.curdir) != here]
    spec = importlib.machinery.PathFinder.find_spec("sitecustomize", path)
    if spec is not None and spec.loader is not None:
        spec.loader.exec_module(importlib.util.module_from_spec(spec))


_run_shadowed()
if os.environ.get(LOG_VARIABLE):
    _install(os.environ[LOG_VARIABLE])
    _write(os.environ[LOG_VARIABLE], "armed", "", [])  # so a test can tell which processes ran guarded
