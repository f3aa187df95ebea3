"""DataAccessRequest end to end on real clusters: a hub and two hospital sites, each with
its own operator process, a real ledger log on loopback, and trust material the test makes
itself (a supervisory body that signs a TS 119 612 list, qualified CAs, researchers'
certificates).

What stands in for what: the researcher is an impersonated user on the hub's real
apiserver (the grant is RBAC, which the apiserver enforces, so impersonation is the honest
check); the sites' dataset catalogue entries on the hub are created by the test, as a
site's publisher would; the ledger is a real log server on 127.<block>.8.1.
"""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import hashlib
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from kubernetes import client
from kubernetes.client.rest import ApiException

from incisive_node.identity.qualified import QcType
from incisive_node.identity.signatures import canonical_json, sign_detached
from incisive_node.identity.trusted_list import GRANTED, WITHDRAWN
from incisive_node.ledger.entries import Submitters, parse_leaf
from incisive_node.ledger.log import Log
from incisive_node.ledger.note import Ed25519Signer
from incisive_node.ledger.server import serve_log
from incisive_node.ledger.store import MemoryStore
from incisive_operator.api import GROUP
from incisive_operator.api.v1alpha1.dataaccessrequest import signed_content
from incisive_operator.hub import access, access_grant, access_settings, registration, sites
from incisive_operator.hub.access import DATASET_LABEL, dataset_object
from incisive_operator.site.access import APPROVED_ACCESS_ANNOTATION
from incisive_operator.testbed import Cluster, Toolchain

from ..charts.conftest import CHARTS, Helm
from ..conftest import TEST_BLOCK, Federation
from ..identity.factory import (
    SCHEME_OPERATOR,
    Issued,
    ServiceSpec,
    make_ca,
    make_qualified,
    trusted_list_xml,
)
from .conftest import apply_crds
from .processes import operator_process
from .test_datanode import condition, wait_for

SAMPLE = Path(__file__).resolve().parents[2] / "crds" / "samples" / "dataaccessrequest.yaml"

V = "v1alpha1"
SITES = {"access-a": "site-a", "access-b": "site-b"}  # FederatedSite -> site cluster
SITE_NAMESPACE = "imaging"  # the DataNode's namespace on each site cluster
PURPOSE = "lung-cancer-research"
ORG_ID = "VATBE-0876065378"
RESEARCHER = "maria@uni.example"
LEDGER_HOST = f"127.{TEST_BLOCK}.8.1"


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@pytest.fixture(scope="module")
def trust() -> dict[str, Any]:
    return make_trust()


def make_trust() -> dict[str, Any]:
    """A granted and a withdrawn qualified CA in a signed list; researchers' certificates."""
    now = _now()
    good_ca, withdrawn_ca, rogue_ca = (make_ca(n) for n in (
        "Good Qualified CA", "Withdrawn Qualified CA", "Rogue Qualified CA"))
    listed = trusted_list_xml("DE", [
        ServiceSpec("Good Qualified CA for QCs", good_ca),
        ServiceSpec("Withdrawn Qualified CA for QCs", withdrawn_ca,
                    statuses=[(GRANTED, now - dt.timedelta(days=2000)),
                              (WITHDRAWN, now - dt.timedelta(days=30))]),
    ], issued=now - dt.timedelta(days=1), next_update=now + dt.timedelta(days=60))
    valid = {"not_before": now - dt.timedelta(days=10), "not_after": now + dt.timedelta(days=365)}

    def esign(issuer: Issued, **extra: Any) -> Issued:
        return make_qualified(issuer, common_name="Maria Researcher",
                              qc_types=(QcType.ESIGN,), **valid, **extra)

    return {
        "list": listed,
        "researcher": esign(good_ca, organization_identifier=ORG_ID),
        "withdrawn": esign(withdrawn_ca),
        "rogue": esign(rogue_ca),
        "malformed_org": esign(good_ca, organization_identifier="VATQQ-0876065378"),
        "eseal": make_qualified(good_ca, common_name="University Hospital",
                                organization_identifier=ORG_ID, qc_types=(QcType.ESEAL,),
                                **valid),
    }


