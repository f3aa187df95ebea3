"""Central pooling end to end: a site's sync pass pushes what consent permits for central-hpc
to the hub's pool over mutual TLS, a withdrawal deletes that patient's copies in one pass,
nothing is lost while the hub is down, and only the site that gave a copy can delete it."""

from __future__ import annotations

import json

import pytest
from dicomweb_client.api import DICOMwebClient
from prometheus_client import CollectorRegistry, generate_latest

from incisive_node.cli import main
from incisive_node.consent import CENTRAL_HPC, PERMIT, ConsentRegistry, SitePolicy
from incisive_node.dicomweb.api import DicomWebApi
from incisive_node.identity.ca import FederationCA
from incisive_node.identity.csr import Role
from incisive_node.ingest.http_server import IngestHttpServer
from incisive_node.ingest.pipeline import Pipeline
from incisive_node.pool.client import PoolRefused, PoolUnavailable
from incisive_node.pool.sync import PoolSync, SyncMetrics
from incisive_node.store import Store
from tests.conftest import TEST_BLOCK
from tests.curation import samples
from tests.pool.conftest import Federation, Pool, Site

SITE_HTTP = f"127.{TEST_BLOCK}.6.1"


def sync(site: Site, pool: Pool, registry: ConsentRegistry | None = None,
         metrics: SyncMetrics | None = None) -> PoolSync:
    return PoolSync(site.store, registry or site.registry, site.member.client(pool.url),
                    dataset="lung-ct", metrics=metrics)


def sample(metrics: SyncMetrics, name: str, **labels: str) -> float:
    return metrics.registry.get_sample_value(name, labels) or 0.0


def test_withdrawal_deletes_the_pooled_copies_in_one_sync_pass(
        site: Site, pool: Pool, federation: Federation, deidentifier, capsys) -> None:
    a, b, c = site.patients
    site.registry.decide(a, CENTRAL_HPC, PERMIT)
    site.registry.decide(b, CENTRAL_HPC, PERMIT)  # c decided nothing: the site default denies
    digests_at_site = sorted(site.instances_of(a))
    site.store.close()  # the CLI opens the store itself
    cli = ["pool", "sync", "--store", str(site.store.root), "--pool-dataset", "lung-ct",
           *site.member.cli_arguments(pool.url)]
    assert main(cli) == 0
    assert "pushed 4," in capsys.readouterr().out
    assert {p for p, _ in pool.copies("site-a")} == {a, b}
    assert sorted(sha for _, sha in pool.copies("site-a", a)) == digests_at_site
    hub = federation.member("hpc-staging", Role.HUB).client(pool.url)
    [listed] = hub.datasets()
    assert (listed["site"], listed["dataset"], listed["patients"], listed["instances"]) == (
        "site-a", "lung-ct", 2, 4)
    copy = hub.instances("site-a", "lung-ct")[0]
    assert b"CANARYX" not in hub.read("site-a", "lung-ct", copy["sop"])

    with Store(site.store.root) as store:  # the site, reopened after the CLI
        registry = ConsentRegistry(store.index)
        registry.withdraw(a, CENTRAL_HPC, source="donor")
        digests_of_a = [sha for _, sha in pool.copies("site-a", a)]
        assert main(cli) == 0  # one pass
        assert "tombstones sent 1 (2 copies deleted)" in capsys.readouterr().out
        assert pool.copies("site-a", a) == []
        assert {p for p, _ in pool.copies("site-a")} == {b}
        assert not any(sha in pool.store.objects for sha in digests_of_a)  # the bytes too
        assert [d["patients"] for d in hub.datasets()] == [1]
        assert main(cli) == 0  # a later pass has nothing to do
        assert "pushed 0, tombstones sent 0" in capsys.readouterr().out

        # The site's DICOMweb, asked for central-hpc, no longer lists the withdrawn patient.
        http = IngestHttpServer(Pipeline(store, deidentifier), host=SITE_HTTP, port=0,
                                apps=[DicomWebApi(store, registry)])
        http.start()
        try:
            client = DICOMwebClient(url=http.url, headers={"Incisive-Purpose": CENTRAL_HPC})
            listed_patients = {s["00100020"]["Value"][0] for s in client.search_for_studies()}
        finally:
            http.stop()
        assert listed_patients == {b}

        # Every consent change is in the audit log, which is intact.
        events = [(e["action"], e["patient"], e["decision"]) for e in registry.audit.entries()]
        assert events == [("decide", a, "permit"), ("decide", b, "permit"),
                          ("withdraw", a, "deny")]
        assert registry.audit.verify()
        assert c not in {p for p, _ in pool.copies("site-a")}


