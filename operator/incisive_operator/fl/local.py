"""The local runtime: real Flower processes on this machine's loopback addresses.

What stands in for what: on a real cluster a job's SuperLink would be a Deployment and a
Service at the hub, and a site's SuperNode a Deployment at the site running the appliance
image. On the testbed, pods on kwok nodes run no processes, so the hub operator runs the
SuperLink itself on `--fl-host` (say 127.30.200.100) and a site operator runs its
SuperNodes on its own `--fl-host` (127.30.200.1): the same binaries, flags, TLS, keys and
app pinning as in production, only the process supervisor differs.

Each process leads its own session, so it outlives an operator restart; its pid and
address are written to `process.json` in its state folder, and a restarted operator finds
it again there (checking that the pid still runs a command naming that folder, since pids
get reused). Layout under `--fl-state-dir`:

    hub/jobs/<job uid>/superlink/   SuperLink: superlink.db (--database), tls/, process.json
    hub/jobs/<job uid>/cli/         the flwr CLI's home for the Control API
    hub/jobs/<job uid>/app/         the app bundle `flwr run` ships
    hub/jobs/<job uid>/run/         metrics.jsonl and model.pt from the ServerApp
    hub/models/<sha256>.pt          the model store: final models by content
    site/<datanode>/keys/           the site's SuperNode key pair (made here, kept here)
    site/<datanode>/work/<job uid>/ one SuperNode per job: ca.pem, process.json, its log
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import shutil
import socket
import threading
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from incisive_node.fl.control import Control, ControlError
from incisive_node.fl.node_keys import NodeKeyFiles, ensure_node_keys
from incisive_node.fl.processes import (
    PortInUse,
    SuperLink,
    SuperNode,
    check_port_free,
    session_alive,
    stop_session,
)

from .fleet import Fleet
from .settings import FlSettings

RECORD = "process.json"


@dataclass(frozen=True)
class Link:
    """A job's running SuperLink."""

    address: str
    ca_cert: Path
    pid: int
    started_at: float  # time.time() when this process started
    job_dir: Path

    @property
    def ca_pem(self) -> str:
        return self.ca_cert.read_text()

    def control(self) -> Control:
        return Control(self.address, self.ca_cert, self.job_dir / "cli")

    @property
    def output_dir(self) -> Path:
        return self.job_dir / "run"