def _pem(issued: Issued) -> str:
    return issued.cert.public_bytes(serialization.Encoding.PEM).decode()


def settings_data(trust: dict[str, Any], xml: bytes | None = None) -> dict[str, str]:
    return {
        "allowedPurposes": f"{PURPOSE}, ai-validation",
        "maxDuration": "1d",
        "eu-de.xml": (xml or trust["list"]).decode(),
        "eu-de.pem": _pem(SCHEME_OPERATOR),
    }


@pytest.fixture(scope="module")
def ledger() -> Iterator[Log]:
    submitters = Submitters()
    key = Ed25519PrivateKey.generate()
    submitters.add_key(key.public_key())
    log = Log(MemoryStore(), Ed25519Signer.generate("hub.incisive.test/ledger"), submitters)
    with serve_log(log, host=LEDGER_HOST) as server:
        log.submitter_key = key  # type: ignore[attr-defined]
        log.url = server.url  # type: ignore[attr-defined]
        yield log


@pytest.fixture(scope="module")
def access_federation(
    federation: Federation, tools: Toolchain, trust: dict[str, Any], ledger: Log,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[dict[str, Any]]:
    """Hub operator (recording into the ledger) and one site operator per site; both sites
    enrolled and Ready; the hub's data-access settings and the sites' catalogues in place."""
    logs = tmp_path_factory.mktemp("access-operators")
    for member in federation.clusters:
        apply_crds(member, tools)
    hub_api = federation.hub.api_client()
    _ensure_namespace(federation.hub, access_settings.config_location()[0])
    _put_settings(federation.hub, settings_data(trust))
    key_file = logs / "ledger.key"
    key_file.write_bytes(ledger.submitter_key.private_bytes(  # type: ignore[attr-defined]
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))
    with pytest.MonkeyPatch.context() as env, contextlib.ExitStack() as stack:
        env.setenv("INCISIVE_LEDGER_URL", ledger.url)  # type: ignore[attr-defined]
        env.setenv("INCISIVE_LEDGER_KEY", str(key_file))
        env.setenv("INCISIVE_LEDGER_SPOOL", str(logs / "ledger-spool"))
        hub_op = stack.enter_context(
            operator_process("hub", federation.hub.kubeconfig, [], logs / "hub.log"))
        for variable in ("INCISIVE_LEDGER_URL", "INCISIVE_LEDGER_KEY", "INCISIVE_LEDGER_SPOOL"):
            env.delenv(variable)
        try:
            for site, cluster_name in SITES.items():
                reg = registration.register_site(hub_api, site, "BE", auto_approve=True)
                cluster = federation.sites[cluster_name]
                stack.enter_context(operator_process(
                    "site", cluster.kubeconfig, [SITE_NAMESPACE], logs / f"{site}.log"))
                _create_datanode(cluster, federation.hub, reg, site)
            for site in SITES:
                wait_for(lambda s=site: _site_ready(federation.hub, s), timeout=120,
                         what=f"{site} enrolled and Ready")
            _catalogue(federation.hub, "access-a", "lung-ct")
            _catalogue(federation.hub, "access-a", "brain-mri")  # never requested
            _catalogue(federation.hub, "access-b", "chest-xray")
            yield {"hub_operator": hub_op, "logs": logs}
        finally:
            for cluster_name in SITES.values():
                _delete_datanodes(federation.sites[cluster_name])
            for site in SITES:
                with contextlib.suppress(ApiException):
                    client.CustomObjectsApi(hub_api).delete_cluster_custom_object(
                        GROUP, V, "federatedsites", site)


def _ensure_namespace(cluster: Cluster, name: str) -> None:
    with contextlib.suppress(ApiException):
        client.CoreV1Api(cluster.api_client()).create_namespace(
            client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))