def test_no_withdrawal_is_lost_while_the_hub_is_down(site: Site, pool: Pool) -> None:
    a, b, _ = site.patients
    for patient in (a, b):
        site.registry.decide(patient, CENTRAL_HPC, PERMIT)
    metrics = SyncMetrics(CollectorRegistry())
    assert sync(site, pool, metrics=metrics).run_once().complete
    assert sample(metrics, "incisive_pool_pushed_total") == 4

    pool.stop()  # the hub goes down
    site.registry.withdraw(a, CENTRAL_HPC)
    for _ in range(2):  # passes while it is down keep the tombstone
        report = sync(site, pool, metrics=metrics).run_once()
        assert not report.complete and report.failures == 1
        assert "unreachable" in report.problems[0]
    assert sample(metrics, "incisive_pool_sync_failures_total", stage="delete",
                  cause="unavailable") == 2
    assert sample(metrics, "incisive_pool_pending_deletions") == 1
    assert sample(metrics, "incisive_pool_sync_passes_total", result="incomplete") == 2
    assert len(pool.copies("site-a", a)) == 2  # still there: nobody could tell the hub

    pool.start()  # back, on the same address
    report = sync(site, pool, metrics=metrics).run_once()
    assert report.complete and report.tombstones_sent == 1 and report.copies_deleted == 2
    assert pool.copies("site-a", a) == []
    assert len(pool.copies("site-a", b)) == 2
    assert sample(metrics, "incisive_pool_pending_deletions") == 0
    assert sample(metrics, "incisive_pool_deletions_total", kind="patient") == 1
    assert sample(metrics, "incisive_pool_deleted_copies_total") == 2
    text = generate_latest(metrics.registry).decode()
    assert a not in text and b not in text  # no pseudonym in any metric


def test_a_patient_no_longer_permitted_is_deleted_without_a_withdrawal(
        site: Site, pool: Pool) -> None:
    """Level-based: the site default permitted central-hpc, then no longer does (no
    withdrawal event at all); the next pass deletes every copy."""
    permissive = ConsentRegistry(site.store.index, SitePolicy({CENTRAL_HPC: PERMIT}))
    assert sync(site, pool, permissive).run_once().pushed == 6
    a = site.patients[0]
    site.registry.decide(a, CENTRAL_HPC, PERMIT)  # one patient decided explicitly
    report = sync(site, pool).run_once()  # the default is deny again
    assert report.complete and report.tombstones_sent == 2
    assert {p for p, _ in pool.copies("site-a")} == {a}
    reasons = pool.store.index.read("SELECT reason, copies FROM pool_deletions ORDER BY 1")
    assert reasons == [("not-permitted", 2), ("not-permitted", 2)]


def test_a_series_that_fails_curation_later_is_removed_from_the_pool(
        site: Site, pool: Pool) -> None:
    a = site.patients[0]
    site.registry.decide(a, CENTRAL_HPC, PERMIT)
    spec = samples.spec(slices=3, patient_id="CANARYX-P0")
    site.add_series(spec)
    assert sync(site, pool).run_once().pushed == 5  # a's first series (2) and this one (3)
    # A late slice at an occupied position: the re-check fails the whole series.
    late = samples.slice_dataset(spec, 9)
    late.ImagePositionPatient = [0, 0, 0]
    assert site.pipeline.ingest(samples.to_bytes(late), "test").stored
    site.curator.curate_pending(0)
    failed = site.store.index.read(
        "SELECT COUNT(*) FROM curation_series WHERE status = 'fail'")[0][0]
    assert failed == 1
    report = sync(site, pool).run_once()
    assert report.complete and report.withheld_deleted == 3 and report.pushed == 0
    assert len(pool.copies("site-a", a)) == 2  # the first series stays


