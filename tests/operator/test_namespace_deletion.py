"""Deleting a whole namespace of DataNodes while the site operator watches it.

kopf puts our finalizer on every DataNode (the reconcile timer and the enrolment daemon need
it), so only the running operator lets them go. Regression: with a few dozen DataNodes the
namespace controller reported the namespace Terminating with every condition False (its first
pass, before it counts what remains) while the DataNodes were not yet marked; kopf took that
for a deleted namespace and stopped its watch-streams there for good, so it never saw the
DataNodes' deletion and the namespace hung in Terminating. The operator process is real.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.rest import ApiException

from incisive_operator.api import GROUP
from incisive_operator.naming import FINALIZER
from incisive_operator.testbed import Cluster

from .processes import operator_process

pytestmark = pytest.mark.cluster
DATANODES = 40  # 3 never showed it; 30 to 50 did, every time
GONE_WITHIN = 60.0  # seconds; deleted in well under 20 s once the operator sees the deletion


def _datanode(name: str) -> dict[str, Any]:
    return {"apiVersion": f"{GROUP}/v1alpha1", "kind": "DataNode", "metadata": {"name": name},
            "spec": {"storage": {"size": "1Gi"}, "deidentification": {"vault": {
                "address": "https://vault.example:8200", "project": "regression",
                "tokenSecretRef": {"name": "vault"}}}}}


@pytest.fixture
def doomed_namespace(crds_on_hub: Cluster) -> Iterator[str]:
    """A namespace the test itself deletes; afterwards, whatever is left is forced out."""
    name = f"t-ns-deletion-{uuid.uuid4().hex[:6]}"
    api = crds_on_hub.api_client()
    client.CoreV1Api(api).create_namespace(
        client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
    yield name
    objects = client.CustomObjectsApi(api)
    # A failed run leaves DataNodes that nobody will finalize: release them, so the session's
    # cluster is not left with a namespace stuck in Terminating.
    for item in objects.list_namespaced_custom_object(GROUP, "v1alpha1", name,
                                                      "datanodes")["items"]:
        try:
            objects.patch_namespaced_custom_object(
                GROUP, "v1alpha1", name, "datanodes", item["metadata"]["name"],
                {"metadata": {"finalizers": None}})
        except ApiException as exc:
            if exc.status != 404:
                raise
    try:
        client.CoreV1Api(api).delete_namespace(name)
    except ApiException as exc:
        if exc.status != 404:
            raise


def _namespace_exists(core: client.CoreV1Api, name: str) -> bool:
    try:
        core.read_namespace(name)
    except ApiException as exc:
        if exc.status == 404:
            return False
        raise
    return True


def test_deleting_a_namespace_of_many_datanodes_completes(
    crds_on_hub: Cluster, doomed_namespace: str, tmp_path: Path
) -> None:
    api = crds_on_hub.api_client()
    objects, core = client.CustomObjectsApi(api), client.CoreV1Api(api)
    log = tmp_path / "operator.log"
    with operator_process("site", crds_on_hub.kubeconfig, [doomed_namespace], log):
        for i in range(DATANODES):
            objects.create_namespaced_custom_object(GROUP, "v1alpha1", doomed_namespace,
                                                    "datanodes", _datanode(f"dn-{i}"))

        def converged() -> bool:
            items = objects.list_namespaced_custom_object(
                GROUP, "v1alpha1", doomed_namespace, "datanodes")["items"]
            return len(items) == DATANODES and all(
                FINALIZER in item["metadata"].get("finalizers", [])
                and any(c["type"] == "ChildrenApplied" and c["status"] == "True"
                        for c in (item.get("status") or {}).get("conditions", []))
                for item in items)

        # ~20 s on an idle machine; the bound is for one shared with other clusters.
        deadline = time.monotonic() + 120
        while not converged():
            assert time.monotonic() < deadline, "DataNodes not converged in 120 s"
            time.sleep(0.5)

        started = time.monotonic()
        core.delete_namespace(doomed_namespace)
        while _namespace_exists(core, doomed_namespace):
            if time.monotonic() - started > GONE_WITHIN:
                left = objects.list_namespaced_custom_object(
                    GROUP, "v1alpha1", doomed_namespace, "datanodes")["items"]
                pytest.fail(
                    f"namespace still Terminating after {GONE_WITHIN:.0f} s with "
                    f"{len(left)} DataNodes holding {FINALIZER}; operator log tail:\n"
                    + log.read_text()[-3000:])
            time.sleep(0.5)