def _put_settings(hub: Cluster, data: dict[str, str]) -> None:
    namespace, name = access_settings.config_location()
    core = client.CoreV1Api(hub.api_client())
    body = client.V1ConfigMap(metadata=client.V1ObjectMeta(name=name), data=data)
    try:
        core.replace_namespaced_config_map(name, namespace, body)
    except ApiException as exc:
        if exc.status != 404:
            raise
        core.create_namespaced_config_map(namespace, body)


def _create_datanode(site: Cluster, hub: Cluster, reg: registration.Registration,
                     name: str) -> None:
    _ensure_namespace(site, SITE_NAMESPACE)
    core = client.CoreV1Api(site.api_client())
    core.create_namespaced_secret(SITE_NAMESPACE, reg.site_secret())
    # access-a approves the consortium's lung research automatically; access-b allows the
    # same purpose but a local person approves each request, and allows nothing else.
    policy = ({"allowedPurposes": [PURPOSE, "ai-validation"], "workApproval": "Automatic"}
              if name == "access-a" else
              {"allowedPurposes": [PURPOSE], "workApproval": "Manual"})
    client.CustomObjectsApi(site.api_client()).create_namespaced_custom_object(
        GROUP, V, SITE_NAMESPACE, "datanodes", {
            "apiVersion": f"{GROUP}/{V}", "kind": "DataNode",
            "metadata": {"name": name},
            "spec": {"hub": {"endpoint": hub.server, "siteName": reg.site,
                             "bootstrapSecretRef": {"name": "hub-bootstrap"}},
                     "policy": policy},
        })


def _delete_datanodes(site: Cluster) -> None:
    objects = client.CustomObjectsApi(site.api_client())
    with contextlib.suppress(ApiException):
        objects.delete_collection_namespaced_custom_object(GROUP, V, SITE_NAMESPACE,
                                                           "datanodes")
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and objects.list_namespaced_custom_object(
            GROUP, V, SITE_NAMESPACE, "datanodes")["items"]:
        time.sleep(0.2)


def _site_ready(hub: Cluster, site: str) -> bool:
    found = client.CustomObjectsApi(hub.api_client()).get_cluster_custom_object(
        GROUP, V, "federatedsites", site)
    ready = condition(found, "Ready")
    return bool(ready and ready["status"] == "True")


def _catalogue(hub: Cluster, site: str, dataset: str) -> None:
    """What a site publishes about a dataset on the hub: aggregates, never PHI."""
    client.CoreV1Api(hub.api_client()).create_namespaced_config_map(
        f"site-{site}", client.V1ConfigMap(
            metadata=client.V1ObjectMeta(name=dataset_object(dataset),
                                         labels={DATASET_LABEL: dataset}),
            data={"studies": "120", "modalities": "CT"}))


def request_manifest(name: str, *, datasets: list[tuple[str, str]], purpose: str = PURPOSE,
                     duration: str = "1h", user: str = RESEARCHER,
                     organization: str | None = None) -> dict[str, Any]:
    requester: dict[str, Any] = {"userName": user}
    if organization:
        requester["organizationIdentifier"] = organization
    return {
        "apiVersion": f"{GROUP}/{V}", "kind": "DataAccessRequest",
        "metadata": {"name": name},
        "spec": {"request": {
            "requester": requester, "purpose": purpose, "duration": duration,
            "datasets": [{"site": s, "name": d} for s, d in datasets],
        }},
    }


def sign(manifest: dict[str, Any], signer: Issued) -> dict[str, Any]:
    content = canonical_json(signed_content(manifest["spec"]["request"]))
    signature = sign_detached(content, signer.key, signer.asn1, signing_time=_now())
    manifest["spec"]["signature"] = base64.b64encode(signature).decode()
    return manifest


def create(hub: Cluster, namespace: str, manifest: dict[str, Any]) -> None:
    client.CustomObjectsApi(hub.api_client()).create_namespaced_custom_object(
        GROUP, V, namespace, "dataaccessrequests", manifest)


