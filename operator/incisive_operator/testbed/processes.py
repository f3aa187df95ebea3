"""Background processes that outlive the command that started them, tracked by pidfile.

A pidfile records the pid and the kernel's start time of the process, so a recycled pid
is never mistaken for ours and never killed. Each process leads its own session, so
stopping it stops anything it spawned.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Managed:
    """One named process of a cluster: where its pidfile and log live."""

    name: str
    folder: Path

    @property
    def pidfile(self) -> Path:
        return self.folder / f"{self.name}.pid"

    @property
    def log(self) -> Path:
        return self.folder / "logs" / f"{self.name}.log"

    def pid(self) -> int | None:
        """The pid if our process is alive, else None (a stale pidfile is removed)."""
        try:
            record = json.loads(self.pidfile.read_text())
        except (OSError, ValueError):
            return None
        pid = record.get("pid")
        if isinstance(pid, int) and _start_time(pid) == record.get("start"):
            return pid
        self.pidfile.unlink(missing_ok=True)
        return None

    def start(self, argv: list[str], env: dict[str, str] | None = None) -> int:
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with self.log.open("ab") as sink:
            proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=sink,
                stderr=subprocess.STDOUT,
                cwd=self.folder,
                env=env,
                start_new_session=True,
            )
        self.pidfile.write_text(json.dumps({"pid": proc.pid, "start": _start_time(proc.pid)}))
        return proc.pid

    def stop(self, timeout: float = 15.0) -> None:
        pid = self.pid()
        if pid is None:
            return
        _signal_group(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and _alive(pid):
            time.sleep(0.1)
        if _alive(pid):
            _signal_group(pid, signal.SIGKILL)
            while _alive(pid):
                time.sleep(0.05)
        self.pidfile.unlink(missing_ok=True)

    def log_tail(self, lines: int = 12) -> str:
        try:
            text = self.log.read_text(errors="replace").splitlines()
        except OSError:
            return "(no log)"
        return "\n".join(f"    {line}" for line in text[-lines:])


def _stat_fields(pid: int) -> list[str] | None:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) may hold spaces; everything after its ')' is fixed.
    return raw[raw.rindex(")") + 2 :].split()


def _start_time(pid: int) -> str | None:
    fields = _stat_fields(pid)
    return fields[19] if fields else None


def _alive(pid: int) -> bool:
    fields = _stat_fields(pid)
    if fields is None:
        return False
    if fields[0] == "Z":  # exited; reap it if it is our own child
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)
        return False
    return True


def _signal_group(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.kill(pid, sig)


def port_in_use(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                return True
            raise
    return False


def port_owner(host: str, port: int) -> str:
    """Best effort: 'pid N (command)' of whoever listens on host:port, for error messages."""
    inodes = set()
    wanted_port = f"{port:04X}"
    packed = socket.inet_aton(host)
    wanted_hosts = {packed[::-1].hex().upper(), "00000000"}
    with contextlib.suppress(OSError):
        for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
            fields = line.split()
            addr, hexport = fields[1].split(":")
            if hexport == wanted_port and addr in wanted_hosts and fields[3] == "0A":
                inodes.add(fields[9])
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            for fd in (proc / "fd").iterdir():
                target = os.readlink(fd)
                if target.startswith("socket:[") and target[8:-1] in inodes:
                    cmd = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode()
                    return f"pid {proc.name} ({cmd.strip()[:80]})"
    return "another process"
