"""Site mode: a DataNode becomes its appliance and fences, converges after a crash, and
takes its children with it when deleted. The operator runs as a real process."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client
from kubernetes.client.rest import ApiException

from incisive_operator.api import GROUP
from incisive_operator.naming import DATANODE_LABEL
from incisive_operator.testbed import Cluster

from .processes import OperatorProcess, operator_process

pytestmark = pytest.mark.cluster
SAMPLE = Path(__file__).resolve().parents[2] / "crds" / "samples" / "datanode.yaml"
CHILD_KINDS = ("statefulsets", "services", "persistentvolumeclaims", "configmaps",
               "serviceaccounts", "networkpolicies")


def wait_for(predicate: Any, timeout: float = 60, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.25)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def get_datanode(cluster: Cluster, namespace: str, name: str) -> dict[str, Any] | None:
    try:
        return client.CustomObjectsApi(cluster.api_client()).get_namespaced_custom_object(
            GROUP, "v1alpha1", namespace, "datanodes", name)
    except ApiException as exc:
        if exc.status == 404:
            return None
        raise


def condition(obj: dict[str, Any] | None, type_: str) -> dict[str, Any] | None:
    for entry in (obj or {}).get("status", {}).get("conditions", []):
        if entry["type"] == type_:
            return entry
    return None


def children(cluster: Cluster, namespace: str, datanode: str) -> dict[str, list[str]]:
    api = cluster.api_client()
    core, apps, net = client.CoreV1Api(api), client.AppsV1Api(api), client.NetworkingV1Api(api)
    selector = f"{DATANODE_LABEL}={datanode}"
    listings = {
        "statefulsets": apps.list_namespaced_stateful_set,
        "services": core.list_namespaced_service,
        "persistentvolumeclaims": core.list_namespaced_persistent_volume_claim,
        "configmaps": core.list_namespaced_config_map,
        "serviceaccounts": core.list_namespaced_service_account,
        "networkpolicies": net.list_namespaced_network_policy,
    }
    return {kind: [o.metadata.name for o in list_(namespace, label_selector=selector).items]
            for kind, list_ in listings.items()}


def create_sample(cluster: Cluster, namespace: str) -> dict[str, Any]:
    body = yaml.safe_load(SAMPLE.read_text())
    return client.CustomObjectsApi(cluster.api_client()).create_namespaced_custom_object(
        GROUP, "v1alpha1", namespace, "datanodes", body)


def test_sample_datanode_becomes_a_ready_appliance(
    crds_on_hub: Cluster, namespace: str, site_operator: OperatorProcess
) -> None:
    created = create_sample(crds_on_hub, namespace)
    name = created["metadata"]["name"]
    ready = wait_for(
        lambda: (c := condition(get_datanode(crds_on_hub, namespace, name), "Ready"))
        and c["status"] == "True" and c, what="Ready=True")
    assert ready["reason"] == "ApplianceReady"
    node = get_datanode(crds_on_hub, namespace, name)
    assert node["status"]["observedGeneration"] == node["metadata"]["generation"]
    assert node["status"]["readyReplicas"] == 1
    assert {k: len(v) for k, v in children(crds_on_hub, namespace, name).items()} == {
        k: 1 for k in CHILD_KINDS}

    api = crds_on_hub.api_client()
    statefulset = client.AppsV1Api(api).read_namespaced_stateful_set(
        f"{name}-appliance", namespace)
    owner = statefulset.metadata.owner_references[0]
    assert (owner.kind, owner.name, owner.controller) == ("DataNode", name, True)
    pod = statefulset.spec.template.spec
    assert pod.security_context.run_as_non_root is True
    assert pod.containers[0].security_context.capabilities.drop == ["ALL"]

    policy = client.NetworkingV1Api(api).read_namespaced_network_policy(
        f"{name}-appliance", namespace)
    assert sorted(policy.spec.policy_types) == ["Egress", "Ingress"]
    pacs_rule = next(r for r in policy.spec.ingress if r._from[0].ip_block)
    assert pacs_rule._from[0].ip_block.cidr == "10.20.0.0/16"
    assert {p.port for p in pacs_rule.ports} == {11112, 8080}

    events = client.CoreV1Api(api).list_namespaced_event(
        namespace, field_selector=f"involvedObject.name={name}").items
    assert any(e.reason == "ApplianceReady" for e in events)
    metrics = site_operator.metrics_text()
    assert 'incisive_operator_reconciles_total{kind="DataNode",result="ok"}' in metrics
    assert 'incisive_operator_objects{kind="DataNode",status="True"} 1.0' in metrics
    assert name not in metrics  # object names never become metric labels


def test_spec_change_rolls_the_appliance(
    crds_on_hub: Cluster, namespace: str, site_operator: OperatorProcess
) -> None:
    name = create_sample(crds_on_hub, namespace)["metadata"]["name"]
    apps = client.AppsV1Api(crds_on_hub.api_client())
    first = wait_for(lambda: _config_hash(apps, namespace, name), what="StatefulSet")
    client.CustomObjectsApi(crds_on_hub.api_client()).patch_namespaced_custom_object(
        GROUP, "v1alpha1", namespace, "datanodes", name,
        {"spec": {"ingest": {"dicom": {"aeTitle": "RENAMED"}}}})
    wait_for(lambda: _config_hash(apps, namespace, name) not in (None, first),
             what="a new config hash")
    node = wait_for(lambda: (n := get_datanode(crds_on_hub, namespace, name))
                    and n["status"].get("observedGeneration") == 2 and n, what="generation 2")
    assert condition(node, "ChildrenApplied")["observedGeneration"] == 2


def _config_hash(apps: client.AppsV1Api, namespace: str, name: str) -> str | None:
    try:
        sts = apps.read_namespaced_stateful_set(f"{name}-appliance", namespace)
    except ApiException:
        return None
    return sts.spec.template.metadata.annotations.get("incisive-project.eu/config-hash")


def test_killed_mid_reconcile_converges_without_duplicates(
    crds_on_hub: Cluster, namespace: str, tmp_path: Path
) -> None:
    log = tmp_path / "operator.log"
    with operator_process("site", crds_on_hub.kubeconfig, [namespace], log) as first:
        names = []
        for i in range(4):
            body = yaml.safe_load(SAMPLE.read_text())
            body["metadata"]["name"] = f"node-{i}"
            client.CustomObjectsApi(crds_on_hub.api_client()).create_namespaced_custom_object(
                GROUP, "v1alpha1", namespace, "datanodes", body)
            names.append(body["metadata"]["name"])
        # Kill as soon as the first child appears: some DataNodes are half-done.
        wait_for(lambda: any(children(crds_on_hub, namespace, n)["configmaps"] for n in names),
                 what="a first child")
        first.kill()
    with operator_process("site", crds_on_hub.kubeconfig, [namespace], log):
        for name in names:
            wait_for(lambda n=name: (c := condition(get_datanode(crds_on_hub, namespace, n),
                                                   "Ready")) and c["status"] == "True",
                     what=f"{name} Ready after restart")
        for name in names:
            assert {k: len(v) for k, v in children(crds_on_hub, namespace, name).items()} == {
                k: 1 for k in CHILD_KINDS}, name


def test_deleting_a_datanode_removes_its_children(
    crds_on_hub: Cluster, namespace: str, site_operator: OperatorProcess
) -> None:
    name = create_sample(crds_on_hub, namespace)["metadata"]["name"]
    wait_for(lambda: all(children(crds_on_hub, namespace, name).values()), what="children")
    client.CustomObjectsApi(crds_on_hub.api_client()).delete_namespaced_custom_object(
        GROUP, "v1alpha1", namespace, "datanodes", name)
    wait_for(lambda: get_datanode(crds_on_hub, namespace, name) is None, what="deletion")
    # The garbage collector follows the owner references (PVCs keep their protection
    # finalizer until no pod uses them; kwok deletes the pod, so they go too).
    wait_for(lambda: not any(children(crds_on_hub, namespace, name).values()), timeout=90,
             what="children garbage-collected")


def test_liveness_endpoint_answers(site_operator: OperatorProcess) -> None:
    import urllib.request

    with urllib.request.urlopen(site_operator.liveness, timeout=5) as response:  # noqa: S310
        assert response.status == 200