def get(hub: Cluster, namespace: str, name: str) -> dict[str, Any]:
    return client.CustomObjectsApi(hub.api_client()).get_namespaced_custom_object(
        GROUP, V, namespace, "dataaccessrequests", name)


def settled(hub: Cluster, namespace: str, name: str, kind: str, status: str,
            timeout: float = 60) -> dict[str, Any]:
    """Wait until condition `kind` has `status`; returns the condition."""
    return wait_for(lambda: (c := condition(get(hub, namespace, name), kind))
                    and c["status"] == status and c, timeout=timeout,
                    what=f"{name}: {kind}={status}")


def as_user(hub: Cluster, user: str) -> client.ApiClient:
    """The hub's admin credentials, impersonating `user`: the apiserver authorises as them."""
    api = hub.api_client()
    impersonating = client.ApiClient(api.configuration)
    impersonating.set_default_header("Impersonate-User", user)
    return impersonating


def can_read(api: client.ApiClient, namespace: str, name: str) -> bool:
    try:
        client.CoreV1Api(api).read_namespaced_config_map(name, namespace)
    except ApiException as exc:
        if exc.status == 403:
            return False
        raise
    return True


def cli_sign(manifest: dict[str, Any], signer: Issued, tmp_path: Path) -> dict[str, Any]:
    """`incisive access sign`, as a researcher runs it."""
    (tmp_path / "request.yaml").write_text(yaml.safe_dump(manifest))
    (tmp_path / "me.pem").write_text(_pem(signer))
    (tmp_path / "me.key").write_bytes(signer.key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))
    done = subprocess.run(
        [sys.executable, "-m", "incisive_operator.cli", "access", "sign",
         "--cert", str(tmp_path / "me.pem"), "--key", str(tmp_path / "me.key"),
         str(tmp_path / "request.yaml")],
        capture_output=True, text=True, check=True, timeout=60)
    return yaml.safe_load(done.stdout)


