"""The testbed's clusters are real Kubernetes: pinned version, real authn, RBAC, scheduling."""

from __future__ import annotations

import time

import pytest
from kubernetes import client
from kubernetes.client.rest import ApiException

from incisive_operator.testbed import Cluster, versions

from ..conftest import Federation, create_namespace, delete_namespace

pytestmark = pytest.mark.cluster


def _client_as(cluster: Cluster, token: str | None) -> client.ApiClient:
    """A client that authenticates with a bearer token only (or with nothing at all)."""
    configuration = client.Configuration()
    configuration.host = cluster.server
    configuration.ssl_ca_cert = str(cluster.pki_dir / "ca.crt")
    if token is not None:
        configuration.api_key = {"authorization": f"Bearer {token}"}
    return client.ApiClient(configuration)


def test_apiserver_serves_the_pinned_release(cluster: Cluster) -> None:
    info = client.VersionApi(cluster.api_client()).get_code()
    assert info.git_version == f"v{versions.KUBERNETES}"
    assert info.git_version != "v0.0.0"
    assert (info.major, info.minor) == tuple(versions.KUBERNETES.split(".")[:2])


def test_service_account_bound_to_one_namespace_is_forbidden_in_another(
    cluster: Cluster, namespace: str
) -> None:
    other = namespace + "-other"
    create_namespace(cluster, other)
    try:
        admin = cluster.api_client()
        core, rbac = client.CoreV1Api(admin), client.RbacAuthorizationV1Api(admin)
        core.create_namespaced_service_account(
            namespace, client.V1ServiceAccount(metadata=client.V1ObjectMeta(name="reader"))
        )
        rbac.create_namespaced_role(namespace, client.V1Role(
            metadata=client.V1ObjectMeta(name="pod-reader"),
            rules=[client.V1PolicyRule(api_groups=[""], resources=["pods"], verbs=["list"])],
        ))
        rbac.create_namespaced_role_binding(namespace, client.V1RoleBinding(
            metadata=client.V1ObjectMeta(name="reader-reads-pods"),
            role_ref=client.V1RoleRef(api_group="rbac.authorization.k8s.io", kind="Role",
                                      name="pod-reader"),
            subjects=[client.RbacV1Subject(kind="ServiceAccount", name="reader",
                                           namespace=namespace)],
        ))
        token = core.create_namespaced_service_account_token(
            "reader", namespace,
            client.AuthenticationV1TokenRequest(
                spec=client.V1TokenRequestSpec(audiences=[], expiration_seconds=600)
            ),
        ).status.token
        as_reader = client.CoreV1Api(_client_as(cluster, token))

        assert as_reader.list_namespaced_pod(namespace).items == []
        with pytest.raises(ApiException) as denied:
            as_reader.list_namespaced_pod(other)
        assert denied.value.status == 403
        assert f"system:serviceaccount:{namespace}:reader" in denied.value.body
    finally:
        delete_namespace(cluster, other)


def test_requests_without_credentials_are_unauthenticated(cluster: Cluster) -> None:
    with pytest.raises(ApiException) as rejected:
        client.CoreV1Api(_client_as(cluster, None)).list_namespace()
    assert rejected.value.status in (401, 403)
    forged = client.CoreV1Api(_client_as(cluster, "not-a-real-token"))
    with pytest.raises(ApiException) as unauthorized:
        forged.list_namespace()
    assert unauthorized.value.status == 401


def test_default_admission_plugins_are_active(cluster: Cluster, namespace: str) -> None:
    """ServiceAccount admission gives every namespace a default ServiceAccount, and the
    LimitRanger and NamespaceLifecycle plugins act on requests."""
    core = client.CoreV1Api(cluster.api_client())
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        names = [sa.metadata.name for sa in core.list_namespaced_service_account(namespace).items]
        if "default" in names:
            break
        time.sleep(0.2)
    assert "default" in names
    with pytest.raises(ApiException) as missing:
        core.create_namespaced_config_map(
            "no-such-namespace-here",
            client.V1ConfigMap(metadata=client.V1ObjectMeta(name="x")),
        )
    assert missing.value.status == 404


