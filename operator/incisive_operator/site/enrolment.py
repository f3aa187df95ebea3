"""Pull-only enrolment of a site at the hub, and its heartbeat.

Only the site ever opens a connection. It makes its key here (the key never leaves the
site's cluster), asks the hub for a certificate with its bootstrap token (a Kubernetes
CertificateSigningRequest: the hub's own apiserver authenticates the token and records who
asked), picks the certificate up when the hub has approved it, and from then on renews a
Lease in its namespace on the hub as a heartbeat. If the hub is unreachable, the site just
tries again later; nothing local waits on it.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
from dataclasses import dataclass
from typing import Any

import urllib3
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from kubernetes import client, config

from ..api.v1alpha1.datanode import HubEnrolment
from ..hub.approval import SIGNER
from ..hub.sites import (
    HEARTBEAT_LEASE,
    HEARTBEAT_SECONDS,
    SITE_USER_PREFIX,
    SITES_GROUP,
    namespace_of,
)
from ..naming import DATANODE_LABEL, MANAGED_BY

# Renew when a third of the certificate's life is left, so a hub outage of days is survived.
RENEW_AT_REMAINING = 1 / 3


@dataclass(frozen=True)
class State:
    phase: str  # Enrolled, Pending, Denied, HubUnreachable, Misconfigured
    reason: str
    message: str


def credentials_name(datanode: str) -> str:
    return f"{datanode}-hub-credentials"


def _secret_data(secret: client.V1Secret | None) -> dict[str, bytes]:
    if secret is None or not secret.data:
        return {}
    return {k: base64.b64decode(v) for k, v in secret.data.items()}


def _read_secret(core: client.CoreV1Api, namespace: str, name: str) -> client.V1Secret | None:
    try:
        return core.read_namespaced_secret(name, namespace)
    except client.ApiException as exc:
        if exc.status == 404:
            return None
        raise


def _hub_client(server: str, ca: bytes, **user: str) -> client.ApiClient:
    kubeconfig = {
        "apiVersion": "v1", "kind": "Config", "current-context": "hub",
        "clusters": [{"name": "hub", "cluster": {
            "server": server.rstrip("/"),
            "certificate-authority-data": base64.b64encode(ca).decode()}}],
        "users": [{"name": "site", "user": user}],
        "contexts": [{"name": "hub", "context": {"cluster": "hub", "user": "site"}}],
    }
    return config.new_client_from_config_dict(kubeconfig)


def hub_client_for(credentials: dict[str, bytes], server: str) -> client.ApiClient:
    """The site's own client on the hub, authenticated by its issued certificate."""
    return _hub_client(
        server, credentials["ca.crt"],
        **{"client-certificate-data": base64.b64encode(credentials["tls.crt"]).decode(),
           "client-key-data": base64.b64encode(credentials["tls.key"]).decode()},
    )


def load_credentials(
    site_api: client.ApiClient, namespace: str, datanode: str
) -> dict[str, bytes]:
    core = client.CoreV1Api(site_api)
    return _secret_data(_read_secret(core, namespace, credentials_name(datanode)))


def _needs_certificate(credentials: dict[str, bytes], now: dt.datetime) -> bool:
    if "tls.crt" not in credentials:
        return True
    certificate = x509.load_pem_x509_certificate(credentials["tls.crt"])
    life = certificate.not_valid_after_utc - certificate.not_valid_before_utc
    return certificate.not_valid_after_utc - now < life * RENEW_AT_REMAINING


def ensure(
    site_api: client.ApiClient, namespace: str, datanode: str, owner: dict[str, Any],
    hub: HubEnrolment,
) -> State:
    """One step towards being enrolled; safe to call again at any point."""
    core = client.CoreV1Api(site_api)
    bootstrap = _secret_data(_read_secret(core, namespace, hub.bootstrap_secret_ref.name))
    token = bootstrap.get(hub.bootstrap_secret_ref.key)
    if not token or "ca.crt" not in bootstrap:
        return State("Misconfigured", "BootstrapSecretIncomplete",
                     f"secret {hub.bootstrap_secret_ref.name} needs keys "
                     f"{hub.bootstrap_secret_ref.key!r} (the bootstrap token) and 'ca.crt' "
                     "(the hub's CA), as printed by `incisive site register`")
    credentials = _ensure_key(core, namespace, datanode, owner, bootstrap["ca.crt"])
    if not _needs_certificate(credentials, dt.datetime.now(dt.UTC)):
        return State("Enrolled", "CertificateValid",
                     f"enrolled at the hub as {SITE_USER_PREFIX}{hub.site_name}")
    hub_api = _hub_client(hub.endpoint, bootstrap["ca.crt"], token=token.decode().strip())
    try:
        issued = _request_certificate(hub_api, hub.site_name, credentials["tls.key"])
    except client.ApiException as exc:
        if exc.status in (401, 403):
            return State("Pending", "BootstrapRejected",
                         f"the hub refused the bootstrap token ({exc.status}): ask the hub "
                         "operators for a new one")
        return State("HubUnreachable", "HubError", f"the hub answered {exc.status}; retrying")
    except (OSError, urllib3.exceptions.HTTPError) as exc:  # refused, reset, timed out
        return State("HubUnreachable", "HubUnreachable",
                     f"cannot reach the hub: {type(exc).__name__}")
    finally:
        hub_api.close()
    if isinstance(issued, State):
        return issued
    credentials["tls.crt"] = issued
    _store(core, namespace, datanode, owner, credentials)
    return State("Enrolled", "CertificateIssued",
                 f"enrolled at the hub as {SITE_USER_PREFIX}{hub.site_name}")


