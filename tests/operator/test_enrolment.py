"""Pull-only enrolment across real clusters: a hub and two hospital sites, each with its
own operator process. Sites only ever dial out; the hub never reaches into a site."""

from __future__ import annotations

import base64
import contextlib
import time
from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.rest import ApiException

from incisive_operator.api import GROUP
from incisive_operator.hub import registration
from incisive_operator.site import enrolment
from incisive_operator.testbed import Cluster, Testbed, Toolchain

from ..conftest import Federation
from .conftest import apply_crds
from .processes import OperatorProcess, operator_process
from .test_datanode import condition, wait_for

pytestmark = pytest.mark.cluster


@pytest.fixture(scope="module")
def enrolled_federation(
    federation: Federation, tools: Toolchain, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, Any]]:
    """Hub operator + one site operator per site; site-a pre-approved, site-b not."""
    logs = tmp_path_factory.mktemp("operators")
    for member in federation.clusters:
        apply_crds(member, tools)
    hub_api = federation.hub.api_client()
    with operator_process("hub", federation.hub.kubeconfig, [], logs / "hub.log") as hub_op:
        registrations = {
            name: registration.register_site(hub_api, name, "IT", auto_approve=name == "site-a")
            for name in federation.sites
        }
        site_ops: dict[str, OperatorProcess] = {}
        try:
            with contextlib.ExitStack() as stack:
                for name, site in federation.sites.items():
                    site_ops[name] = stack.enter_context(operator_process(
                        "site", site.kubeconfig, ["radiology"], logs / f"{name}.log"))
                    _create_datanode(site, federation.hub, registrations[name])
                yield {"hub_operator": hub_op, "sites": site_ops,
                       "registrations": registrations}
        finally:
            for name in federation.sites:
                _cleanup_site(federation, name)


def _create_datanode(site: Cluster, hub: Cluster, reg: registration.Registration) -> None:
    core = client.CoreV1Api(site.api_client())
    try:
        core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name="radiology")))
    except ApiException as exc:
        if exc.status != 409:
            raise
    secret = reg.site_secret()
    core.create_namespaced_secret("radiology", secret)
    client.CustomObjectsApi(site.api_client()).create_namespaced_custom_object(
        GROUP, "v1alpha1", "radiology", "datanodes", {
            "apiVersion": f"{GROUP}/v1alpha1", "kind": "DataNode",
            "metadata": {"name": "radiology"},
            "spec": {"hub": {"endpoint": hub.server, "siteName": reg.site,
                             "bootstrapSecretRef": {"name": "hub-bootstrap"}},
                     "deidentification": {"vault": {
                         "address": "https://vault.hospital.example:8200",
                         "project": "chest-xray", "tokenSecretRef": {"name": "vault"}}},
                     # site-a trains for the federation; site-b allows no purpose at all.
                     "policy": {"allowedPurposes": ["federated-training"]
                                if reg.site == "site-a" else [],
                                "workApproval": "Automatic"}},
        })


def _cleanup_site(federation: Federation, name: str) -> None:
    objects = client.CustomObjectsApi(federation.hub.api_client())
    with contextlib.suppress(ApiException):
        objects.delete_cluster_custom_object(GROUP, "v1alpha1", "federatedsites", name)
    with contextlib.suppress(ApiException):
        client.CoreV1Api(federation.sites[name].api_client()).delete_namespace("radiology")


def datanode(site: Cluster) -> dict[str, Any] | None:
    return client.CustomObjectsApi(site.api_client()).get_namespaced_custom_object(
        GROUP, "v1alpha1", "radiology", "datanodes", "radiology")


def federated_site(hub: Cluster, name: str) -> dict[str, Any]:
    return client.CustomObjectsApi(hub.api_client()).get_cluster_custom_object(
        GROUP, "v1alpha1", "federatedsites", name)


def hub_client_of(site: Cluster, hub: Cluster) -> client.ApiClient:
    """The credentials the site holds for the hub (key made at the site, cert from the hub)."""
    credentials = enrolment.load_credentials(site.api_client(), "radiology", "radiology")
    return enrolment.hub_client_for(credentials, hub.server)


def test_preapproved_site_enrols_and_beats(
    federation: Federation, enrolled_federation: dict[str, Any]
) -> None:
    site_a = federation.sites["site-a"]
    node = wait_for(lambda: (n := datanode(site_a)) and n.get("status", {}).get("enrolment")
                    == "Enrolled" and n, what="site-a enrolled")
    assert node["status"]["hubNamespace"] == "site-site-a"
    assert condition(node, "Enrolled")["status"] == "True"
    ready = wait_for(lambda: (c := condition(federated_site(federation.hub, "site-a"), "Ready"))
                     and c["status"] == "True" and c, what="hub sees site-a Ready")
    assert ready["reason"] == "Heartbeat"
    joined = condition(federated_site(federation.hub, "site-a"), "Joined")
    assert joined["status"] == "True" and joined["reason"] == "CertificateIssued"
    # The private key was made at the site: the hub holds only the public request.
    credentials = enrolment.load_credentials(site_a.api_client(), "radiology", "radiology")
    request = client.CertificatesV1Api(federation.hub.api_client()) \
        .list_certificate_signing_request().items
    ours = [r for r in request if r.spec.username.startswith("system:bootstrap:")
            and "site-a" in r.metadata.name]
    assert ours and all(b"PRIVATE KEY" not in base64.b64decode(r.spec.request) for r in ours)
    assert b"PRIVATE KEY" in credentials["tls.key"]


