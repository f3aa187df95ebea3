"""Run `incisive operator run` as a real process against a testbed cluster."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@dataclass
class OperatorProcess:
    argv: list[str]
    log: Path
    liveness: str
    metrics: str
    proc: subprocess.Popen | None = None

    def start(self) -> None:
        sink = self.log.open("ab")
        self.proc = subprocess.Popen(self.argv, stdout=sink, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"operator exited: {self.log.read_text()[-2000:]}")
            try:
                with urllib.request.urlopen(self.liveness, timeout=2) as response:  # noqa: S310
                    if response.status == 200:
                        return
            except OSError:
                time.sleep(0.2)
        raise RuntimeError(f"operator not live in 60 s: {self.log.read_text()[-2000:]}")

    def kill(self) -> None:
        """SIGKILL: no cleanup, as when a node dies under the operator."""
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.kill()

    def metrics_text(self) -> str:
        with urllib.request.urlopen(f"http://{self.metrics}/metrics", timeout=5) as r:
            return r.read().decode()


@contextmanager
def operator_process(
    mode: str, kubeconfig: Path, namespaces: list[str], log: Path, *extra: str
) -> Iterator[OperatorProcess]:
    liveness = f"http://127.0.0.1:{free_port()}/healthz"
    metrics = f"127.0.0.1:{free_port()}"
    argv = [sys.executable, "-m", "incisive_operator.cli", "operator", "run", "--mode", mode,
            "--kubeconfig", str(kubeconfig), "--liveness", liveness, "--metrics", metrics,
            *[arg for ns in namespaces for arg in ("--namespace", ns)], *extra]
    process = OperatorProcess(argv, log, liveness, metrics)
    process.start()
    try:
        yield process
    finally:
        process.stop()
