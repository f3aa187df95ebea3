"""The warm app server (fl/warm.py) with real processes: a server beside a stand-in parent
(`sleep` plays the SuperNode it would exec into), Flower's real `flwr-clientapp` entry run
through the launcher, warm and cold. The federation tests run every round through it."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from incisive_node.fl import warm

COLD_NOTICE = "running this task cold"


def _wait(predicate: Callable[[], bool], timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("timed out")
        time.sleep(0.05)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[Path, subprocess.Popen[bytes]]]:
    """A warm clientapp server whose parent is `sleep` (it execs into it, as into a SuperNode)."""
    # A long folder name: Unix socket paths are limited to 108 bytes, and state folders are deep.
    folder = tmp_path / ("state-" + "x" * 120)
    folder.mkdir()
    socket_path = folder / warm.SOCKET_NAME
    parent = subprocess.Popen(
        [sys.executable, "-m", "incisive_node.fl.warm", "--role", "clientapp",
         "--socket", str(socket_path), "--", "sleep", "300"],
        start_new_session=True,
    )
    _wait(socket_path.exists)
    try:
        yield socket_path, parent
    finally:
        os.killpg(parent.pid, signal.SIGKILL)
        parent.wait()


def _launch(socket_path: Path, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    launcher = warm.write_launcher(cwd / "bin", "clientapp", socket_path) / "flwr-clientapp"
    return subprocess.run([str(launcher), *args], cwd=cwd, capture_output=True, text=True,
                          timeout=120)


def test_parent_execs_the_command(server: tuple[Path, subprocess.Popen[bytes]]) -> None:
    _, parent = server
    assert Path(f"/proc/{parent.pid}/cmdline").read_bytes().split(b"\0")[:2] == [b"sleep", b"300"]


def test_socket_is_private(server: tuple[Path, subprocess.Popen[bytes]]) -> None:
    socket_path, _ = server
    assert socket_path.stat().st_mode & 0o777 == 0o600


def test_task_runs_warm_with_its_streams_and_status(
    server: tuple[Path, subprocess.Popen[bytes]], tmp_path: Path
) -> None:
    socket_path, _ = server
    ok = _launch(socket_path, "--help", cwd=tmp_path)
    assert ok.returncode == 0, ok.stderr
    assert "usage: flwr-clientapp" in ok.stdout  # the child wrote to the launcher's stdout
    assert COLD_NOTICE not in ok.stderr
    refused = _launch(socket_path, "--no-such-flag", cwd=tmp_path)
    assert refused.returncode == 2  # argparse's status, passed through
    assert "flwr-clientapp: error:" in refused.stderr
    assert COLD_NOTICE not in refused.stderr


def test_without_a_server_the_task_runs_cold(tmp_path: Path) -> None:
    result = _launch(tmp_path / "absent" / warm.SOCKET_NAME, "--help", cwd=tmp_path)
    assert result.returncode == 0
    assert "usage: flwr-clientapp" in result.stdout
    assert COLD_NOTICE in result.stderr


def test_signal_reaches_the_task_and_server_leaves_with_its_parent(
    server: tuple[Path, subprocess.Popen[bytes]], tmp_path: Path
) -> None:
    socket_path, parent = server
    launcher = warm.write_launcher(tmp_path / "bin", "clientapp", socket_path) / "flwr-clientapp"
    # Nothing listens on port 9: the task retries its Runtime API until it is stopped.
    task = subprocess.Popen(
        [str(launcher), "--runtime-api-address", "127.0.0.1:9", "--token", "t", "--insecure"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    server_pid = int(subprocess.check_output(["pgrep", "-P", str(parent.pid)]).split()[0])
    _wait(lambda: subprocess.run(["pgrep", "-P", str(server_pid)], capture_output=True)
          .returncode == 0)
    child = int(subprocess.check_output(["pgrep", "-P", str(server_pid)]).split()[0])
    # Signal once the task is retrying, i.e. once Flower's runner has its handlers in place.
    assert task.stdout is not None
    seen = []
    while "retrying" not in (line := task.stdout.readline()):
        assert line, "".join(seen)
        seen.append(line)
    task.send_signal(signal.SIGTERM)
    output, _ = task.communicate(timeout=60)
    assert "Task stopped." in output  # Flower's own handler ran in the warm child
    assert not Path(f"/proc/{child}").exists()

    parent.kill()
    parent.wait()
    _wait(lambda: not Path(f"/proc/{server_pid}").exists() or
          "Z" in Path(f"/proc/{server_pid}/stat").read_text().split()[2])
    assert not socket_path.exists()


def test_a_garbled_request_is_refused_and_the_server_serves_on(
    server: tuple[Path, subprocess.Popen[bytes]], tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    socket_path, _ = server
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as bad:
        with monkeypatch.context() as here:
            here.chdir(socket_path.parent)  # the full path is over the 108-byte limit
            bad.connect(socket_path.name)
        socket.send_fds(bad, [b"not json"], [0, 1, 2])
        bad.shutdown(socket.SHUT_WR)
        assert bad.recv(64) == b""  # closed without forking anything
    ok = _launch(socket_path, "--help", cwd=tmp_path)
    assert ok.returncode == 0 and COLD_NOTICE not in ok.stderr