@pytest.mark.cluster
def test_granted_after_both_sites_approve_then_expires(
    federation: Federation, access_federation: dict[str, Any], trust: dict[str, Any],
    ledger: Log, namespace: str, tmp_path: Path,
) -> None:
    hub = federation.hub
    manifest = request_manifest("lung-study", organization=ORG_ID, duration="25s",
                                datasets=[("access-a", "lung-ct"), ("access-b", "chest-xray")])
    create(hub, namespace, cli_sign(manifest, trust["researcher"], tmp_path))
    created = time.monotonic()
    researcher = as_user(hub, RESEARCHER)

    signature = settled(hub, namespace, "lung-study", "SignatureValid", "True")
    assert signature["reason"] == "QualifiedSignature"
    assert "Good Qualified CA for QCs" in signature["message"]
    assert "Maria" not in signature["message"]  # a person is named by fingerprint only
    assert settled(hub, namespace, "lung-study", "PolicyAllowed", "True")
    checked = time.monotonic() - created
    # access-a approves automatically; access-b waits for its local approver.
    waiting = wait_for(
        lambda: (s := {d["site"]: d for d in get(hub, namespace, "lung-study")
                       .get("status", {}).get("sites", [])})
        and s.get("access-a", {}).get("decision") == "Approved"
        and s.get("access-b", {}).get("reason") == "AwaitingLocalApproval" and s,
        timeout=60, what="access-a approved, access-b awaiting its approver")
    assert condition(get(hub, namespace, "lung-study"), "SitesApproved")["status"] == "Unknown"
    assert condition(get(hub, namespace, "lung-study"), "Granted")["status"] == "False"
    assert APPROVED_ACCESS_ANNOTATION in waiting["access-b"]["message"]
    assert not can_read(researcher, "site-access-a", dataset_object("lung-ct"))

    review = f"{namespace}.lung-study"
    client.CustomObjectsApi(federation.sites["site-b"].api_client()).patch_namespaced_custom_object(
        GROUP, V, SITE_NAMESPACE, "datanodes", "access-b",
        {"metadata": {"annotations": {APPROVED_ACCESS_ANNOTATION: review}}})
    approved = time.monotonic()
    granted = settled(hub, namespace, "lung-study", "Granted", "True", timeout=60)
    print(f"\nsignature and policy checked {checked:.1f} s after creation; granted "
          f"{time.monotonic() - approved:.1f} s after the local approval")
    request = get(hub, namespace, "lung-study")
    grant = request["status"]["grant"]
    assert condition(request, "Ready")["status"] == "True"
    assert condition(request, "SitesApproved")["reason"] == "AllSitesApproved"
    assert grant["userName"] == RESEARCHER and RESEARCHER in granted["message"]
    assert request["status"]["signer"]["organizationIdentifier"] == ORG_ID

    # The grant is in the ledger: an access-granted commitment to the signed request
    # (spooled by the operator before the RBAC was written, sent by its recorder).
    (index,) = wait_for(lambda: [i for i in [ledger.find(bytes.fromhex(grant["ledgerEntry"]))]
                                 if i is not None], timeout=30,
                        what="the access-granted entry in the log")
    entry = parse_leaf(ledger.leaf(index)).entry
    assert entry["event"] == "access-granted" and entry["purpose"] == "research"
    signed = canonical_json(signed_content(request["spec"]["request"]))
    assert entry["content"] == hashlib.sha256(signed).hexdigest()
    assert RESEARCHER.encode() not in ledger.leaf(index)

    # RBAC, enforced by the apiserver: exactly the granted objects, get only.
    assert can_read(researcher, "site-access-a", dataset_object("lung-ct"))
    assert can_read(researcher, "site-access-b", dataset_object("chest-xray"))
    assert not can_read(researcher, "site-access-a", dataset_object("brain-mri"))
    assert not can_read(researcher, "site-access-a", "kube-root-ca.crt")
    assert not can_read(as_user(hub, "someone@else.example"), "site-access-a",
                        dataset_object("lung-ct"))
    for denied in (
        lambda: client.CoreV1Api(researcher).list_namespaced_config_map("site-access-a"),
        lambda: client.CoreV1Api(researcher).patch_namespaced_config_map(
            dataset_object("lung-ct"), "site-access-a", {"data": {"studies": "0"}}),
        lambda: client.CustomObjectsApi(researcher).list_namespaced_custom_object(
            GROUP, V, "site-access-a", "accessreviews"),
    ):
        with pytest.raises(ApiException) as refused:
            denied()
        assert refused.value.status == 403

    # Expiry: the timer takes the access away and says so.
    expires = dt.datetime.fromisoformat(grant["expiresAt"].replace("Z", "+00:00"))
    expired = settled(hub, namespace, "lung-study", "Expired", "True", timeout=60)
    revoked_at = _now()
    lag = (revoked_at - expires).total_seconds()
    assert -1 <= lag <= 10, f"revoked {lag:.1f} s after the expiry"
    print(f"access revoked {lag:.1f} s after its expiry time (observed by the test)")
    assert grant["expiresAt"] in expired["message"]
    request = get(hub, namespace, "lung-study")
    assert condition(request, "Granted")["reason"] == "Expired"
    assert condition(request, "Ready")["reason"] == "Expired"
    assert not can_read(researcher, "site-access-a", dataset_object("lung-ct"))
    assert not can_read(researcher, "site-access-b", dataset_object("chest-xray"))
    rbac = client.RbacAuthorizationV1Api(hub.api_client())
    assert not [r for r in rbac.list_role_for_all_namespaces().items
                if r.metadata.name.startswith(f"incisive-access.{namespace}.")]
    def revoked() -> list[dict[str, Any]]:
        events = [parse_leaf(ledger.leaf(i)).entry for i in range(ledger.size)]
        return [e for e in events if e["event"] == "access-revoked"
                and e["object"] == entry["object"]]

    assert wait_for(revoked, timeout=30, what="the access-revoked entry in the log")


