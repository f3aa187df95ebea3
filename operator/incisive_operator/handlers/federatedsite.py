"""Hub mode: keep each registered site's namespace and RBAC, decide its certificate
requests, and judge its heartbeat.

Level-based: a timer re-derives everything from the cluster (FederatedSite, its pending
CertificateSigningRequests, its Lease), so a restarted operator picks up where it was.
"""

from __future__ import annotations

import base64
import datetime as dt
import logging
from typing import Any

import kopf
from cryptography import x509
from kubernetes import client

from .. import ledger_events
from ..api import GROUP
from ..api.v1alpha1 import VERSION
from ..conditions import get_condition, set_condition
from ..hub import approval, sites
from ..kube import apply, owner_reference
from ..metrics import measured

KIND = "FederatedSite"
PLURAL = "federatedsites"


def register(registry: kopf.OperatorRegistry, memo_key: str = "hub_api") -> None:
    @kopf.on.startup(registry=registry)
    def bootstrap_rbac(memo: kopf.Memo, **_: Any) -> None:
        for manifest in sites.bootstrap_rbac():
            apply(memo[memo_key], manifest)

    @kopf.on.resume(GROUP, VERSION, PLURAL, registry=registry, id="reconcile")
    @kopf.on.create(GROUP, VERSION, PLURAL, registry=registry, id="reconcile")
    @kopf.on.update(GROUP, VERSION, PLURAL, registry=registry, id="reconcile")
    @kopf.timer(GROUP, VERSION, PLURAL, interval=5, backoff=5, registry=registry,
                id="heartbeat")
    def reconcile_site(
        body: kopf.Body, patch: kopf.Patch, memo: kopf.Memo, logger: logging.Logger, **_: Any
    ) -> None:
        with measured(KIND):
            converge(dict(body), patch, memo[memo_key], logger)

    @kopf.on.event("certificates.k8s.io", "v1", "certificatesigningrequests",
                   registry=registry)
    def request_arrived(body: kopf.Body, memo: kopf.Memo, logger: logging.Logger,
                        **_: Any) -> None:
        site_name = approval.site_of(dict(body))
        if site_name is None or _decided(dict(body)):
            return
        site = _get_site(memo[memo_key], site_name)
        _decide(memo[memo_key], dict(body), site, logger)


def converge(body: dict[str, Any], patch: kopf.Patch, api: Any, logger: logging.Logger) -> None:
    name = body["metadata"]["name"]
    generation = body["metadata"].get("generation")
    conditions = list(body.get("status", {}).get("conditions", []))
    owner = owner_reference(body)
    for manifest in sites.site_manifests(name):
        manifest["metadata"]["ownerReferences"] = [owner]
        apply(api, manifest)

    joined = _enrolment(api, body, logger)
    if joined is not None:
        reason, message, expiry = joined
        conditions = set_condition(conditions, "Joined", expiry is not None, reason, message,
                                   generation)
        if expiry:
            patch.status["certificateExpiry"] = expiry
    elif get_condition(conditions, "Joined") is None:
        conditions = set_condition(conditions, "Joined", False, "AwaitingRequest",
                                   "the site has not asked to enrol yet", generation)

    lease = _read_lease(api, sites.namespace_of(name))
    now = dt.datetime.now(dt.UTC)
    age = sites.heartbeat_age(lease, now)
    gap = sites.heartbeat_gap(body.get("status", {}).get("lastHeartbeatTime"), lease)
    if age is None:
        ready, reason, message = False, "AwaitingHeartbeat", "no heartbeat from the site yet"
    elif gap is not None and gap > sites.GRACE_SECONDS:
        # The hub itself may have been down: it did not see the silence while it lasted,
        # but the gap between two heartbeats shows it. Report it once before Ready.
        ready, reason, message = "Unknown", "HeartbeatMissed", (
            f"no heartbeat for {gap:.0f} s before the last one; the site or the hub was "
            "unreachable")
        patch.status["lastHeartbeatTime"] = lease["spec"]["renewTime"]
    elif age <= sites.GRACE_SECONDS:
        ready, reason, message = True, "Heartbeat", f"last heartbeat {age:.0f} s ago"
        patch.status["lastHeartbeatTime"] = lease["spec"]["renewTime"]
    else:
        ready, reason, message = "Unknown", "HeartbeatMissed", (
            f"no heartbeat for {age:.0f} s: the site or its link to the hub is down; "
            "it keeps working locally")
    previous = get_condition(conditions, "Ready")
    status = ready if isinstance(ready, str) else ("True" if ready else "False")
    if previous is not None and previous["status"] != status:
        (kopf.info if status == "True" else kopf.warn)(body, reason=reason, message=message)
    # A heartbeat's age changes every tick; the message would rewrite the status each time.
    if previous is not None and previous["status"] == status:
        message = previous["message"] if status != "True" else message
    conditions = set_condition(conditions, "Ready", ready, reason, message, generation)
    patch.status["conditions"] = conditions
    patch.status["namespace"] = sites.namespace_of(name)
    patch.status["observedGeneration"] = generation


