"""The appliance's events in a real ledger: consent changes, re-identifications and datasets
go through the recorder to `incisive-node ledger serve` (with three witness processes) on
loopback; `incisive ledger verify` passes over them; no leaf holds PHI or a raw pseudonym;
an unreachable or refusing log loses nothing.

The whole module runs twice: with the log on an SQLite file and on a PostgreSQL database.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from incisive_node.consent import ConsentRegistry
from incisive_node.curation import Curator
from incisive_node.deid import Deidentifier, ProjectKeys, reidentify
from incisive_node.ingest.pipeline import Pipeline
from incisive_node.ledger import events, settings
from incisive_node.ledger.entries import canonical_json, sign_entry, utc_now
from incisive_node.ledger.recorder import Recorder, SubmitterIdentity, digest
from incisive_node.store import Store
from tests.conftest import TEST_BLOCK
from tests.curation import samples
from tests.deid.corpus import MARK, canaries_in
from tests.ingest.ports import free_port

from . import services
from .conftest import new_database

HOSTS = tuple(f"127.{TEST_BLOCK}.8.{n}" for n in (1, 2, 3, 4))


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def ledger(request: pytest.FixtureRequest,
           tmp_path_factory: pytest.TempPathFactory) -> Iterator[services.Ledger]:
    folder = tmp_path_factory.mktemp(f"ledger-{request.param}")
    store = (str(folder / "log.sqlite") if request.param == "sqlite"
             else new_database(request.getfixturevalue("postgres")))
    running = services.start(folder, store, HOSTS)
    try:
        yield running
    finally:
        running.stop_all()


@pytest.fixture
def appliance(ledger: services.Ledger, tmp_path: Path,
              monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """This test process is an appliance with a ledger recorder configured the way
    `incisive-node` commands read it: from the environment. Yields the spool folder."""
    key = ledger.new_submitter(f"appliance-{tmp_path.name}")
    spool = tmp_path / "spool"
    for name, value in ledger.env(key, spool).items():
        monkeypatch.setenv(name, value)
    settings.reset()
    yield spool
    settings.reset()


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with Store(tmp_path / "store") as opened:
        yield opened


def ingest_series(store: Store, patient: int, slices: int = 2) -> list[str]:
    """Real de-identification of a synthetic series whose identifiers carry PHI canaries."""
    deidentifier = Deidentifier(ProjectKeys(project="ledger-tests", secret=b"k" * 32))
    curator = Curator(store)
    pipeline = Pipeline(store, deidentifier, curator=curator)
    spec = samples.spec(slices=slices, patient_id=f"{MARK}PID-{patient}")
    for data in samples.series(spec):
        assert pipeline.ingest(data, "test").stored
    curator.curate_pending()
    return [row[0] for row in store.index.read("SELECT pseudonym FROM patients ORDER BY 1")]


def leaf_bytes(row: dict) -> bytes:
    return canonical_json(row["leaf"])  # leaves are canonical: these are the stored bytes


def assert_no_identifiers(leaves: list[dict], store: Store) -> None:
    """No PHI canary, no pseudonym, no (de-identified) UID anywhere in any leaf."""
    identifiers = [value for query in (
        "SELECT pseudonym FROM patients", "SELECT study_uid FROM studies",
        "SELECT series_uid FROM series", "SELECT sop_instance_uid FROM instances")
        for (value,) in store.index.read(query)]
    assert identifiers
    for row in leaves:
        data = leaf_bytes(row)
        assert canaries_in(data) == [], row
        assert b"CANARYX" not in data
        for identifier in identifiers:
            assert identifier.encode() not in data, row


def assert_verifies(ledger: services.Ledger) -> None:
    size = len(ledger.leaves())
    ledger.wait_for_checkpoint(size)
    done = ledger.verify()
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"OK: {size} entries" in done.stdout


def test_consent_changes_are_anchored(ledger: services.Ledger, appliance: Path,
                                      store: Store) -> None:
    ingest_series(store, 0)
    first, second = ingest_series(store, 1)
    before = len(ledger.leaves())
    registry = ConsentRegistry(store.index)
    registry.decide(first, "federated-training", "permit")
    registry.withdraw(first, "federated-training")
    registry.decide(second, "central-hpc", "deny")

    added = ledger.leaves()[before:]
    entries = [row["leaf"]["entry"] for row in added]
    assert [e["event"] for e in entries] == ["consent-changed"] * 3
    assert {e["purpose"] for e in entries} == {"consent-management"}
    recorder = settings.shared()
    assert recorder is not None and {e["actor"] for e in entries} == {recorder.actor}
    # The site, holding the object key, finds its patient's entries; the content is the
    # consent audit event exactly as the site keeps it.
    assert [e["object"] for e in entries] == [
        recorder.object_id("pseudonym", p) for p in (first, first, second)]
    assert [e["content"] for e in entries] == [digest(e) for e in registry.audit.entries()]
    assert_no_identifiers(added, store)
    assert_verifies(ledger)


def test_reidentification_attempts_are_anchored(ledger: services.Ledger, appliance: Path,
                                                store: Store, tmp_path: Path) -> None:
    pseudonym = ingest_series(store, 2)[0]
    before = len(ledger.leaves())
    audit_log = tmp_path / "reidentify-audit.jsonl"
    reidentify.audit(audit_log, pseudonym, "dr-who (accessor-1)", "granted")
    reidentify.audit(audit_log, pseudonym, "mallory (accessor-2)", "refused")

    entries = [row["leaf"]["entry"] for row in ledger.leaves()[before:]]
    assert [e["event"] for e in entries] == ["re-identification"] * 2
    assert [e["purpose"] for e in entries] == ["clinical-care", "audit"]
    lines = audit_log.read_bytes().splitlines()
    assert [e["content"] for e in entries] == [hashlib.sha256(x).hexdigest() for x in lines]
    recorder = settings.shared()
    assert recorder is not None
    assert {e["object"] for e in entries} == {recorder.object_id("pseudonym", pseudonym)}
    assert_no_identifiers(ledger.leaves()[before:], store)
    assert_verifies(ledger)


def test_curated_series_are_registered_once_per_manifest(
        ledger: services.Ledger, appliance: Path, store: Store) -> None:
    ingest_series(store, 3, slices=3)
    ingest_series(store, 4, slices=2)
    before = len(ledger.leaves())
    assert events.register_datasets_now(store.index) == 2
    assert events.register_datasets_now(store.index) == 0  # level-based: nothing new
    added = ledger.leaves()[before:]
    entries = [row["leaf"]["entry"] for row in added]
    assert [e["event"] for e in entries] == ["dataset-registered"] * 2
    recorder = settings.shared()
    assert recorder is not None
    by_object = {e["object"]: e["content"] for e in entries}
    for (series_uid,) in store.index.read("SELECT series_uid FROM series"):
        hashes = [row[0] for row in store.index.read(
            "SELECT sha256 FROM instances WHERE series_uid = ?", (series_uid,))]
        expected = hashlib.sha256(events.manifest(hashes)).hexdigest()
        assert by_object[recorder.object_id("series", series_uid)] == expected
    assert_no_identifiers(added, store)
    assert_verifies(ledger)


def test_an_unreachable_log_loses_nothing(ledger: services.Ledger, tmp_path: Path) -> None:
    key = ledger.new_submitter("offline-site")
    identity = SubmitterIdentity.load(key)
    spool = tmp_path / "spool"
    nowhere = f"http://{HOSTS[0]}:{free_port(HOSTS[0])}"  # nothing listens there
    registry = CollectorRegistry()
    offline = Recorder(nowhere, identity, spool, registry=registry, timeout=2)
    hashes = [offline.record("hpc-run", kind="hpcworkload", identifier=f"ns/job-{n}/uid",
                             purpose="research", content={"n": n}) for n in range(3)]
    assert offline.pending() == 3
    assert registry.get_sample_value("incisive_ledger_append_failures_total",
                                     {"reason": "unreachable"}) == 3
    assert registry.get_sample_value("incisive_ledger_spool_pending") == 3
    assert registry.get_sample_value("incisive_ledger_events_total",
                                     {"event": "hpc-run", "outcome": "spooled"}) == 3

    # The first entry did reach the log, but its answer was lost: it must not land twice.
    tried = sorted(spool.glob("*.tried"))
    assert len(tried) == 1
    ledger.client().add_entry(tried[0].read_bytes())
    size = len(ledger.leaves())
    online = Recorder(ledger.log_url, identity, spool, registry=CollectorRegistry())
    assert online.flush() == 3 and online.pending() == 0
    leaves = ledger.leaves()
    assert len(leaves) == size + 2
    landed = [hashlib.sha256(b"\x00" + leaf_bytes(row)).hexdigest() for row in leaves]
    assert all(landed.count(h) == 1 for h in hashes)
    assert_verifies(ledger)


def test_a_submitter_the_log_does_not_know_yet_waits_in_the_spool(
        ledger: services.Ledger, tmp_path: Path) -> None:
    key = ledger.new_submitter("late-site", trusted=False)
    registry = CollectorRegistry()
    recorder = Recorder(ledger.log_url, SubmitterIdentity.load(key), tmp_path / "spool",
                        registry=registry)
    recorder.record("site-enrolled", kind="site", identifier="late-site",
                    purpose="federation-operations", content=b"certificate request")
    assert recorder.pending() == 1
    assert registry.get_sample_value("incisive_ledger_append_failures_total",
                                     {"reason": "refused"}) == 1
    ledger.trust_submitter(key)  # the running log re-reads its trust file
    assert recorder.flush() == 1 and recorder.pending() == 0
    assert registry.get_sample_value("incisive_ledger_events_total",
                                     {"event": "site-enrolled", "outcome": "appended"}) == 1


def test_an_entry_the_schema_refuses_is_set_aside(ledger: services.Ledger,
                                                  tmp_path: Path) -> None:
    key = ledger.new_submitter("sloppy-site")
    identity = SubmitterIdentity.load(key)
    spool = tmp_path / "spool"
    registry = CollectorRegistry()
    recorder = Recorder(ledger.log_url, identity, spool, registry=registry)
    signed = sign_entry({"v": 1, "event": "hpc-run", "actor": identity.actor,
                         "object": "ab" * 32, "content": "cd" * 32, "purpose": "research",
                         "time": utc_now()}, identity.key)
    # Not canonical (spaces): the log refuses it with 400, and no retry could change that.
    (spool / "00000000000000000001-1-000000.leaf").write_bytes(
        json.dumps(json.loads(signed.leaf()), indent=1).encode())
    assert recorder.flush() == 0 and recorder.pending() == 0
    assert [p.name for p in (spool / "rejected").iterdir()] == [
        "00000000000000000001-1-000000.leaf"]
    assert registry.get_sample_value("incisive_ledger_events_total",
                                     {"event": "hpc-run", "outcome": "rejected"}) == 1


def test_a_restarted_log_takes_the_spool_and_is_cosigned(ledger: services.Ledger,
                                                        tmp_path: Path) -> None:
    key = ledger.new_submitter("restart-site")
    recorder = Recorder(ledger.log_url, SubmitterIdentity.load(key), tmp_path / "spool",
                        retry_seconds=0.2).start()
    try:
        ledger.stop("log")
        recorder.record("training-started", kind="trainingjob", identifier="ns/job/uid",
                        purpose="ai-training", content={"spec": {"rounds": 3}})
        recorder.record("training-finished", kind="trainingjob", identifier="ns/job/uid",
                        purpose="ai-training", content_sha256="sha256:" + "e" * 64)
        time.sleep(0.5)
        assert recorder.pending() == 2
        ledger.start_log()
        deadline = time.monotonic() + 20
        while recorder.pending() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert recorder.pending() == 0
    finally:
        recorder.close()
    entries = [row["leaf"]["entry"] for row in ledger.leaves()[-2:]]
    assert [e["event"] for e in entries] == ["training-started", "training-finished"]
    assert entries[1]["content"] == "e" * 64
    assert_verifies(ledger)  # the restarted log's checkpoints are cosigned again


def test_serve_refuses_a_configuration_that_cannot_work(ledger: services.Ledger,
                                                        tmp_path: Path) -> None:
    import subprocess

    other = tmp_path / "other-log.pem"
    services.keygen("log", other, services.ORIGIN)
    base = [*services.NODE_CLI, "ledger", "serve", "--store", str(tmp_path / "x.sqlite"),
            "--trust", str(ledger.trust), "--host", HOSTS[0], "--port", "0"]
    wrong_key = subprocess.run([*base, "--key", str(other)], capture_output=True, text=True)
    assert wrong_key.returncode == 2
    assert "does not match the log key" in wrong_key.stderr
    stranger = subprocess.run([*base, "--key", str(ledger.folder / "log.pem"),
                               "--witness-url", "elsewhere/witness=http://127.0.0.1:1"],
                              capture_output=True, text=True)
    assert stranger.returncode == 2 and "not in the trust file" in stranger.stderr
    again = subprocess.run([*services.NODE_CLI, "ledger", "keygen", "--role", "log",
                            "--name", "x", "--out", str(other)], capture_output=True, text=True)
    assert again.returncode == 2 and "never overwritten" in again.stderr


def test_the_services_expose_metrics(ledger: services.Ledger) -> None:
    import urllib.request

    with urllib.request.urlopen(f"{ledger.log_url}/metrics", timeout=5) as reply:  # noqa: S310
        text = reply.read().decode()
    size = len(ledger.leaves())
    assert f"incisive_ledger_log_entries {float(size)}" in text
    assert "incisive_ledger_checkpoint_size" in text
    witness = next(iter(ledger.witness_urls.values()))
    with urllib.request.urlopen(f"{witness}/metrics", timeout=5) as reply:  # noqa: S310
        assert "incisive_ledger_witness_conflicts 0.0" in reply.read().decode()


def test_the_appliance_commands_record_from_their_environment(
        ledger: services.Ledger, tmp_path: Path) -> None:
    """`incisive-node ingest`, `consent` and `serve` as processes, configured only by the
    INCISIVE_LEDGER_* environment."""
    import os
    import signal
    import subprocess
    import urllib.request

    from incisive_node.deid.keys import write_key_file

    key = ledger.new_submitter("appliance-commands")
    env = {**os.environ, **ledger.env(key, tmp_path / "spool")}
    key_file = tmp_path / "project.key"
    write_key_file(ProjectKeys.generate("ledger-cli"), key_file)
    source = tmp_path / "incoming"
    source.mkdir()
    spec = samples.spec(slices=2, patient_id=f"{MARK}PID-CLI")
    for n, data in enumerate(samples.series(spec)):
        (source / f"{n}.dcm").write_bytes(data)
    store_dir = tmp_path / "store"
    before = len(ledger.leaves())
    run = [*services.NODE_CLI]
    done = subprocess.run([*run, "ingest", str(source), "--store", str(store_dir),
                           "--key-file", str(key_file)], env=env, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    with Store(store_dir) as store:
        [(pseudonym,)] = store.index.read("SELECT pseudonym FROM patients")
    done = subprocess.run([*run, "consent", "permit", "--store", str(store_dir),
                           "--patient", pseudonym, "--purpose", "federated-training"],
                          env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    added = ledger.leaves()[before:]
    assert [row["leaf"]["entry"]["event"] for row in added] == [
        "dataset-registered", "consent-changed"]
    with Store(store_dir) as store:
        assert_no_identifiers(added, store)

    port = free_port(HOSTS[0])
    serve = subprocess.Popen([*run, "serve", "--store", str(store_dir), "--key-file",
                              str(key_file), "--host", HOSTS[0], "--http-port", str(port)],
                             env=env, stderr=subprocess.PIPE, text=True,
                             start_new_session=True)
    try:
        services.wait_healthy(f"http://{HOSTS[0]}:{port}", serve)
        with urllib.request.urlopen(f"http://{HOSTS[0]}:{port}/metrics",
                                    timeout=5) as reply:
            metrics = reply.read().decode()
        assert "incisive_ledger_spool_pending 0.0" in metrics
    finally:
        os.killpg(serve.pid, signal.SIGTERM)
        _, err = serve.communicate(timeout=30)
    assert serve.returncode == 0, err
    assert "ledger recording on for the appliance" in err
    assert_verifies(ledger)
