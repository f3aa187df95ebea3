"""Site mode: the appliance's k-suppressed aggregates reach the DataNode's status.

What stands in for what: the appliance pod runs on a kwok node and so starts nothing; the
same `incisive-node serve` runs here as a process on loopback, over a store filled through
the real ingest pipeline, and the site operator (a real process) is pointed at it with
`--appliance-url` instead of the appliance's Service.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
from kubernetes import client
from kubernetes.client.rest import ApiException

from incisive_node.consent import FEDERATED_TRAINING, PERMIT, ConsentRegistry
from incisive_node.deid import Deidentifier
from incisive_node.deid.keys import ProjectKeys, load_key_file, write_key_file
from incisive_node.ingest.pipeline import Pipeline
from incisive_node.store import Store
from incisive_operator.api import GROUP
from incisive_operator.site.aggregates import Invalid, to_status
from incisive_operator.testbed import Cluster
from tests.curation import samples
from tests.ingest.ports import free_port

from .conftest import delete_datanodes
from .processes import operator_process
from .test_datanode import condition, get_datanode, wait_for

K = 6  # not the default: the appliance's own flag decides
COHORT = [("CT", 10), ("MR", 6), ("PT", 2)]  # (modality, patients with one series each)
SERVE = [sys.executable, "-m", "incisive_node.cli", "serve"]
V = "v1alpha1"


def counts(status_aggregates: dict[str, Any]) -> list[int]:
    """Every number the status shows, k excepted."""
    def walk(value: Any) -> list[int]:
        if isinstance(value, bool):
            return []
        if isinstance(value, int):
            return [value]
        if isinstance(value, dict):
            return [n for key, v in value.items() if key != "k" for n in walk(v)]
        return []
    return walk(status_aggregates)


@dataclass
class Appliance:
    url: str
    store_dir: Path
    key_file: Path
    log: Path
    port: int
    process: subprocess.Popen | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            [*SERVE, "--store", str(self.store_dir), "--key-file", str(self.key_file),
             "--host", "127.0.0.1", "--http-port", str(self.port),
             "--aggregates-k", str(K)],
            stdout=self.log.open("ab"), stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            assert self.process.poll() is None, self.log.read_text()[-2000:]
            try:
                if requests.get(f"{self.url}/healthz", timeout=1).ok:
                    return
            except requests.ConnectionError:
                time.sleep(0.2)
        raise AssertionError(f"the appliance did not start: {self.log.read_text()[-2000:]}")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            self.process.wait(timeout=30)


@pytest.fixture
def appliance(tmp_path: Path) -> Iterator[Appliance]:
    key_file = tmp_path / "project.key"
    write_key_file(ProjectKeys.generate("aggregates-test"), key_file)
    with Store(tmp_path / "store") as store:
        pipeline = Pipeline(store, Deidentifier(load_key_file(key_file)))
        n = 0
        for modality, patients in COHORT:
            for _ in range(patients):
                spec = samples.spec(slices=1, patient_id=f"CANARYX-P{n}", modality=modality)
                assert all(pipeline.ingest(d, "test").stored for d in samples.series(spec))
                n += 1
    port = free_port()
    running = Appliance(f"http://127.0.0.1:{port}", tmp_path / "store", key_file,
                        tmp_path / "appliance.log", port)
    running.start()
    try:
        yield running
    finally:
        running.stop()


def _events(cluster: Cluster, namespace: str, name: str) -> list[tuple[str, str]]:
    found = client.CoreV1Api(cluster.api_client()).list_namespaced_event(
        namespace, field_selector=f"involvedObject.name={name}").items
    return [(e.reason, e.message) for e in found]


@pytest.mark.cluster
def test_the_datanode_shows_the_appliances_suppressed_aggregates(
    crds_on_hub: Cluster, namespace: str, appliance: Appliance, tmp_path: Path
) -> None:
    objects = client.CustomObjectsApi(crds_on_hub.api_client())
    with operator_process("site", crds_on_hub.kubeconfig, [namespace],
                          tmp_path / "operator.log", "--appliance-url", appliance.url,
                          "--aggregates-interval", "2"):
        try:
            objects.create_namespaced_custom_object(GROUP, V, namespace, "datanodes", {
                "apiVersion": f"{GROUP}/{V}", "kind": "DataNode",
                "metadata": {"name": "radiology"}, "spec": {}})
            shown = wait_for(lambda: (get_datanode(crds_on_hub, namespace, "radiology") or {})
                             .get("status", {}).get("aggregates"), timeout=60,
                             what="status.aggregates")
            assert shown["k"] == K
            assert all(n >= K for n in counts(shown)), shown
            assert (shown["series"], shown["patients"]) == (18, 18)
            # PT (2) is below k; MR (6) goes with it, else 18 - 10 would give PT away.
            assert shown["modality"] == {"CT": 10}
            assert shown["bodyPart"] == {"CHEST": 18}
            assert shown["consent"][FEDERATED_TRAINING] == {"deny": 18}  # the site default
            assert shown["suppressed"] == ["modality/MR", "modality/PT"]
            datanode = get_datanode(crds_on_hub, namespace, "radiology")
            current = condition(datanode, "AggregatesCurrent")
            assert current["status"] == "True" and current["reason"] == "AggregatesRead"

            # Nothing changed at the appliance: nothing is written, however often it is read.
            wait_for(lambda: condition(get_datanode(crds_on_hub, namespace, "radiology"),
                                       "ChildrenApplied"), what="ChildrenApplied")
            settled = wait_for(lambda: _settled(crds_on_hub, namespace), timeout=60,
                               what="the DataNode to stop changing")
            time.sleep(5)  # two more reads at 2 s
            after = get_datanode(crds_on_hub, namespace, "radiology")
            assert after["metadata"]["resourceVersion"] == settled

            # Eight patients permit: the next read shows it.
            with Store(appliance.store_dir) as store:
                registry = ConsentRegistry(store.index)
                people = [r[0] for r in store.index.read(
                    "SELECT pseudonym FROM patients ORDER BY 1")]
                for pseudonym in people[:8]:
                    registry.decide(pseudonym, FEDERATED_TRAINING, PERMIT)
            changed = wait_for(lambda: _consent_shown(crds_on_hub, namespace) == {
                "permit": 8, "deny": 10}, timeout=30, what="the new consent counts")
            assert changed
            status = get_datanode(crds_on_hub, namespace, "radiology")["status"]
            assert all(n >= K for n in counts(status["aggregates"]))
            text = str(status)
            assert not any(p in text for p in people) and "CANARYX" not in text

            # The appliance goes away: the last aggregates stay, the condition says why.
            kept = status["aggregates"]
            appliance.stop()
            gone = wait_for(lambda: (c := condition(get_datanode(
                crds_on_hub, namespace, "radiology"), "AggregatesCurrent"))
                and c["status"] == "False" and c, timeout=30, what="AggregatesCurrent=False")
            assert gone["reason"] == "AggregatesUnavailable"
            assert appliance.url in gone["message"] and "kept" in gone["message"]
            datanode = get_datanode(crds_on_hub, namespace, "radiology")
            assert datanode["status"]["aggregates"] == kept
            assert condition(datanode, "ChildrenApplied")["status"] == "True"
            assert ("AggregatesUnavailable", gone["message"]) in wait_for(
                lambda: _events(crds_on_hub, namespace, "radiology"), what="events")

            # And comes back.
            appliance.start()
            wait_for(lambda: (c := condition(get_datanode(
                crds_on_hub, namespace, "radiology"), "AggregatesCurrent"))
                and c["status"] == "True", timeout=30, what="AggregatesCurrent=True")
        finally:
            delete_datanodes(crds_on_hub, namespace)


def _settled(cluster: Cluster, namespace: str) -> str | None:
    """The resourceVersion, once it has stayed the same for 3 s."""
    before = get_datanode(cluster, namespace, "radiology")["metadata"]["resourceVersion"]
    time.sleep(3)
    after = get_datanode(cluster, namespace, "radiology")["metadata"]["resourceVersion"]
    return after if after == before else None


def _consent_shown(cluster: Cluster, namespace: str) -> dict[str, int] | None:
    status = (get_datanode(cluster, namespace, "radiology") or {}).get("status", {})
    return (status.get("aggregates") or {}).get("consent", {}).get(FEDERATED_TRAINING)


@pytest.mark.cluster
def test_the_apiserver_refuses_a_count_below_k(crds_on_hub: Cluster, namespace: str) -> None:
    """Whoever writes the status: the CRD's CEL rules hold k too."""
    objects = client.CustomObjectsApi(crds_on_hub.api_client())
    objects.create_namespaced_custom_object(GROUP, V, namespace, "datanodes", {
        "apiVersion": f"{GROUP}/{V}", "kind": "DataNode", "metadata": {"name": "dn"},
        "spec": {}})
    good = {"k": 5, "generatedAt": "2026-01-01T00:00:00Z", "series": 12,
            "modality": {"CT": 12}, "label": {"classification:1": {"with": 5, "without": 7}},
            "consent": {FEDERATED_TRAINING: {"permit": 12}}}
    objects.patch_namespaced_custom_object_status(GROUP, V, namespace, "datanodes", "dn",
                                                  {"status": {"aggregates": good}})
    for field, bad in (("series", {"series": 4}), ("modality", {"modality": {"MR": 2}}),
                       ("bodyPart", {"bodyPart": {"KNEE": 1}}),
                       ("label", {"label": {"classification:1": {"with": 3}}}),
                       ("consent", {"consent": {FEDERATED_TRAINING: {"deny": 1}}})):
        with pytest.raises(ApiException) as refused:
            objects.patch_namespaced_custom_object_status(
                GROUP, V, namespace, "datanodes", "dn",
                {"status": {"aggregates": {**good, **bad}}})
        assert refused.value.status == 422 and f"status.aggregates.{field}" in \
            refused.value.body, refused.value.body


