"""Start and stop the real Flower processes: a SuperLink at the hub, SuperNodes at sites.

Every server here listens on 127.0.0.0/8 (the testbed's stand-in for the hub's and the
sites' hosts). Each process gets its own session, so stopping it also stops the SuperExec
and app processes Flower starts under it. Logs go to files in the process's state folder.

* SuperLink: `--database` (runs and registered SuperNodes survive a restart), TLS from
  tls.py, `--enable-supernode-auth` (only SuperNodes whose public keys were registered
  through the Control API may connect). One HTTPS port carries Fleet, Control and Runtime.
* SuperNode: dials out to the SuperLink with TLS, signs its requests with the site's key
  (node_keys.py), serves its own Runtime API on the site's address, and runs ClientApps
  only for FABs the site pinned (guard.py).
* Both run beside a warm server (warm.py) that starts their app tasks as forks of a process
  that already imported torch and the app, instead of cold processes.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from incisive_node.fl import guard, pacing, warm
from incisive_node.fl.tls import TlsFiles, write_superlink_tls

STARTUP_TIMEOUT_S = 60.0
# SuperExec looks for tasks this often (Flower's default is 1 s); a quicker poll shortens
# every round by up to a second on each side.
TASK_POLL_ENV = {"FLWR_SUPEREXEC_TASK_POLL_INTERVAL": "0.2"}


class FlowerProcessError(RuntimeError):
    pass


class PortInUse(FlowerProcessError):
    pass


class ProcessDied(FlowerProcessError):
    pass


def _check_loopback(host: str) -> None:
    if not host.startswith("127."):
        raise ValueError(f"{host}: Flower servers here listen on 127.0.0.0/8 only")


def check_port_free(host: str, port: int) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        # As the servers themselves do: a port whose old connections linger in TIME_WAIT
        # is free; one with a listener is not.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as error:
            if error.errno == errno.EADDRINUSE:
                raise PortInUse(f"{host}:{port} is already in use") from error
            raise


def _bin(name: str) -> str:
    # The entry points live beside the interpreter running us (the appliance's venv).
    local = Path(sys.executable).parent / name
    return str(local) if local.exists() else name


@dataclass
class _Process:
    name: str
    command: list[str]
    log_path: Path
    env: dict[str, str]
    popen: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    def start(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            self.popen = subprocess.Popen(
                self.command,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=self.env,
                start_new_session=True,
            )

    @property
    def pid(self) -> int:
        if self.popen is None:
            raise FlowerProcessError(f"{self.name} was never started")
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def log_tail(self, lines: int = 15) -> str:
        if not self.log_path.is_file():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def raise_if_dead(self) -> None:
        if self.popen is not None and self.popen.poll() is not None:
            tail = self.log_tail()
            if "address already in use" in tail.lower():
                raise PortInUse(f"{self.name}: address already in use")
            raise ProcessDied(
                f"{self.name} exited with code {self.popen.returncode}; log {self.log_path}:"
                f"\n{tail}"
            )

    def stop(self, timeout_s: float = 10.0) -> None:
        """SIGTERM to the whole session (Flower's children too), SIGKILL if it lingers."""
        if self.popen is None:
            return
        self._signal_group(signal.SIGTERM)
        try:
            self.popen.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self._signal_group(signal.SIGKILL)
            self.popen.wait(timeout_s)
        self._signal_group(signal.SIGKILL)  # children that outlived their parent

    def kill(self) -> None:
        """SIGKILL, as a crash or a pulled cable would: no goodbye to the SuperLink."""
        if self.popen is None:
            return
        self._signal_group(signal.SIGKILL)
        self.popen.wait(10)

    def _signal_group(self, sig: int) -> None:
        if self.popen is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.popen.pid, sig)