def _enrolment(
    api: Any, site: dict[str, Any], logger: logging.Logger
) -> tuple[str, str, str | None] | None:
    """Decide pending requests of this site; report the newest issued certificate."""
    name = site["metadata"]["name"]
    certificates = client.CertificatesV1Api(api)
    newest: tuple[str, str, str | None] | None = None
    for csr in certificates.list_certificate_signing_request().items:
        raw = api.sanitize_for_serialization(csr)
        if approval.site_of(raw) != name:
            continue
        if not _decided(raw):
            verdict = _decide(api, raw, site, logger)
            newest = newest or (verdict.reason, verdict.message, None)
            continue
        issued = (raw.get("status") or {}).get("certificate")
        if issued:
            certificate = x509.load_pem_x509_certificate(base64.b64decode(issued))
            expiry = certificate.not_valid_after_utc.strftime("%Y-%m-%dT%H:%M:%SZ")
            if newest is None or newest[2] is None or expiry > newest[2]:
                newest = ("CertificateIssued", f"enrolled; certificate valid until {expiry}",
                          expiry)
    return newest


def _decided(csr: dict[str, Any]) -> bool:
    return any(c.get("type") in ("Approved", "Denied")
               for c in (csr.get("status") or {}).get("conditions") or [])


def _decide(api: Any, csr: dict[str, Any], site: dict[str, Any] | None,
            logger: logging.Logger) -> approval.Verdict:
    verdict = approval.decide(csr, site)
    if verdict.approve or verdict.deny:
        kind = "Approved" if verdict.approve else "Denied"
        csr.setdefault("status", {})["conditions"] = [{
            "type": kind, "status": "True", "reason": verdict.reason,
            "message": verdict.message,
        }]
        client.CertificatesV1Api(api).replace_certificate_signing_request_approval(
            csr["metadata"]["name"], csr)
        logger.info("certificate request %s %s: %s", csr["metadata"]["name"], kind.lower(),
                    verdict.reason)
        if verdict.approve:
            # Written after the approval: a request is decided once (`_decided`).
            ledger_events.site_enrolled(approval.site_of(csr) or "", csr)
        if site is not None:
            (kopf.info if verdict.approve else kopf.warn)(
                site, reason=f"Request{kind}", message=verdict.message)
    return verdict


def _get_site(api: Any, name: str) -> dict[str, Any] | None:
    try:
        return client.CustomObjectsApi(api).get_cluster_custom_object(GROUP, VERSION, PLURAL,
                                                                      name)
    except client.ApiException as exc:
        if exc.status == 404:
            return None
        raise


def _read_lease(api: Any, namespace: str) -> dict[str, Any] | None:
    try:
        lease = client.CoordinationV1Api(api).read_namespaced_lease(sites.HEARTBEAT_LEASE,
                                                                    namespace)
    except client.ApiException as exc:
        if exc.status == 404:
            return None
        raise
    return api.sanitize_for_serialization(lease)