def test_site_waits_for_approval_then_enrols(
    federation: Federation, enrolled_federation: dict[str, Any]
) -> None:
    site_b = federation.sites["site-b"]
    pending = wait_for(lambda: (n := datanode(site_b)) and n.get("status", {}).get("enrolment")
                       == "Pending" and n, what="site-b pending")
    assert condition(pending, "Enrolled")["reason"] == "AwaitingApproval"
    joined = wait_for(lambda: condition(federated_site(federation.hub, "site-b"), "Joined"),
                      what="Joined condition on the hub")
    assert joined["status"] == "False"
    assert "incisive site approve site-b" in joined["message"]

    registration.approve_site(federation.hub.api_client(), "site-b")
    wait_for(lambda: (n := datanode(site_b)) and n.get("status", {}).get("enrolment")
             == "Enrolled", what="site-b enrolled after approval")
    wait_for(lambda: (c := condition(federated_site(federation.hub, "site-b"), "Ready"))
             and c["status"] == "True", what="hub sees site-b Ready")


def test_site_credentials_are_scoped_to_their_own_namespace(
    federation: Federation, enrolled_federation: dict[str, Any]
) -> None:
    site_a = federation.sites["site-a"]
    wait_for(lambda: (n := datanode(site_a)) and n.get("status", {}).get("enrolment")
             == "Enrolled", what="site-a enrolled")
    as_site_a = hub_client_of(site_a, federation.hub)
    objects = client.CustomObjectsApi(as_site_a)
    assert objects.list_namespaced_custom_object(GROUP, "v1alpha1", "site-site-a",
                                                 "workitems")["items"] == []
    forbidden = [
        lambda: objects.list_namespaced_custom_object(GROUP, "v1alpha1", "site-site-b",
                                                      "workitems"),
        lambda: client.CoordinationV1Api(as_site_a).read_namespaced_lease("heartbeat",
                                                                          "site-site-b"),
        lambda: client.CoreV1Api(as_site_a).create_namespace(
            client.V1Namespace(metadata=client.V1ObjectMeta(name="site-a-was-here"))),
        lambda: objects.create_cluster_custom_object(GROUP, "v1alpha1", "federatedsites", {
            "apiVersion": f"{GROUP}/v1alpha1", "kind": "FederatedSite",
            "metadata": {"name": "rogue"},
            "spec": {"country": "IT", "bootstrapTokenId": "zzzzzz"}}),
        lambda: objects.patch_cluster_custom_object(GROUP, "v1alpha1", "federatedsites",
                                                    "site-a", {"spec": {"autoApprove": True}}),
        lambda: client.CoreV1Api(as_site_a).list_namespaced_secret("kube-system"),
    ]
    for attempt in forbidden:
        with pytest.raises(ApiException) as denied:
            attempt()
        assert denied.value.status == 403


def test_a_token_cannot_enrol_another_site(
    federation: Federation, enrolled_federation: dict[str, Any]
) -> None:
    """site-a's bootstrap token asking for site-b's identity is denied by the hub."""
    token = enrolled_federation["registrations"]["site-a"].token
    hub = federation.hub
    hub_api = enrolment._hub_client(hub.server, (hub.pki_dir / "ca.crt").read_bytes(),
                                    token=token)
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    key = ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption())
    first = enrolment._request_certificate(hub_api, "site-b", key)
    assert isinstance(first, enrolment.State)
    denied = wait_for(lambda: (s := enrolment._request_certificate(hub_api, "site-b", key))
                      and s.phase == "Denied" and s, what="the forged request denied")
    assert denied.reason == "WrongBootstrapToken"


def _training_job(hub: Cluster, namespace: str, name: str, min_sites: int) -> None:
    client.CustomObjectsApi(hub.api_client()).create_namespaced_custom_object(
        GROUP, "v1alpha1", namespace, "trainingjobs", {
            "apiVersion": f"{GROUP}/v1alpha1", "kind": "TrainingJob",
            "metadata": {"name": name},
            "spec": {"app": {"reference": "chest-xray", "digest": "sha256:" + "b" * 64},
                     "purpose": "federated-training", "minSites": min_sites, "rounds": 3}})


def training_job(hub: Cluster, namespace: str, name: str) -> dict[str, Any]:
    return client.CustomObjectsApi(hub.api_client()).get_namespaced_custom_object(
        GROUP, "v1alpha1", namespace, "trainingjobs", name)


