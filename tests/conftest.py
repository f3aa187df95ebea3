"""Fixtures shared by every tier: real clusters from the testbed, fresh namespaces per test.

The session's testbed lives in a temporary folder on its own loopback block (127.20.*.*
unless INCISIVE_TEST_BLOCK says otherwise), so it never touches a developer's own testbed
or demo, and it is stopped when the session ends.
"""

from __future__ import annotations

import os
import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from kubernetes import client

from incisive_operator.testbed import Cluster, Testbed, Toolchain
from incisive_operator.testbed import ensure as ensure_toolchain

TEST_BLOCK = int(os.environ.get("INCISIVE_TEST_BLOCK", "20"))
SITES = ("site-a", "site-b")


@dataclass(frozen=True)
class Federation:
    hub: Cluster
    sites: dict[str, Cluster]

    @property
    def clusters(self) -> list[Cluster]:
        return [self.hub, *self.sites.values()]


@pytest.fixture(scope="session")
def tools() -> Toolchain:
    return ensure_toolchain(progress=print)


@pytest.fixture(scope="session")
def testbed(tmp_path_factory: pytest.TempPathFactory, tools: Toolchain) -> Iterator[Testbed]:
    bed = Testbed(tmp_path_factory.mktemp("testbed"), block=TEST_BLOCK, progress=print)
    try:
        yield bed
    finally:
        bed.down()


@pytest.fixture(scope="session")
def cluster(testbed: Testbed) -> Cluster:
    """One real cluster for the session (the federation's hub)."""
    return testbed.up(["hub"])[0]


@pytest.fixture(scope="session")
def federation(testbed: Testbed, cluster: Cluster) -> Federation:
    """A hub and two hospital sites, each a separate control plane with its own CA."""
    clusters = {c.name: c for c in testbed.up(["hub", *SITES])}
    return Federation(hub=clusters["hub"], sites={s: clusters[s] for s in SITES})


@pytest.fixture(scope="session")
def gpu_cluster(testbed: Testbed) -> Cluster:
    """The consortium's GPU cluster: kwok nodes advertising nvidia.com/gpu."""
    return testbed.up(["gpu"])[0]


def _namespace_name(request: pytest.FixtureRequest) -> str:
    stem = re.sub(r"[^a-z0-9]+", "-", request.node.name.lower()).strip("-")[:40].strip("-")
    return f"t-{stem}-{uuid.uuid4().hex[:6]}"


def create_namespace(target: Cluster, name: str) -> None:
    api = client.CoreV1Api(target.api_client())
    api.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))


def delete_namespace(target: Cluster, name: str) -> None:
    api = client.CoreV1Api(target.api_client())
    api.delete_namespace(name)


@pytest.fixture
def namespace(cluster: Cluster, request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh namespace on the session cluster, deleted after the test."""
    name = _namespace_name(request)
    create_namespace(cluster, name)
    yield name
    delete_namespace(cluster, name)


@pytest.fixture
def federation_namespaces(
    federation: Federation, request: pytest.FixtureRequest
) -> Iterator[dict[str, str]]:
    """A fresh namespace of the same name on the hub and on every site."""
    name = _namespace_name(request)
    for member in federation.clusters:
        create_namespace(member, name)
    yield {member.name: name for member in federation.clusters}
    for member in federation.clusters:
        delete_namespace(member, name)