@pytest.mark.cluster
def test_site_declines_and_says_why(
    federation: Federation, access_federation: dict[str, Any], trust: dict[str, Any],
    namespace: str,
) -> None:
    hub = federation.hub
    create(hub, namespace, sign(request_manifest(
        "validation", purpose="ai-validation",
        datasets=[("access-a", "lung-ct"), ("access-b", "chest-xray")]), trust["researcher"]))
    declined = settled(hub, namespace, "validation", "SitesApproved", "False", timeout=60)
    assert declined["reason"] == "SiteDeclined"
    assert "access-b declined (PurposeNotAllowed)" in declined["message"]
    assert "'ai-validation' is not allowed by this site's policy" in declined["message"]
    request = get(hub, namespace, "validation")
    assert condition(request, "Ready")["status"] == "False"
    assert "grant" not in request["status"]
    assert not can_read(as_user(hub, RESEARCHER), "site-access-a", dataset_object("lung-ct"))


REJECTIONS = [
    # (name, signer, manifest overrides, condition, reason, words in the message)
    ("rogue", "rogue", {}, "SignatureValid", "UntrustedChain",
     "does not chain to any service in the trusted lists for DE"),
    ("withdrawn", "withdrawn", {}, "SignatureValid", "ServiceNotGranted",
     "was withdrawn at"),
    ("eseal", "eseal", {}, "SignatureValid", "WrongQualifiedType",
     "must sign with a qualified certificate of QcType esign"),
    ("bad-org", "malformed_org", {}, "SignatureValid", "OrganizationIdentifierMalformed",
     "'QQ' is not an ISO 3166-1 country code"),
    ("other-org", "researcher", {"organization": "NTRDE-HRB12345"}, "SignatureValid",
     "OrganizationIdentifierMismatch", "NTRDE-HRB12345"),
    ("purpose", "researcher", {"purpose": "marketing"}, "PolicyAllowed", "PurposeNotAllowed",
     "'marketing' is not one the consortium grants"),
    ("too-long", "researcher", {"duration": "30d"}, "PolicyAllowed", "DurationTooLong",
     "longer than the 1d"),
    ("no-dataset", "researcher", {"datasets": [("access-a", "heart-echo")]}, "PolicyAllowed",
     "DatasetNotFound", "access-a/heart-echo"),
    ("no-site", "researcher", {"datasets": [("access-z", "lung-ct")]}, "PolicyAllowed",
     "UnknownSite", "access-z"),
]


@pytest.mark.cluster
def test_each_refusal_shows_its_reason(
    federation: Federation, access_federation: dict[str, Any], trust: dict[str, Any],
    namespace: str,
) -> None:
    hub = federation.hub
    for name, signer, overrides, _, _, _ in REJECTIONS:
        options = {"datasets": [("access-a", "lung-ct")], **overrides}
        create(hub, namespace, sign(request_manifest(name, **options), trust[signer]))
    # Signed by the researcher, then changed: the signature no longer covers it.
    tampered = sign(request_manifest("tampered", datasets=[("access-a", "lung-ct")]),
                    trust["researcher"])
    tampered["spec"]["request"]["datasets"].append({"site": "access-a", "name": "brain-mri"})
    create(hub, namespace, tampered)
    for name, _, _, kind, reason, words in [
        *REJECTIONS, ("tampered", None, None, "SignatureValid", "BadSignature",
                      "message digest does not match")]:
        refused = settled(hub, namespace, name, kind, "False")
        assert refused["reason"] == reason, (name, refused)
        assert words in refused["message"], (name, refused["message"])
        ready = condition(get(hub, namespace, name), "Ready")
        assert (ready["status"], ready["reason"]) == ("False", reason)
    # A refused request never reached a site.
    reviews = client.CustomObjectsApi(hub.api_client()).list_namespaced_custom_object(
        GROUP, V, "site-access-a", "accessreviews")["items"]
    assert not [r for r in reviews if r["metadata"]["name"].startswith(f"{namespace}.")]


