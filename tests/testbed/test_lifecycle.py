"""`up` is idempotent, a failed `up` leaves nothing running, `down` leaves no process."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from incisive_operator.testbed import Testbed, TestbedError
from incisive_operator.testbed.cluster import COMPONENT_PORTS, Cluster

from ..conftest import TEST_BLOCK

pytestmark = pytest.mark.cluster
BLOCK = TEST_BLOCK + 1  # apart from the session's testbed


def processes_mentioning(text: str) -> list[str]:
    """Command lines of live processes whose command line mentions `text`."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) == os.getpid():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            state = (proc / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if text in cmdline and state != "Z":
            found.append(f"{proc.name}: {cmdline[:120]}")
    return found


@pytest.fixture
def bed(tmp_path: Path) -> Iterator[Testbed]:
    testbed = Testbed(tmp_path / "bed", block=BLOCK, progress=lambda _: None)
    try:
        yield testbed
    finally:
        testbed.down()
        assert processes_mentioning(str(tmp_path)) == []


def pids(cluster: Cluster) -> dict[str, int | None]:
    return {name: cluster.component(name).pid() for name in COMPONENT_PORTS}


def test_up_twice_is_idempotent_and_down_leaves_no_process(bed: Testbed, tmp_path: Path) -> None:
    first = bed.up(["hub"])[0]
    before = pids(first)
    assert all(before.values())

    started = time.monotonic()
    second = bed.up(["hub"])[0]
    assert pids(second) == before, "a second up restarted running processes"
    assert time.monotonic() - started < 30
    assert second.server == first.server

    # A component that died is started again by the next up; the others are untouched
    # (an apiserver restart would also restart the controllers: see Cluster.start).
    second.component("kube-scheduler").stop()
    healed = pids(bed.up(["hub"])[0])
    assert healed["kube-scheduler"] not in (None, before["kube-scheduler"])
    assert {k: v for k, v in healed.items() if k != "kube-scheduler"} == {
        k: v for k, v in before.items() if k != "kube-scheduler"
    }

    assert bed.down() == ["hub"]
    assert processes_mentioning(str(tmp_path)) == []
    for pid in healed.values():
        assert not Path(f"/proc/{pid}").exists() or "Z" in Path(f"/proc/{pid}/stat").read_text()
    assert bed.status() == []


def test_a_port_already_taken_is_named_and_nothing_starts(bed: Testbed, tmp_path: Path) -> None:
    address = f"127.{BLOCK}.1.1"
    with socket.socket() as squatter:
        # An earlier test's connections may linger in TIME_WAIT on this port.
        squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        squatter.bind((address, 6443))
        squatter.listen()
        with pytest.raises(TestbedError) as failure:
            bed.up(["hub"])
    message = str(failure.value)
    assert f"{address}:6443" in message
    assert f"pid {os.getpid()}" in message
    assert "fix:" in message
    assert processes_mentioning(str(tmp_path)) == []


def test_a_failure_late_in_up_stops_what_that_up_started(
    bed: Testbed, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def nodes_never_ready(self: Cluster, tools: object) -> None:
        raise TestbedError("simulated: nodes never became ready", "none")

    monkeypatch.setattr(Cluster, "_ensure_nodes", nodes_never_ready)
    with pytest.raises(TestbedError, match="simulated"):
        bed.up(["hub", "site-a"])
    assert processes_mentioning(str(tmp_path)) == []


def test_cli_prints_kubeconfig_path_last_and_status(bed: Testbed, tmp_path: Path) -> None:
    bed.up(["site-a"])
    base = [sys.executable, "-m", "incisive_operator.cli", "testbed",
            "--state-dir", str(bed.state_dir)]
    out = subprocess.run([*base, "kubeconfig", "site-a"], capture_output=True, text=True,
                         check=True)
    path = Path(out.stdout.strip().splitlines()[-1])
    assert path.is_file() and path == bed.cluster("site-a").kubeconfig
    status = subprocess.run([*base, "status"], capture_output=True, text=True, check=True)
    assert "site-a" in status.stdout and "running" in status.stdout
    missing = subprocess.run([*base, "kubeconfig", "nowhere"], capture_output=True, text=True)
    assert missing.returncode == 2
    assert "no testbed cluster named 'nowhere'" in missing.stderr
    assert "incisive testbed up --clusters nowhere" in missing.stderr
