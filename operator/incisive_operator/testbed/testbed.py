"""A set of named clusters sharing one state folder and one loopback address block."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import signal
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from . import toolchain
from .cluster import COMPONENT_PORTS, Cluster, Progress
from .errors import TestbedError
from .processes import Managed

DEFAULT_BLOCK = 10


def default_state_dir() -> Path:
    configured = os.environ.get("INCISIVE_TESTBED_DIR")
    if configured:
        return Path(configured)
    return Path.home() / ".local" / "state" / "incisive" / "testbed"


@dataclass(frozen=True)
class ComponentStatus:
    name: str
    pid: int | None


@dataclass(frozen=True)
class ClusterStatus:
    name: str
    server: str
    kubeconfig: Path
    components: list[ComponentStatus]
    version: str | None
    ready_nodes: int

    @property
    def running(self) -> bool:
        return all(c.pid is not None for c in self.components)


class Testbed:
    __test__ = False  # a fixture target, not a pytest test class

    def __init__(
        self,
        state_dir: Path | None = None,
        block: int | None = None,
        progress: Progress = print,
    ) -> None:
        self.state_dir = Path(state_dir) if state_dir else default_state_dir()
        self.progress = progress
        self._block = block

    # --- state ----------------------------------------------------------------------------

    @property
    def block(self) -> int:
        """The second octet of every address: 127.<block>.<cluster index>.1."""
        if self._block is None:
            recorded = self._read_meta().get("block")
            env = os.environ.get("INCISIVE_TESTBED_BLOCK")
            self._block = int(recorded or env or DEFAULT_BLOCK)
        if not 1 <= self._block <= 250:
            raise TestbedError(
                f"address block {self._block} is outside 1..250",
                "choose --block N (or INCISIVE_TESTBED_BLOCK) between 1 and 250",
            )
        return self._block

    def _read_meta(self) -> dict:
        try:
            return json.loads((self.state_dir / "testbed.json").read_text())
        except (OSError, ValueError):
            return {}

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        """One `up` or `down` at a time per state folder."""
        self.state_dir.mkdir(parents=True, exist_ok=True)
        with (self.state_dir / ".lock").open("w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            yield

    def clusters(self) -> list[Cluster]:
        found = []
        for meta in sorted(self.state_dir.glob("clusters/*/cluster.json")):
            record = json.loads(meta.read_text())
            found.append(Cluster(record["name"], record["index"], self.block, meta.parent))
        return sorted(found, key=lambda c: c.index)

    def cluster(self, name: str) -> Cluster:
        for existing in self.clusters():
            if existing.name == name:
                return existing
        known = ", ".join(c.name for c in self.clusters()) or "none"
        raise TestbedError(
            f"no testbed cluster named {name!r} in {self.state_dir} (known: {known})",
            f"start it with `incisive testbed up --clusters {name}`",
        )

    def _allocate(self, names: list[str]) -> list[Cluster]:
        existing = {c.name: c for c in self.clusters()}
        used = {c.index for c in existing.values()}
        result = []
        for name in names:
            if name in existing:
                result.append(existing[name])
                continue
            index = next(i for i in range(1, 255) if i not in used)
            used.add(index)
            result.append(Cluster(name, index, self.block, self.state_dir / "clusters" / name))
        return result

    # --- commands -------------------------------------------------------------------------

    def up(self, names: list[str]) -> list[Cluster]:
        """Start the named clusters; running ones are left as they are (idempotent).

        If anything fails, every process this call started is stopped again, so a failed
        `up` leaves nothing half-started behind.
        """
        if not names:
            raise TestbedError("no clusters named", "pass --clusters hub,site-a,site-b")
        if len(set(names)) != len(names):
            raise TestbedError(f"cluster names repeat: {names}", "name each cluster once")
        tools = toolchain.ensure(self.progress)
        with self._locked():
            meta = self._read_meta()
            if meta.get("block") not in (None, self.block):
                raise TestbedError(
                    f"{self.state_dir} already holds clusters on block {meta['block']}",
                    f"run `incisive testbed down` first, or use block {meta['block']}",
                )
            clusters = self._allocate(names)
            for cluster in clusters:
                cluster.check_ports()
            (self.state_dir / "testbed.json").write_text(json.dumps({"block": self.block}))
            started: list[Managed] = []
            try:
                for cluster in clusters:
                    cluster.prepare(tools)
                # Clusters start side by side: each waits mostly on its own apiserver.
                with ThreadPoolExecutor(max_workers=len(clusters)) as pool:
                    futures = [
                        pool.submit(c.start, tools, started, self.progress) for c in clusters
                    ]
                    for future in futures:
                        future.result()
            except BaseException:
                for managed in reversed(started):
                    managed.stop()
                raise
        return clusters

    def down(self, keep: bool = False) -> list[str]:
        """Stop every process of every cluster; remove the state unless `keep`."""
        with self._locked():
            clusters = self.clusters()
            for cluster in clusters:
                cluster.stop()
            self._stop_strays()
            if not keep:
                shutil.rmtree(self.state_dir / "clusters", ignore_errors=True)
                (self.state_dir / "testbed.json").unlink(missing_ok=True)
        return [c.name for c in clusters]

    def _stop_strays(self) -> None:
        """Stop processes of clusters whose folders lost their cluster.json (interrupted up),
        then whatever still runs from a cluster's folder: processes the operators started
        themselves (the Flower SuperLink and SuperNodes of fl/local.py, each in its own
        session so that it outlives an operator restart) have no pidfile of ours."""
        for pidfile in self.state_dir.glob("clusters/*/*.pid"):
            Managed(pidfile.stem, pidfile.parent).stop()
        folder = str(self.state_dir / "clusters") + os.sep
        for sig in (signal.SIGTERM, signal.SIGKILL):
            found = _processes_mentioning(folder)
            for pid in found:
                # A session led by one of them goes whole (Flower's children name no folder);
                # anything else (someone's `tail -f` of a log) only by itself.
                session = _session_of(pid)
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    if session in found and session != os.getsid(0):
                        os.killpg(session, sig)
                    else:
                        os.kill(pid, sig)
            deadline = time.monotonic() + 10
            while _processes_mentioning(folder) and time.monotonic() < deadline:
                time.sleep(0.2)

    def status(self) -> list[ClusterStatus]:
        result = []
        for cluster in self.clusters():
            components = [
                ComponentStatus(name, cluster.component(name).pid()) for name in COMPONENT_PORTS
            ]
            version, ready = None, 0
            if components[1].pid is not None:
                with contextlib.suppress(OSError, ValueError, KeyError):
                    version = cluster.version()
                    ready = len(cluster.ready_nodes())
            result.append(
                ClusterStatus(cluster.name, cluster.server, cluster.kubeconfig, components,
                              version, ready)
            )
        return result

    def kubeconfig(self, name: str) -> Path:
        return self.cluster(name).kubeconfig


def _processes_mentioning(text: str) -> list[int]:
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) == os.getpid():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            state = (proc / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if text in cmdline and state != "Z":
            found.append(int(proc.name))
    return found


def _session_of(pid: int) -> int | None:
    try:
        return os.getsid(pid)
    except OSError:
        return None
