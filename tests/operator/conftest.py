from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from kubernetes import client

from incisive_operator.api import GROUP
from incisive_operator.api.v1alpha1 import KINDS
from incisive_operator.testbed import Cluster, Toolchain

from .processes import OperatorProcess, operator_process

CRDS = Path(__file__).resolve().parents[2] / "crds"


def apply_crds(cluster: Cluster, tools: Toolchain) -> None:
    files = [str(p) for p in sorted(CRDS.glob("*.yaml"))]
    cluster.kubectl(tools, "apply", "--server-side", "--field-manager=incisive-tests",
                    *[arg for f in files for arg in ("-f", f)])
    names = [f"crd/{r.plural}.{GROUP}" for r in KINDS]
    cluster.kubectl(tools, "wait", "--for=condition=Established", "--timeout=60s", *names)


@pytest.fixture(scope="session")
def crds_on_hub(cluster: Cluster, tools: Toolchain) -> Cluster:
    apply_crds(cluster, tools)
    return cluster


@pytest.fixture
def site_operator(
    crds_on_hub: Cluster, namespace: str, tmp_path: Path
) -> Iterator[OperatorProcess]:
    """The operator in site mode, watching only this test's namespace."""
    with operator_process("site", crds_on_hub.kubeconfig, [namespace],
                          tmp_path / "operator.log") as process:
        yield process
        delete_datanodes(crds_on_hub, namespace)


def delete_datanodes(cluster: Cluster, namespace: str, timeout: float = 60) -> None:
    """Delete a namespace's DataNodes while the operator still runs: kopf puts a finalizer
    on objects with timers or daemons, and only a running operator removes it."""
    objects = client.CustomObjectsApi(cluster.api_client())
    objects.delete_collection_namespaced_custom_object(GROUP, "v1alpha1", namespace,
                                                       "datanodes")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and objects.list_namespaced_custom_object(
            GROUP, "v1alpha1", namespace, "datanodes")["items"]:
        time.sleep(0.2)