def _ensure_key(
    core: client.CoreV1Api, namespace: str, datanode: str, owner: dict[str, Any], ca: bytes
) -> dict[str, bytes]:
    credentials = _secret_data(_read_secret(core, namespace, credentials_name(datanode)))
    if "tls.key" not in credentials:
        key = ec.generate_private_key(ec.SECP256R1())
        credentials["tls.key"] = key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption())
    if credentials.get("ca.crt") != ca:
        credentials["ca.crt"] = ca
        _store(core, namespace, datanode, owner, credentials)
    return credentials


def _store(core: client.CoreV1Api, namespace: str, datanode: str, owner: dict[str, Any],
           credentials: dict[str, bytes]) -> None:
    body = client.V1Secret(
        metadata=client.V1ObjectMeta(
            name=credentials_name(datanode), namespace=namespace,
            labels={DATANODE_LABEL: datanode, **MANAGED_BY}, owner_references=[owner]),
        type="Opaque",
        data={k: base64.b64encode(v).decode() for k, v in credentials.items()},
    )
    try:
        core.replace_namespaced_secret(credentials_name(datanode), namespace, body)
    except client.ApiException as exc:
        if exc.status != 404:
            raise
        core.create_namespaced_secret(namespace, body)


def _request_certificate(hub_api: client.ApiClient, site: str, key_pem: bytes) -> bytes | State:
    key = serialization.load_pem_private_key(key_pem, password=None)
    public = key.public_key().public_bytes(serialization.Encoding.DER,
                                           serialization.PublicFormat.SubjectPublicKeyInfo)
    # Named after the key: a retry after a crash finds its own request instead of filing
    # a second one; a new key (renewal) files a new request.
    name = f"incisive-site-{site}-{hashlib.sha256(public).hexdigest()[:12]}"
    certificates = client.CertificatesV1Api(hub_api)
    try:
        csr = certificates.read_certificate_signing_request(name)
    except client.ApiException as exc:
        if exc.status != 404:
            raise
        request = (
            x509.CertificateSigningRequestBuilder()
            .subject_name(x509.Name([
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, SITES_GROUP),
                x509.NameAttribute(NameOID.COMMON_NAME, f"{SITE_USER_PREFIX}{site}"),
            ]))
            .sign(key, hashes.SHA256())  # type: ignore[arg-type]
        )
        csr = certificates.create_certificate_signing_request(client.V1CertificateSigningRequest(
            metadata=client.V1ObjectMeta(name=name),
            spec=client.V1CertificateSigningRequestSpec(
                request=base64.b64encode(request.public_bytes(serialization.Encoding.PEM))
                .decode(),
                signer_name=SIGNER,
                usages=["digital signature", "client auth"],
                expiration_seconds=30 * 24 * 3600,
            ),
        ))
    status = csr.status
    for condition in (status.conditions if status else None) or []:
        if condition.type in ("Denied", "Failed") and condition.status == "True":
            return State("Denied", condition.reason or condition.type,
                         f"the hub refused this site's request: {condition.message}")
    if status and status.certificate:
        return base64.b64decode(status.certificate)
    return State("Pending", "AwaitingApproval",
                 f"certificate request {name} waits for the hub's approval")


def heartbeat(hub_api: client.ApiClient, site: str, holder: str) -> None:
    """Renew (or create) the site's Lease on the hub."""
    leases = client.CoordinationV1Api(hub_api)
    now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    body = {
        "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
        "metadata": {"name": HEARTBEAT_LEASE, "namespace": namespace_of(site)},
        "spec": {"holderIdentity": holder, "leaseDurationSeconds": HEARTBEAT_SECONDS * 3,
                 "renewTime": now},
    }
    try:
        leases.patch_namespaced_lease(HEARTBEAT_LEASE, namespace_of(site), body)
    except client.ApiException as exc:
        if exc.status != 404:
            raise
        body["spec"]["acquireTime"] = now
        leases.create_namespaced_lease(namespace_of(site), body)