# --- the reply the operator accepts (no cluster) ----------------------------------------

PUBLISHED = {"k": 5, "unit": "series", "total": 72, "generated_at": "2026-01-01T00:00:00+00:00",
             "modality": {"CT": 40, "MR": None, "PT": None}, "body_part": {"CHEST": 72},
             "label": {"classification:1": {"with": 30, "without": 42}},
             "consent": {"unit": "patients", "total": 30,
                         "purposes": {FEDERATED_TRAINING: {"permit": None, "deny": None}}}}


def test_hidden_cells_are_named_not_shown() -> None:
    status = to_status(PUBLISHED)
    assert status["modality"] == {"CT": 40}
    assert status["consent"] == {FEDERATED_TRAINING: {}}
    assert status["suppressed"] == ["consent/federated-training/deny",
                                    "consent/federated-training/permit",
                                    "modality/MR", "modality/PT"]
    assert (status["series"], status["patients"], status["k"]) == (72, 30, 5)


@pytest.mark.parametrize("change", [
    {"modality": {"CT": 4}},  # a count below k
    {"total": 3},
    {"consent": {"unit": "patients", "total": 30, "purposes": {"x": {"permit": 2}}}},
    {"label": {"t:1": {"with": 1, "without": 71}}},
    {"k": 1},  # k = 1 hides nothing
    {"modality": {"CT": True}},
    {"label": {"t:1": {"maybe": 40}}},  # not the appliance's shape
    {"generated_at": None},
])
def test_a_reply_that_may_not_be_published_is_refused(change: dict[str, Any]) -> None:
    with pytest.raises(Invalid):
        to_status({**PUBLISHED, **change})


def test_the_refusal_says_where_not_what() -> None:
    with pytest.raises(Invalid) as refused:
        to_status({**PUBLISHED, "modality": {"CT": 40, "XA": 3}})
    assert "modality" in str(refused.value) and "3" not in str(refused.value)
