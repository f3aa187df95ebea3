"""The SuperLink's Control API: register SuperNodes, start runs, read their status, and
wait for them while following the run's metrics.

Registering a SuperNode and stopping a run go through the `flwr` CLI, Flower's supported
client, run with `--format json` and its own FLWR_HOME (a config.toml naming this SuperLink
and the CA to trust), so nothing touches the user's ~/.flwr. Starting a run and every read
(runs, SuperNodes) are asked in this process with Flower's own Control API client, the one
the CLI uses: a CLI process costs about a CPU-second, a run's start waits for it, and a
run's status is asked every few seconds for as long as it trains.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import tomli_w

from incisive_node.fl.config import TrainingConfig
from incisive_node.fl.metrics import METRICS_FILE, Event, read_events
from incisive_node.fl.processes import FlowerProcessError, flwr_executable

CONNECTION = "hub"
CLI_TIMEOUT_S = 120.0
STATUS_EVERY_S = 5.0  # Control.wait: how often Flower's run status is asked mid-run


class SuperLinkUnavailable(FlowerProcessError):
    pass


class ControlError(FlowerProcessError):
    pass


class RunFailed(FlowerProcessError):
    def __init__(self, result: RunResult) -> None:
        super().__init__(f"run {result.run_id} {result.status}: {result.reason}")
        self.result = result


@dataclass(frozen=True)
class RunStatus:
    run_id: int
    status: str  # Flower's: pending, starting, running, finished:completed|failed|stopped
    details: str
    inbound_bytes: int
    outbound_bytes: int

    @property
    def finished(self) -> bool:
        return self.status.startswith("finished")


@dataclass(frozen=True)
class RunHandle:
    run_id: int
    output_dir: Path

    @property
    def metrics_path(self) -> Path:
        return self.output_dir / METRICS_FILE


@dataclass(frozen=True)
class RunResult:
    run_id: int
    status: str
    reason: str
    events: list[Event] = field(default_factory=list)
    model_path: Path | None = None
    model_sha256: str | None = None
    inbound_bytes: int = 0
    outbound_bytes: int = 0

    @property
    def succeeded(self) -> bool:
        return self.status == "finished:completed" and self.model_sha256 is not None

    @property
    def rounds(self) -> list[Event]:
        return [e for e in self.events if e["event"] == "round"]


class Control:
    def __init__(self, address: str, ca_cert: Path, home: Path) -> None:
        self.address = address
        self.ca_cert = ca_cert
        self.home = home
        self._client: Any = None  # Flower's ControlHttpClient, made on first use
        home.mkdir(parents=True, exist_ok=True)
        config = {
            "superlink": {
                "default": CONNECTION,
                CONNECTION: {"address": address, "root-certificates": str(ca_cert)},
            }
        }
        (home / "config.toml").write_bytes(tomli_w.dumps(config).encode())

    def _cli(self, *args: str) -> dict[str, Any]:
        env = dict(os.environ, FLWR_HOME=str(self.home), COLUMNS="200")
        try:
            done = subprocess.run(
                [flwr_executable(), *args, "--format", "json"],
                capture_output=True,
                env=env,
                timeout=CLI_TIMEOUT_S,
                check=False,
            )
        except subprocess.TimeoutExpired as error:
            raise SuperLinkUnavailable(f"SuperLink {self.address} did not answer") from error
        try:
            reply = json.loads(done.stdout)
        except json.JSONDecodeError as error:
            raise ControlError(
                f"flwr {args[0]} gave no JSON (exit {done.returncode}):"
                f" {done.stderr.decode(errors='replace')[-500:]}"
            ) from error
        if not reply.get("success"):
            message = str(reply.get("error-message", "unknown error"))
            if "unavailable" in message.lower():
                raise SuperLinkUnavailable(f"SuperLink {self.address} is unavailable")
            raise ControlError(f"flwr {' '.join(args[:2])}: {message.strip()}")
        return reply

    def _ask(self, method: str, request: Any) -> Any:
        """One Control API call in this process (see the module's docstring)."""
        if self._client is None:
            from flwr.cli.cli_client_interceptor import CliClientHttpInterceptor
            from flwr.supercore.control import ControlHttpClient
            from flwr.supercore.interceptors import RuntimeVersionHttpInterceptor

            self._client = ControlHttpClient.from_server_address(
                self.address,
                insecure=False,
                root_certificates=self.ca_cert.read_bytes(),
                interceptors=[CliClientHttpInterceptor(),
                              RuntimeVersionHttpInterceptor(component_name="flwr CLI")],
            )
        try:
            return getattr(self._client, method)(request)
        except httpx.TransportError as error:
            raise SuperLinkUnavailable(f"SuperLink {self.address} is unavailable") from error
        except httpx.HTTPStatusError as error:
            raise ControlError(
                f"{method}: HTTP {error.response.status_code}"
                f" {error.response.text.strip()[:300]}"
            ) from error

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    def __enter__(self) -> Control:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def register_supernode(self, public_key: str, scratch: Path) -> int:
        """Register a site's SuperNode public key (an OpenSSH line); return its node id."""
        scratch.mkdir(parents=True, exist_ok=True)
        digest = hashlib.sha256(public_key.strip().encode()).hexdigest()[:16]
        key_file = scratch / f"supernode-{digest}.pub"
        key_file.write_text(public_key.strip() + "\n")
        return int(self._cli("supernode", "register", str(key_file), CONNECTION)["node-id"])

    def supernodes(self) -> list[dict[str, Any]]:
        """The registered SuperNodes: [{"node-id": "...", "status": "online" | ...}]."""
        from flwr.proto.control_pb2 import ListNodesRequest

        reply = self._ask("ListNodes", ListNodesRequest())
        return [
            {"node-id": str(node.node_id), "status": node.status}
            for node in reply.nodes_info
            if node.status != "deleted"
        ]

    def wait_for_supernodes(self, count: int, timeout_s: float = 60.0) -> None:
        deadline = time.monotonic() + timeout_s
        while True:
            online = [n for n in self.supernodes() if n.get("status") == "online"]
            if len(online) >= count:
                return
            if time.monotonic() >= deadline:
                raise ControlError(f"{len(online)} of {count} SuperNodes online after {timeout_s}s")
            time.sleep(0.5)

    def start_run(self, app_dir: Path, config: TrainingConfig, output_dir: Path) -> RunHandle:
        """Submit a run of the app at `app_dir`; the ServerApp writes into `output_dir`."""
        from flwr.cli.build import build_fab_from_disk
        from flwr.common.serde import fab_to_proto, user_config_to_proto
        from flwr.proto.control_pb2 import StartRunRequest
        from flwr.supercore.fab import Fab

        output_dir.mkdir(parents=True, exist_ok=True)
        run_config = dict(config.to_run_config(), **{"output-dir": str(output_dir)})
        fab = build_fab_from_disk(app_dir)  # as `flwr run` does: the same bytes, the same hash
        reply = self._ask("StartRun", StartRunRequest(
            fab=fab_to_proto(Fab(hashlib.sha256(fab).hexdigest(), fab, {})),
            override_config=user_config_to_proto(run_config),
        ))
        if not reply.HasField("run_id"):
            raise ControlError(f"SuperLink {self.address} started no run")
        return RunHandle(int(reply.run_id), output_dir)

    def status(self, run_id: int) -> RunStatus:
        runs = self._runs(run_id)
        if not runs:
            raise ControlError(f"run {run_id} is unknown to SuperLink {self.address}")
        return runs[0]

    def runs(self) -> list[RunStatus]:
        return self._runs(None)

    def _runs(self, run_id: int | None) -> list[RunStatus]:
        from flwr.common.serde import run_from_proto
        from flwr.proto.control_pb2 import ListRunsRequest

        request = ListRunsRequest() if run_id is None else ListRunsRequest(run_id=run_id)
        reply = self._ask("ListRuns", request)
        return [_status(run_from_proto(proto)) for proto in reply.run_dict.values()]

    def stop_run(self, run_id: int) -> None:
        self._cli("stop", str(run_id), CONNECTION)

    def wait(
        self,
        handle: RunHandle,
        *,
        timeout_s: float = 1800.0,
        on_event: Callable[[Event], None] | None = None,
        poll_s: float = 1.0,
        status_every_s: float = STATUS_EVERY_S,
    ) -> RunResult:
        """Wait until the run finishes, calling `on_event` for each new metrics event.

        The metrics file is read every `poll_s`; Flower's own status only every
        `status_every_s`, and every `poll_s` once the ServerApp reported its end."""
        deadline = time.monotonic() + timeout_s
        seen = 0
        asked_at = -math.inf
        while True:
            events = read_events(handle.metrics_path)
            if on_event is not None:
                for event in events[seen:]:
                    on_event(event)
            seen = len(events)
            ended = any(e["event"] in ("completed", "failed") for e in events)
            now = time.monotonic()
            if ended or now - asked_at >= status_every_s:
                status = self.status(handle.run_id)
                asked_at = now
                if status.finished:
                    break
            if now >= deadline:
                raise ControlError(f"run {handle.run_id} still {status.status} after {timeout_s}s")
            time.sleep(poll_s)
        return _result(handle, status, read_events(handle.metrics_path))


def _status(run: Any) -> RunStatus:
    """A RunStatus from Flower's Run, its status spelt as `flwr list` does."""
    status = run.status.status
    if run.status.sub_status:
        status = f"{status}:{run.status.sub_status}"
    return RunStatus(run.run_id, status, run.status.details, run.bytes_recv, run.bytes_sent)


def _result(handle: RunHandle, status: RunStatus, events: list[Event]) -> RunResult:
    completed = next((e for e in events if e["event"] == "completed"), None)
    failed = next((e for e in events if e["event"] == "failed"), None)
    if failed is not None:
        reason = str(failed["reason"])
    elif completed is None:
        reason = status.details or "the ServerApp ended without a result"
    else:
        reason = ""
    return RunResult(
        run_id=handle.run_id,
        status=status.status,
        reason=reason,
        events=events,
        model_path=Path(completed["model_path"]) if completed else None,
        model_sha256=str(completed["model_sha256"]) if completed else None,
        inbound_bytes=status.inbound_bytes,
        outbound_bytes=status.outbound_bytes,
    )
