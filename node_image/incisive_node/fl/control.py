"""The SuperLink's Control API, through the `flwr` CLI: register SuperNodes, start runs,
read their status, and wait for them while following the run's metrics.

The CLI is Flower's supported client of the Control API; it is run with `--format json`
and its own FLWR_HOME (a config.toml naming this SuperLink and the CA to trust), so nothing
touches the user's ~/.flwr.
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
        self.home = home
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

    def register_supernode(self, public_key: str, scratch: Path) -> int:
        """Register a site's SuperNode public key (an OpenSSH line); return its node id."""
        scratch.mkdir(parents=True, exist_ok=True)
        digest = hashlib.sha256(public_key.strip().encode()).hexdigest()[:16]
        key_file = scratch / f"supernode-{digest}.pub"
        key_file.write_text(public_key.strip() + "\n")
        return int(self._cli("supernode", "register", str(key_file), CONNECTION)["node-id"])

    def supernodes(self) -> list[dict[str, Any]]:
        return list(self._cli("supernode", "list", CONNECTION)["nodes"])

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
        output_dir.mkdir(parents=True, exist_ok=True)
        run_config = dict(config.to_run_config(), **{"output-dir": str(output_dir)})
        overrides = output_dir / "run-config.toml"
        overrides.write_bytes(tomli_w.dumps(run_config).encode())
        reply = self._cli("run", str(app_dir), CONNECTION, "--run-config", str(overrides))
        return RunHandle(int(reply["run-id"]), output_dir)

    def status(self, run_id: int) -> RunStatus:
        reply = self._cli("list", "--run-id", str(run_id), CONNECTION)
        return _status(reply["runs"][0])

    def runs(self) -> list[RunStatus]:
        return [_status(run) for run in self._cli("list", CONNECTION)["runs"]]

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
        `status_every_s`, and every `poll_s` once the ServerApp reported its end: each
        status question is a `flwr` CLI process costing about a CPU-second, which a tight
        poll would take from the sites' training on a small machine."""
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


def _status(run: dict[str, Any]) -> RunStatus:
    traffic = run.get("network-traffic", {})
    return RunStatus(
        int(run["run-id"]),
        str(run["status"]),
        str(run.get("status-details", "")),
        int(traffic.get("inbound-bytes", 0)),
        int(traffic.get("outbound-bytes", 0)),
    )


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