def test_pods_are_scheduled_onto_kwok_nodes_and_jobs_complete(
    cluster: Cluster, namespace: str
) -> None:
    admin = cluster.api_client()
    batch = client.BatchV1Api(admin)
    batch.create_namespaced_job(namespace, client.V1Job(
        metadata=client.V1ObjectMeta(name="one-shot"),
        spec=client.V1JobSpec(template=client.V1PodTemplateSpec(spec=client.V1PodSpec(
            restart_policy="Never",
            containers=[client.V1Container(name="main", image="busybox")],
        ))),
    ))
    deadline = time.monotonic() + 60
    job = None
    while time.monotonic() < deadline:
        job = batch.read_namespaced_job_status("one-shot", namespace)
        if job.status.succeeded:
            break
        time.sleep(0.5)
    assert job is not None and job.status.succeeded == 1
    pods = client.CoreV1Api(admin).list_namespaced_pod(namespace).items
    assert pods and all(p.spec.node_name.startswith("hub-node-") for p in pods)


def test_federation_members_are_separate_control_planes(federation: Federation) -> None:
    servers = {member.server for member in federation.clusters}
    assert len(servers) == 3
    for member in federation.clusters:
        assert member.ready_nodes(), f"{member.name} has no Ready node"
        assert member.version() == f"v{versions.KUBERNETES}"
    # Each cluster has its own CA: the hub's admin certificate means nothing at a site.
    site = federation.sites["site-a"]
    configuration = client.Configuration()
    configuration.host = site.server
    configuration.ssl_ca_cert = str(site.pki_dir / "ca.crt")
    configuration.cert_file = str(federation.hub.pki_dir / "client-admin.crt")
    configuration.key_file = str(federation.hub.pki_dir / "client-admin.key")
    with pytest.raises(ApiException) as rejected:
        client.CoreV1Api(client.ApiClient(configuration)).list_namespace()
    assert rejected.value.status == 401


def test_federation_namespaces_are_fresh_on_every_member(
    federation: Federation, federation_namespaces: dict[str, str]
) -> None:
    for member in federation.clusters:
        name = federation_namespaces[member.name]
        ns = client.CoreV1Api(member.api_client()).read_namespace(name)
        assert ns.status.phase == "Active"
        assert client.CoreV1Api(member.api_client()).list_namespaced_pod(name).items == []


def test_gpu_cluster_nodes_advertise_gpus(gpu_cluster: Cluster) -> None:
    nodes = client.CoreV1Api(gpu_cluster.api_client()).list_node().items
    assert len(nodes) == 2
    for node in nodes:
        assert int(node.status.allocatable["nvidia.com/gpu"]) == 8
        assert node.metadata.labels["nvidia.com/gpu.product"]


def test_watches_flow_claims_bind_promptly(cluster: Cluster, namespace: str) -> None:
    """kwok binds a claim of the default StorageClass as soon as it sees it: this fails
    when watch events stop flowing (see docs/testbed.md on etcd and WatchList)."""
    core = client.CoreV1Api(cluster.api_client())
    for i in range(3):
        core.create_namespaced_persistent_volume_claim(namespace, client.V1PersistentVolumeClaim(
            metadata=client.V1ObjectMeta(name=f"claim-{i}"),
            spec=client.V1PersistentVolumeClaimSpec(
                access_modes=["ReadWriteOnce"],
                resources=client.V1VolumeResourceRequirements(requests={"storage": "1Gi"}),
            ),
        ))
        started = time.monotonic()
        while time.monotonic() - started < 10:
            claim = core.read_namespaced_persistent_volume_claim(f"claim-{i}", namespace)
            if claim.status.phase == "Bound":
                break
            time.sleep(0.1)
        assert claim.status.phase == "Bound", f"claim-{i} still {claim.status.phase} after 10 s"
        assert claim.spec.storage_class_name == "kwok-volume"
