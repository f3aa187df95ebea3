"""Fixtures for the HPC tests: the CRDs on the GPU cluster, a fresh namespace per test, and
a real operator (the HPCWorkload handlers only) watching that namespace."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any, TypeVar

import kopf
import pytest
import yaml
from kubernetes import client

from incisive_operator.handlers import hpcworkload
from incisive_operator.hpc.settings import HPCSettings
from incisive_operator.kube import apply
from incisive_operator.testbed import Cluster

from ..conftest import _namespace_name, create_namespace, delete_namespace
from ..operator_runner import running_operator
from .slurm_cluster import slurm_cluster  # noqa: F401 - a fixture for test_slurm.py

CRDS = Path(__file__).resolve().parents[2] / "crds"
T = TypeVar("T")


@pytest.fixture(scope="session")
def gpu_api(gpu_cluster: Cluster) -> client.ApiClient:
    return gpu_cluster.api_client()


@pytest.fixture(scope="session")
def hpc_crds(gpu_api: client.ApiClient) -> None:
    """Every CRD from crds/, server-side applied to the GPU cluster and Established."""
    extensions = client.ApiextensionsV1Api(gpu_api)
    names = []
    for path in sorted(CRDS.glob("*.yaml")):
        crd = yaml.safe_load(path.read_text())
        apply(gpu_api, crd)
        names.append(crd["metadata"]["name"])
    for name in names:
        wait_for(lambda n=name: any(
            c.type == "Established" and c.status == "True"
            for c in extensions.read_custom_resource_definition(n).status.conditions or []
        ), f"CRD {name} Established")


@pytest.fixture
def gpu_namespace(gpu_cluster: Cluster, hpc_crds: None,
                  request: pytest.FixtureRequest) -> Iterator[str]:
    name = _namespace_name(request)
    create_namespace(gpu_cluster, name)
    yield name
    delete_namespace(gpu_cluster, name)


@pytest.fixture
def hpc_operator(gpu_api: client.ApiClient, gpu_namespace: str) -> Callable[
        [HPCSettings], AbstractContextManager[None]]:
    """Start the HPCWorkload handlers with the given settings, watching the test's namespace."""

    def start(settings: HPCSettings) -> AbstractContextManager[None]:
        registry = kopf.OperatorRegistry()
        hpcworkload.register(registry, memo_key="hub_api", settings=settings)
        return running_operator(registry, gpu_api, [gpu_namespace], "hub_api")

    return start


def wait_for(probe: Callable[[], T], what: str, timeout: float = 60.0,
             interval: float = 0.25) -> T:
    deadline = time.monotonic() + timeout
    while True:
        result = probe()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


def condition(obj: dict[str, Any], type_: str) -> dict[str, Any] | None:
    return next((c for c in (obj.get("status") or {}).get("conditions") or []
                 if c.get("type") == type_), None)