def test_training_job_fans_out_and_each_site_decides_under_its_policy(
    federation: Federation, enrolled_federation: dict[str, Any], namespace: str
) -> None:
    hub = federation.hub
    registration.approve_site(hub.api_client(), "site-b")  # idempotent; see the test above
    for site in ("site-a", "site-b"):
        wait_for(lambda s=site: (c := condition(federated_site(hub, s), "Ready"))
                 and c["status"] == "True", what=f"{site} Ready")
    _training_job(hub, namespace, "enough", min_sites=1)
    _training_job(hub, namespace, "too-many", min_sites=2)

    def decided(job: dict[str, Any]) -> bool:
        sites = (job.get("status") or {}).get("sites") or []
        return len(sites) == 2 and all(d["decision"] != "Pending" for d in sites)

    job = wait_for(lambda: (j := training_job(hub, namespace, "enough")) and decided(j) and j,
                   what="both decisions")
    by_site = {d["site"]: d for d in job["status"]["sites"]}
    assert by_site["site-a"]["decision"] == "Accepted"
    assert by_site["site-b"]["decision"] == "Declined"
    assert by_site["site-b"]["reason"] == "PurposeNotAllowed"
    assert "federated-training" in by_site["site-b"]["message"]
    assert condition(job, "SitesAccepted")["status"] == "True"
    assert condition(job, "Succeeded")["reason"] == "ReadyToTrain"
    assert job["status"]["acceptedSites"] == 1

    failed = wait_for(lambda: (c := condition(training_job(hub, namespace, "too-many"),
                                              "Succeeded")) and c["status"] == "False" and c,
                      what="too-many fails")
    assert failed["reason"] == "InsufficientSites"
    assert "site-b: PurposeNotAllowed" in failed["message"]

    # The work items live in each site's namespace on the hub, readable by that site only.
    items = client.CustomObjectsApi(hub.api_client()).list_namespaced_custom_object(
        GROUP, "v1alpha1", "site-site-a", "workitems")["items"]
    assert f"{namespace}.enough" in {i["metadata"]["name"] for i in items}
    client.CustomObjectsApi(hub.api_client()).delete_namespaced_custom_object(
        GROUP, "v1alpha1", namespace, "trainingjobs", "enough")
    wait_for(lambda: f"{namespace}.enough" not in {
        i["metadata"]["name"] for i in client.CustomObjectsApi(hub.api_client())
        .list_namespaced_custom_object(GROUP, "v1alpha1", "site-site-a", "workitems")["items"]},
        what="work items withdrawn with the job")


def test_hub_outage_site_keeps_working_and_hub_catches_up(
    federation: Federation, enrolled_federation: dict[str, Any], testbed: Testbed
) -> None:
    site_a, hub = federation.sites["site-a"], federation.hub
    wait_for(lambda: (c := condition(federated_site(hub, "site-a"), "Ready"))
             and c["status"] == "True", what="site-a Ready before the outage")
    apps = client.AppsV1Api(site_a.api_client())
    before = apps.read_namespaced_stateful_set("radiology-appliance", "radiology")

    hub.component("kube-apiserver").stop()
    try:
        outage_started = time.monotonic()
        # The site notices, and keeps reconciling locally: a spec change still lands.
        wait_for(lambda: (c := condition(datanode(site_a), "HubReachable"))
                 and c["status"] == "False", timeout=40, what="site sees the hub down")
        client.CustomObjectsApi(site_a.api_client()).patch_namespaced_custom_object(
            GROUP, "v1alpha1", "radiology", "datanodes", "radiology",
            {"spec": {"ingest": {"dicom": {"aeTitle": "DURING_OUTAGE"}}}})
        wait_for(lambda: "DURING_OUTAGE" in client.CoreV1Api(site_a.api_client())
                 .read_namespaced_config_map("radiology-appliance-config", "radiology")
                 .data["config.json"], what="local reconcile during the outage")
        time.sleep(max(0.0, 60 - (time.monotonic() - outage_started)))
    finally:
        testbed.up(["hub"])  # idempotent: restarts only the stopped apiserver

    after = apps.read_namespaced_stateful_set("radiology-appliance", "radiology")
    assert after.metadata.uid == before.metadata.uid  # the appliance was never replaced
    assert condition(datanode(site_a), "Ready")["status"] == "True"
    # Back up: the hub first sees a stale heartbeat (Unknown), then the site's next one.
    unknown = wait_for(lambda: (c := condition(federated_site(hub, "site-a"), "Ready"))
                       and c["status"] == "Unknown" and c, timeout=30, what="Unknown")
    assert unknown["reason"] == "HeartbeatMissed"
    wait_for(lambda: (c := condition(federated_site(hub, "site-a"), "Ready"))
             and c["status"] == "True", timeout=60, what="Ready again")
    wait_for(lambda: (c := condition(datanode(site_a), "HubReachable"))
             and c["status"] == "True", timeout=60, what="site sees the hub again")