def test_sites_are_named_by_their_certificates_and_see_only_their_own(
        site: Site, pool: Pool, federation: Federation) -> None:
    a = site.patients[0]
    site.registry.decide(a, CENTRAL_HPC, PERMIT)
    assert sync(site, pool).run_once().complete
    other = federation.member("site-b", Role.SITE).client(pool.url)
    assert other.delete_patient(a, "withdrawn") == 0  # site-b holds no copy of a
    assert len(pool.copies("site-a", a)) == 2
    assert other.datasets() == []
    with pytest.raises(PoolRefused, match="403"):
        other.instances("site-a", "lung-ct")
    hub = federation.member("hpc-staging", Role.HUB).client(pool.url)
    with pytest.raises(PoolRefused, match="only a site gives copies"):
        hub.put_instance("lung-ct", "1.2.3", b"x")
    with pytest.raises(PoolRefused, match="403"):
        hub.delete_patient(a, "withdrawn")
    mine = site.member.client(pool.url)
    with pytest.raises(PoolRefused, match="not a readable DICOM"):
        mine.put_instance("lung-ct", "1.2.3", b"not dicom at all")
    raw = samples.to_bytes(samples.slice_dataset(samples.spec(), 1))  # never de-identified
    sop = str(samples.slice_dataset(samples.spec(), 1).SOPInstanceUID)
    with pytest.raises(PoolRefused, match="does not say it is de-identified"):
        mine.put_instance("lung-ct", sop, raw)
    with pytest.raises(PoolRefused, match="reason must be"):
        mine.delete_patient(a, "because")
    with pytest.raises(PoolRefused, match="DNS label"):
        mine.put_instance("Lung_CT", sop, raw)
    # A certificate from another CA, however well formed, is no federation member.
    stranger_ca = FederationCA.create("incisive.test")[0]
    stranger = federation.member("site-c", Role.SITE, ca=stranger_ca).client(pool.url)
    with pytest.raises(PoolUnavailable):
        stranger.datasets()
    assert len(pool.copies("site-a", a)) == 2


def test_pool_status_and_metrics_name_no_patient(site: Site, pool: Pool, capsys) -> None:
    site.registry.decide(site.patients[0], CENTRAL_HPC, PERMIT)
    assert sync(site, pool).run_once().complete
    site.store.close()
    assert main(["pool", "status", "--store", str(site.store.root)]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert lines == [{"pool": "pool.hub.incisive.test", "state": "acked", "instances": 2,
                      "patients": 1}]
    assert pool.server is not None
    text = generate_latest(pool.server.metrics.registry).decode()
    assert "incisive_pool_received_total 2.0" in text
    assert site.patients[0] not in text


def test_an_incomplete_pool_configuration_is_refused_before_anything_runs(
        site: Site, pool: Pool) -> None:
    base = ["pool", "sync", "--store", str(site.store.root)]
    full = site.member.cli_arguments(pool.url)
    cases = (
        (["--pool-url", pool.url], "needs --pool-cert"),
        ([*full[:1], pool.url.replace("https", "http"), *full[2:]], "must be https://"),
        ([*full, "--pool-dataset", "Lung CT"], "--pool-dataset: dataset must be a DNS label"),
        ([*full[:5], str(site.store.root / "missing.key"), *full[6:]], "no such file"),
    )
    for extra, message in cases:
        with pytest.raises(SystemExit, match=message):
            main([*base, *extra])
    assert pool.copies("site-a") == []