class LocalRuntime:
    def __init__(self, settings: FlSettings) -> None:
        self.settings = settings
        self._locks: dict[str, threading.Lock] = defaultdict(threading.Lock)

    # The hub's side ------------------------------------------------------------------

    def job_dir(self, job_uid: str) -> Path:
        return self.settings.state_dir / "hub" / "jobs" / job_uid

    def superlink(self, job_uid: str) -> Link:
        """The job's SuperLink, started (or restarted on its database) when not running."""
        with self._locks[job_uid]:
            running = self.running_superlink(job_uid)
            if running is not None:
                return running
            folder = self.job_dir(job_uid) / "superlink"
            previous = _read(folder)
            port = _free_port(self.settings.host, previous.get("port"))
            link = SuperLink.start(folder, host=self.settings.host, port=port)
            _write(folder, {"pid": link.process.pid, "host": link.host, "port": link.port,
                            "startedAt": time.time()})
            return self.running_superlink(job_uid) or _raise_died("superlink", folder)

    def running_superlink(self, job_uid: str) -> Link | None:
        folder = self.job_dir(job_uid) / "superlink"
        record = _read(folder)
        if not record or not session_alive(int(record["pid"]), str(folder)):
            return None
        return Link(f"{record['host']}:{record['port']}", folder / "tls" / "ca.pem",
                    int(record["pid"]), float(record["startedAt"]), self.job_dir(job_uid))

    def stop_superlink(self, job_uid: str) -> bool:
        """Stop the job's SuperLink if it runs; its database and files stay."""
        with self._locks[job_uid]:
            link = self.running_superlink(job_uid)
            if link is None:
                return False
            stop_session(link.pid)
            return True

    def register(self, job_uid: str, link: Link, public_key: str) -> int | None:
        """Register a site's SuperNode key at the job's SuperLink, once; its node id.

        The SuperLink refuses a key it already has, and its Control API does not list keys,
        so the node ids are remembered here (None when a key was registered but its id lost).
        """
        folder = self.job_dir(job_uid)
        registry_file = folder / "registered.json"
        digest = hashlib.sha256(public_key.strip().encode()).hexdigest()[:32]
        with self._locks[f"{job_uid}/registry"]:
            registry = json.loads(registry_file.read_text()) if registry_file.is_file() else {}
            if digest in registry:
                return registry[digest]
            try:
                node_id: int | None = link.control().register_supernode(public_key,
                                                                         folder / "cli" / "keys")
            except ControlError as error:
                if "already in use" not in str(error).lower():
                    raise
                node_id = None
            registry[digest] = node_id
            _atomic_write(registry_file, json.dumps(registry, sort_keys=True))
            return node_id

    def store_model(self, path: Path, sha256: str) -> str:
        """Copy a final model into the hub's model store (by content); its URI. Raises
        ValueError when the file does not have the SHA-256 the run reported. The run config
        that rebuilds its architecture (model.json beside it) goes along as <sha256>.json,
        where the annotation service looks for it (annotation/model_ref.py)."""
        store = self.settings.state_dir / "hub" / "models"
        store.mkdir(parents=True, exist_ok=True)
        target = store / f"{sha256}.pt"
        if not target.is_file() or _sha256(target) != sha256:
            if _sha256(path) != sha256:
                raise ValueError(f"{path.name} does not have the SHA-256 the run reported")
            scratch = target.with_suffix(".tmp")
            shutil.copyfile(path, scratch)
            scratch.replace(target)
        config = path.with_name("model.json")  # server_app.MODEL_CONFIG_FILE (it imports torch)
        if config.is_file() and not target.with_suffix(".json").is_file():
            scratch = target.with_suffix(".json.tmp")
            shutil.copyfile(config, scratch)
            scratch.replace(target.with_suffix(".json"))
        return target.as_uri()

    # A site's side --------------------------------------------------------------------

    def node_dir(self, datanode: str) -> Path:
        return self.settings.state_dir / "site" / datanode

    def node_keys(self, datanode: str) -> NodeKeyFiles:
        with self._locks[f"{datanode}/keys"]:
            return ensure_node_keys(self.node_dir(datanode) / "keys")

    def supernode(self, datanode: str, job_uid: str, *, site: str, fleet: Fleet, fab: str,
                  node_config: dict[str, Any]) -> int:
        """This site's SuperNode for a job, dialling `fleet.address` and running only the
        FAB `fab`: started when not running, restarted when the hub moved the SuperLink."""
        if fleet.address is None or fleet.ca_cert is None:
            raise ValueError("the hub has not named the job's SuperLink yet")
        folder = self.node_dir(datanode) / "work" / job_uid
        with self._locks[f"{datanode}/{job_uid}"]:
            record = _read(folder)
            wanted = {"fleet": fleet.address, "fab": fab, "ca": _digest(fleet.ca_cert)}
            if record and session_alive(int(record["pid"]), str(folder)):
                if all(record.get(k) == v for k, v in wanted.items()):
                    return int(record["pid"])
                stop_session(int(record["pid"]))
            folder.mkdir(parents=True, exist_ok=True)
            ca = folder / "ca.pem"
            ca.write_text(fleet.ca_cert)
            keys = self.node_keys(datanode)
            port = _free_port(self.settings.host, None)
            node = SuperNode.start(folder, site=site, superlink_address=fleet.address,
                                   ca_cert=ca, private_key=keys.private_key,
                                   allowed_fabs=[fab], node_config=node_config,
                                   host=self.settings.host, port=port)
            _write(folder, {"pid": node.process.pid, "host": self.settings.host, "port": port,
                            "startedAt": time.time(), **wanted})
            return node.process.pid

    def running_supernodes(self, datanode: str) -> dict[str, int]:
        """Job uid -> pid of this site's SuperNodes that run now."""
        found = {}
        for folder in sorted((self.node_dir(datanode) / "work").glob("*")):
            record = _read(folder)
            if record and session_alive(int(record["pid"]), str(folder)):
                found[folder.name] = int(record["pid"])
        return found

    def stop_supernode(self, datanode: str, job_uid: str) -> bool:
        folder = self.node_dir(datanode) / "work" / job_uid
        with self._locks[f"{datanode}/{job_uid}"]:
            record = _read(folder)
            if not record or not session_alive(int(record["pid"]), str(folder)):
                return False
            stop_session(int(record["pid"]))
            return True


def _read(folder: Path) -> dict[str, Any]:
    path = folder / RECORD
    try:
        return dict(json.loads(path.read_text()))
    except (OSError, ValueError):
        return {}


def _write(folder: Path, record: dict[str, Any]) -> None:
    _atomic_write(folder / RECORD, json.dumps(record, sort_keys=True))


def _atomic_write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    scratch = path.with_suffix(".tmp")
    scratch.write_text(text)
    scratch.replace(path)


def _free_port(host: str, preferred: int | None) -> int:
    """`preferred` when it is free (a restarted SuperLink keeps its address), else any."""
    if preferred:
        with contextlib.suppress(PortInUse, OSError):
            check_port_free(host, int(preferred))
            return int(preferred)
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _raise_died(name: str, folder: Path) -> Link:
    raise RuntimeError(f"the {name} in {folder} exited right after it started")
