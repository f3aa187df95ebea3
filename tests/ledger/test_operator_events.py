"""The operator's events in a real ledger (`incisive-node ledger serve` and three witness
processes on loopback, SQLite store): site enrolment approved by the hub operator on the
testbed's hub, an HPC run started and finished on the testbed's GPU cluster, and the
functions the TrainingJob handler calls. No leaf names a site, a workload or a dataset.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import re
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from kubernetes import client

from incisive_node.ledger.entries import canonical_json, keyed_object_id
from incisive_node.ledger.recorder import SubmitterIdentity, digest
from incisive_operator import ledger_events
from incisive_operator.api import GROUP
from incisive_operator.api.v1alpha1.hpcworkload import HPCWorkloadSpec
from incisive_operator.hpc import lineage
from incisive_operator.hub import registration
from incisive_operator.site import enrolment
from incisive_operator.testbed import Cluster, Toolchain
from tests.conftest import TEST_BLOCK
from tests.hpc import workloads as wl
from tests.hpc.conftest import (  # noqa: F401 - fixtures used by the HPC test below
    gpu_api,
    gpu_namespace,
    hpc_crds,
    hpc_operator,
    wait_for,
)
from tests.hpc.test_kubernetes_backend import H100, settings
from tests.operator.conftest import apply_crds
from tests.operator.processes import operator_process

from . import services

HOSTS = tuple(f"127.{TEST_BLOCK}.9.{n}" for n in (1, 2, 3, 4))


@pytest.fixture(scope="module")
def ledger(tmp_path_factory: pytest.TempPathFactory) -> Iterator[services.Ledger]:
    folder = tmp_path_factory.mktemp("operator-ledger")
    running = services.start(folder, str(folder / "log.sqlite"), HOSTS)
    try:
        yield running
    finally:
        running.stop_all()


@pytest.fixture
def operator_key(ledger: services.Ledger, tmp_path: Path) -> Iterator[Path]:
    """The hub operator's submitter key, trusted by the log; the in-process recorder is
    switched off again after each test."""
    yield ledger.new_submitter(f"hub-operator-{tmp_path.name}")
    ledger_events.close()


def entries_since(ledger: services.Ledger, start: int) -> list[dict[str, Any]]:
    return [row["leaf"]["entry"] for row in ledger.leaves()[start:]]


def assert_verifies(ledger: services.Ledger) -> None:
    size = len(ledger.leaves())
    ledger.wait_for_checkpoint(size)
    done = ledger.verify()
    assert done.returncode == 0, done.stdout + done.stderr


def test_without_a_ledger_recording_is_off_and_said_once(
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    assert ledger_events.configure(None, None) is None
    job = {"metadata": {"namespace": "ns", "name": "job", "uid": "u"}, "spec": {}}
    assert ledger_events.training_started(job) is None
    assert ledger_events.training_finished(job, "0" * 64) is None
    assert ledger_events.hpc_run(job, "started", {}) is None
    off = [r for r in caplog.records if "ledger recording is off" in r.getMessage()]
    assert len(off) == 1 and "the operator" in off[0].getMessage()


def test_training_events_for_the_trainingjob_handler(ledger: services.Ledger,
                                                     operator_key: Path,
                                                     tmp_path: Path) -> None:
    recorder = ledger_events.configure(ledger.log_url, operator_key, spool=tmp_path / "spool")
    assert recorder is not None
    start = len(ledger.leaves())
    job = {"metadata": {"namespace": "research", "name": "lung-nodules", "uid": "1234-5678"},
           "spec": {"rounds": 5, "purpose": "federated-training"}}
    model = hashlib.sha256(b"final model weights").hexdigest()
    ledger_events.training_started(job)
    ledger_events.training_finished(job, f"sha256:{model}")
    ledger_events.close()  # the sender thread's last flush
    started, finished = entries_since(ledger, start)
    assert (started["event"], finished["event"]) == ("training-started", "training-finished")
    assert started["purpose"] == finished["purpose"] == "ai-training"
    assert started["object"] == finished["object"] == recorder.object_id(
        "trainingjob", "research/lung-nodules/1234-5678")
    assert started["content"] == digest({"spec": job["spec"]})
    assert finished["content"] == model
    assert_verifies(ledger)


@pytest.mark.cluster
def test_an_approved_enrolment_appends_an_entry(
        cluster: Cluster, tools: Toolchain, ledger: services.Ledger, operator_key: Path,
        tmp_path: Path) -> None:
    apply_crds(cluster, tools)
    hub_api = cluster.api_client()
    site = f"ledger-{uuid.uuid4().hex[:6]}"
    start = len(ledger.leaves())
    with operator_process("hub", cluster.kubeconfig, [], tmp_path / "hub.log",
                          "--ledger-url", ledger.log_url, "--ledger-key", str(operator_key),
                          "--ledger-spool", str(tmp_path / "spool")) as hub:
        try:
            registered = registration.register_site(hub_api, site, "IT", auto_approve=True)
            # The site's side of pull-only enrolment: its own key, a CSR filed with the
            # bootstrap token; the hub operator approves it.
            as_bootstrap = enrolment._hub_client(cluster.server, registered.hub_ca,
                                                 token=registered.token)
            key = ec.generate_private_key(ec.SECP256R1()).private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption())
            wait_for(lambda: isinstance(enrolment._request_certificate(as_bootstrap, site, key),
                                        bytes), "the certificate issued", timeout=60)
            added = wait_for(lambda: entries_since(ledger, start), "the enrolment entry",
                             timeout=30)
            appended = re.compile(r'incisive_ledger_events_total\{event="site-enrolled",'
                                  r'outcome="appended"\} 1\.0')
            wait_for(lambda: appended.search(hub.metrics_text()),
                     "the operator's metrics to count it", timeout=10)
        finally:
            client.CustomObjectsApi(hub_api).delete_cluster_custom_object(
                GROUP, "v1alpha1", "federatedsites", site)
    [entry] = added
    identity = SubmitterIdentity.load(operator_key)
    assert entry["event"] == "site-enrolled" and entry["actor"] == identity.actor
    assert entry["purpose"] == "federation-operations"
    assert entry["object"] == keyed_object_id(identity.object_key, "site", site)
    request = next(r for r in client.CertificatesV1Api(hub_api)
                   .list_certificate_signing_request().items
                   if r.metadata.name.startswith(f"incisive-site-{site}-"))
    der = x509.load_pem_x509_csr(base64.b64decode(request.spec.request)).public_bytes(
        serialization.Encoding.DER)
    assert entry["content"] == hashlib.sha256(der).hexdigest()
    assert site.encode() not in canonical_json(ledger.leaves()[-1]["leaf"])
    assert_verifies(ledger)


@pytest.mark.cluster
def test_an_hpc_run_appends_its_start_and_its_end(
        gpu_api: client.ApiClient, gpu_namespace: str, hpc_operator: Any,  # noqa: F811
        ledger: services.Ledger, operator_key: Path, tmp_path: Path) -> None:
    recorder = ledger_events.configure(ledger.log_url, operator_key, spool=tmp_path / "spool")
    assert recorder is not None
    ns, start = gpu_namespace, len(ledger.leaves())
    wl.donate(gpu_api, ns, {"hospital-a.lung-ct": "central-hpc"})
    with hpc_operator(settings(ns)):
        created = wl.create(gpu_api, ns, "segment", gpus={"count": 1, "model": H100},
                            timeLimit="30m", command=["python", "-m", "segment"],
                            inputs=[{"dataset": "lung-ct", "site": "hospital-a"}])
        done = wait_for(lambda: wl.with_condition(gpu_api, ns, "segment", "Succeeded", "True"),
                        "the workload to succeed")
        entries = wait_for(lambda: (e := entries_since(ledger, start)) and len(e) >= 2 and e,
                           "both hpc-run entries", timeout=30)
    assert [e["event"] for e in entries] == ["hpc-run", "hpc-run"]
    assert {e["object"] for e in entries} == {
        recorder.object_id("hpcworkload", f"{ns}/segment/{created['metadata']['uid']}")}
    spec = HPCWorkloadSpec.model_validate(created["spec"])
    at_start = lineage.record(spec, spec.image, tuple(spec.command), None, [])
    assert entries[0]["content"] == digest({"phase": "started", "lineage": at_start})
    outcome = next(c["reason"] for c in done["status"]["conditions"]
                   if c["type"] == "Succeeded")
    # The status drops null fields (merge patch): rebuild the lineage the handler recorded.
    shown = done["status"]["lineage"]
    at_end = lineage.record(spec, spec.image, tuple(spec.command), shown.get("imageDigest"),
                            shown.get("outputs") or [])
    assert entries[1]["content"] == digest({"phase": "finished", "lineage": at_end,
                                            "outcome": outcome})
    for row in ledger.leaves()[start:]:
        data = canonical_json(row["leaf"])
        assert b"lung-ct" not in data and b"segment" not in data and ns.encode() not in data
    assert_verifies(ledger)