@pytest.mark.cluster
def test_tampered_trusted_list_refuses_every_request(
    federation: Federation, access_federation: dict[str, Any], trust: dict[str, Any],
    namespace: str,
) -> None:
    hub = federation.hub
    # Someone reinstates the withdrawn CA by editing the hub's copy of the list.
    tampered = trust["list"].replace(b"Svcstatus/withdrawn", b"Svcstatus/granted")
    _put_settings(hub, settings_data(trust, tampered))
    try:
        create(hub, namespace, sign(request_manifest(
            "after-tamper", datasets=[("access-a", "lung-ct")]), trust["withdrawn"]))
        refused = settled(hub, namespace, "after-tamper", "SignatureValid", "False")
        assert refused["reason"] == "TrustedListRefused"
        assert "trusted list eu-de.xml" in refused["message"]
        assert "changed after it was signed" in refused["message"]
    finally:
        _put_settings(hub, settings_data(trust))


@pytest.mark.cluster
def test_deleting_a_granted_request_revokes_it(
    federation: Federation, access_federation: dict[str, Any], trust: dict[str, Any],
    namespace: str,
) -> None:
    hub = federation.hub
    create(hub, namespace, sign(request_manifest(
        "short-lived", datasets=[("access-a", "lung-ct")], duration="1h"), trust["researcher"]))
    settled(hub, namespace, "short-lived", "Granted", "True")
    researcher = as_user(hub, RESEARCHER)
    assert can_read(researcher, "site-access-a", dataset_object("lung-ct"))
    assert not can_read(researcher, "site-access-b", dataset_object("chest-xray"))
    # A binding deleted by hand while the grant is in force is put back.
    rbac = client.RbacAuthorizationV1Api(hub.api_client())
    rbac.delete_namespaced_role_binding(f"incisive-access.{namespace}.short-lived",
                                        "site-access-a")
    wait_for(lambda: not can_read(researcher, "site-access-a", dataset_object("lung-ct")),
             what="the binding gone")
    wait_for(lambda: can_read(researcher, "site-access-a", dataset_object("lung-ct")),
             timeout=45, what="the binding restored while the grant is in force")
    client.CustomObjectsApi(hub.api_client()).delete_namespaced_custom_object(
        GROUP, V, namespace, "dataaccessrequests", "short-lived")
    wait_for(lambda: not can_read(researcher, "site-access-a", dataset_object("lung-ct")),
             what="access revoked with the request")
    reviews = client.CustomObjectsApi(hub.api_client()).list_namespaced_custom_object(
        GROUP, V, "site-access-a", "accessreviews")["items"]
    assert f"{namespace}.short-lived" not in {r["metadata"]["name"] for r in reviews}


@pytest.mark.cluster
def test_apiserver_refuses_malformed_and_changed_requests(
    federation: Federation, access_federation: dict[str, Any], trust: dict[str, Any],
    namespace: str,
) -> None:
    hub = federation.hub
    for bad, words in (
        ({"user": "system:admin"}, "access cannot be granted to a system: identity"),
        ({"duration": ""}, "duration must not be empty"),
        ({"duration": "two weeks"}, "spec.request.duration"),
        ({"datasets": []}, "spec.request.datasets"),
    ):
        manifest = request_manifest("bad", **{"datasets": [("access-a", "lung-ct")], **bad})
        manifest["spec"]["signature"] = "AAAA"  # the schema refuses before anyone checks it
        with pytest.raises(ApiException) as refused:
            create(hub, namespace, manifest)
        assert refused.value.status == 422, bad
        assert words in refused.value.body, (bad, refused.value.body)
    create(hub, namespace, sign(request_manifest("fixed", datasets=[("access-a", "lung-ct")]),
                                trust["rogue"]))
    with pytest.raises(ApiException) as refused:
        client.CustomObjectsApi(hub.api_client()).patch_namespaced_custom_object(
            GROUP, V, namespace, "dataaccessrequests", "fixed",
            {"spec": {"request": {"duration": "2h"}}})
    assert refused.value.status == 422
    assert "immutable (it is signed)" in refused.value.body