def _wait_listening(process: _Process, host: str, port: int, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        process.raise_if_dead()
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            probe.settimeout(0.5)
            if probe.connect_ex((host, port)) == 0:
                return
        time.sleep(0.1)
    raise FlowerProcessError(f"{process.name} did not listen on {host}:{port} in {timeout_s}s")


def _base_env(flwr_home: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["FLWR_HOME"] = str(flwr_home)
    env.update(TASK_POLL_ENV)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    return env


def _app_bin(role: str, state_dir: Path, env: dict[str, str]) -> None:
    """Put our folder first on the PATH Flower's processes search: it holds the launcher of
    the role's app tasks (warm.py) and a `flower-superexec` with paced polls (pacing.py)."""
    folder = state_dir / "app-bin"
    warm.write_launcher(folder, role, state_dir / warm.SOCKET_NAME)
    pacing.write_superexec(folder)
    env["PATH"] = f"{folder}{os.pathsep}{env['PATH']}"


def _warm_prefix(role: str, state_dir: Path) -> list[str]:
    """Run the process beside a warm server for its app tasks (warm.py): the command starts
    the server, then execs. Without it the launcher finds no server and runs tasks cold."""
    return [sys.executable, "-m", "incisive_node.fl.warm", "--role", role,
            "--socket", str(state_dir / warm.SOCKET_NAME), "--"]


@dataclass
class SuperLink:
    """A running `flower-superlink`; `address` is its one HTTPS port."""

    state_dir: Path
    host: str
    port: int
    tls: TlsFiles
    process: _Process

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def database(self) -> Path:
        return self.state_dir / "superlink.db"

    @classmethod
    def start(
        cls,
        state_dir: Path,
        *,
        host: str = "127.0.0.1",
        port: int = 9093,
        tls: TlsFiles | None = None,
        timeout_s: float = STARTUP_TIMEOUT_S,
        warm: bool = True,
    ) -> SuperLink:
        """Start (or restart, on the same state_dir and its database) a SuperLink."""
        _check_loopback(host)
        check_port_free(host, port)
        state_dir.mkdir(parents=True, exist_ok=True)
        if tls is None:
            # A restart keeps the certificate the SuperNodes already trust.
            folder = state_dir / "tls"
            existing = TlsFiles(folder / "ca.pem", folder / "server.pem", folder / "server.key")
            reuse = existing.server_key.is_file()
            tls = existing if reuse else write_superlink_tls(folder, [host])
        command = [
            _bin("flower-superlink"),
            "--ssl-ca-certfile", str(tls.ca_cert),
            "--ssl-certfile", str(tls.server_cert),
            "--ssl-keyfile", str(tls.server_key),
            "--database", str(state_dir / "superlink.db"),
            "--enable-supernode-auth",
            # Apps run on the appliance image's own packages: nothing is installed at run time.
            "--disable-runtime-dependency-installation",
            "--host", host,
            "--port", str(port),
        ]
        env = _base_env(state_dir / "flwr-home")
        _app_bin("serverapp", state_dir, env)
        if warm:
            command = [*_warm_prefix("serverapp", state_dir), *command]
        process = _Process("superlink", command, state_dir / "superlink.log", env)
        process.start()
        link = cls(state_dir, host, port, tls, process)
        try:
            _wait_listening(process, host, port, timeout_s)
        except BaseException:
            process.stop()
            raise
        return link

    def alive(self) -> bool:
        return self.process.alive()

    def stop(self) -> None:
        self.process.stop()


@dataclass
class SuperNode:
    """A running `flower-supernode` for one site."""

    site: str
    state_dir: Path
    process: _Process

    @classmethod
    def start(
        cls,
        state_dir: Path,
        *,
        site: str,
        superlink_address: str,
        ca_cert: Path,
        private_key: Path,
        allowed_fabs: list[str],
        node_config: dict[str, Any],
        host: str = "127.0.0.1",
        port: int = 9094,
        timeout_s: float = STARTUP_TIMEOUT_S,
        warm: bool = True,
    ) -> SuperNode:
        """Start a SuperNode that dials out to `superlink_address`.

        `allowed_fabs` are the SHA-256 digests of the bundles this site verified; the
        SuperNode refuses every other app. `host:port` is the SuperNode's own Runtime API
        (its ClientApps connect there), on the site's loopback address. `warm=False` runs
        every ClientApp as a cold process, as Flower does (for comparison).
        """
        _check_loopback(host)
        check_port_free(host, port)
        if not allowed_fabs:
            raise ValueError("a SuperNode needs at least one verified app to run")
        state_dir.mkdir(parents=True, exist_ok=True)
        env = _base_env(state_dir / "flwr-home")
        env[guard.ALLOWED_ENV] = ",".join(allowed_fabs)
        # Warm or cold, the launcher runs the guard's runner: the FAB check is the same.
        _app_bin("clientapp", state_dir, env)
        command = [
            *(_warm_prefix("clientapp", state_dir) if warm else []),
            sys.executable, "-m", "incisive_node.fl.pacing", "supernode",
            "--superlink", superlink_address,
            "--root-certificates", str(ca_cert),
            "--auth-supernode-private-key", str(private_key),
            "--host", host,
            "--port", str(port),
            "--node-config", format_node_config({"site": site, **node_config}),
        ]
        process = _Process(f"supernode {site}", command, state_dir / "supernode.log", env)
        process.start()
        node = cls(site, state_dir, process)
        try:
            _wait_listening(process, host, port, timeout_s)
        except BaseException:
            process.stop()
            raise
        return node

    def alive(self) -> bool:
        return self.process.alive()

    def stop(self) -> None:
        self.process.stop()

    def kill(self) -> None:
        self.process.kill()


def session_alive(pid: int, marker: str) -> bool:
    """Whether process `pid` runs and its command line names `marker` (its state folder).

    For a process found again by a pid file (after the caller restarted): the pid may have
    been reused since by something unrelated, hence the marker. A zombie counts as gone
    (and is reaped when it is our own child).
    """
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    if stat.rsplit(")", 1)[-1].split()[0] in ("Z", "X"):
        _reap(pid)
        return False
    return marker.encode() in cmdline


def stop_session(pid: int, timeout_s: float = 10.0) -> None:
    """Stop a process started by `_Process` (it leads its own session) and its children:
    SIGTERM to the group, SIGKILL if it lingers. Works for processes this interpreter did
    not start."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, sig)
        if _wait_gone(pid, timeout_s):
            break
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)  # children that outlived their leader


def _wait_gone(pid: int, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while True:
        _reap(pid)
        if not Path(f"/proc/{pid}").exists() or _is_zombie(pid):
            _reap(pid)
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.1)


def _is_zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[-1].split()[0] in ("Z", "X")
    except OSError:
        return False


def _reap(pid: int) -> None:
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)


def format_node_config(values: dict[str, Any]) -> str:
    """Flower's `--node-config` syntax: space-separated key=value, TOML values."""
    parts = []
    for key, value in values.items():
        if not key.replace("-", "").isalnum():
            raise ValueError(f"node config key {key!r}: letters, digits and '-' only")
        if isinstance(value, bool):
            text = "true" if value else "false"
        elif isinstance(value, int | float):
            text = repr(value)
        else:
            if any(c in str(value) for c in "\"\\ \n"):
                raise ValueError(f"node config value for {key!r} may not contain quotes or spaces")
            text = f'"{value}"'
        parts.append(f"{key}={text}")
    return " ".join(parts)


def flwr_executable() -> str:
    found = shutil.which("flwr", path=str(Path(sys.executable).parent))
    return found or "flwr"