@pytest.mark.cluster
def test_site_reads_only_its_own_reviews(
    federation: Federation, access_federation: dict[str, Any],
) -> None:
    from incisive_operator.site import enrolment

    site_a = federation.sites["site-a"]
    credentials = enrolment.load_credentials(site_a.api_client(), SITE_NAMESPACE, "access-a")
    as_site = client.CustomObjectsApi(enrolment.hub_client_for(credentials,
                                                              federation.hub.server))
    as_site.list_namespaced_custom_object(GROUP, V, "site-access-a", "accessreviews")
    with pytest.raises(ApiException) as refused:
        as_site.list_namespaced_custom_object(GROUP, V, "site-access-b", "accessreviews")
    assert refused.value.status == 403


def test_sample_signed_with_the_cli_verifies(trust: dict[str, Any], tmp_path: Path) -> None:
    """No cluster: the shipped sample, signed by `incisive access sign`, passes the hub's
    signature check, and one changed byte of it does not."""
    settings = access_settings.parse(settings_data(trust))
    assert settings.problems == ()
    signed = cli_sign(yaml.safe_load(SAMPLE.read_text()), trust["rogue"], tmp_path)
    outcome, _ = access.verify_signature(signed["spec"], settings, _now())
    assert (outcome.status, outcome.reason) == ("False", "UntrustedChain")
    sample = yaml.safe_load(SAMPLE.read_text())
    sample["spec"]["request"]["requester"].pop("organizationIdentifier")
    signed = cli_sign(sample, trust["researcher"], tmp_path)
    outcome, signer = access.verify_signature(signed["spec"], settings, _now())
    assert outcome.passed, outcome.message
    assert signer["organizationIdentifier"] == ORG_ID  # named by the certificate itself
    signed["spec"]["request"]["duration"] = "31d"
    outcome, _ = access.verify_signature(signed["spec"], settings, _now())
    assert (outcome.status, outcome.reason) == ("False", "BadSignature")


def test_cli_refuses_what_it_cannot_sign(tmp_path: Path) -> None:
    (tmp_path / "bad.yaml").write_text("kind: TrainingJob\n")
    done = subprocess.run([sys.executable, "-m", "incisive_operator.cli", "access", "sign",
                           str(tmp_path / "bad.yaml")], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 1
    assert "is not a DataAccessRequest manifest" in done.stderr


def test_hub_chart_holds_every_rule_it_grants(tools: Toolchain) -> None:
    """The operator writes site Roles and grant Roles without escalate or bind, so the
    chart's ClusterRole must hold each of their rules (the apiserver's escalation check)."""
    rendered = Helm(tools.helm).template(CHARTS / "incisive-hub")
    (role,) = [m for m in rendered if m["kind"] == "ClusterRole"]
    held = role["rules"]
    request = {"metadata": {"namespace": "team", "name": "study", "uid": "u"},
               "spec": {"request": {"requester": {"userName": RESEARCHER}, "datasets": [
                   {"site": "a", "name": "lung-ct"}, {"site": "b", "name": "chest"}]}}}
    granted = [m for m in access_grant.grant_manifests(request, "2030-01-01T00:00:00Z")
               + sites.site_manifests("any") if m["kind"] == "Role"]
    for rule in (r for m in granted for r in m["rules"]):
        for group in rule["apiGroups"]:
            for resource in rule["resources"]:
                for verb in rule["verbs"]:
                    assert any(group in h["apiGroups"] and resource in h["resources"]
                               and verb in h["verbs"] and not h.get("resourceNames")
                               for h in held), f"{verb} {group}/{resource}"
    env = {e["name"]: e.get("value") for m in rendered if m["kind"] == "Deployment"
           for e in m["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["INCISIVE_DATA_ACCESS_CONFIG"] == "incisive-system/data-access"
