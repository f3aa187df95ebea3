"""A DataAccessRequest's checks on the hub, and the questions it puts to the sites.

1. The signature: a detached CMS over the canonical request, by a qualified
   electronic-signature certificate (eIDAS esign) that chains to a service granted, at
   the signing time, in a trusted list whose own signature the hub verified.
2. The hub's policy: the purpose is one the consortium allows, every named site and
   dataset exists, the duration is within the maximum.
3. One AccessReview per named site, in that site's namespace on the hub; the site pulls
   it and answers under its own policy (site/access.py). The hub never reaches a site.

The dataset catalogue a request names datasets from: a ConfigMap `dataset.<name>` in the
site's namespace `site-<site>` on the hub, labelled `incisive-project.eu/dataset: <name>`,
holding what the site publishes about the dataset (aggregates only, never PHI). A grant
gives read access to exactly those objects (hub/access_grant.py).
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from asn1crypto import pem as asn1_pem
from asn1crypto import x509 as asn1_x509
from kubernetes import client

from incisive_node.identity.eidas import EidasPolicy, Party, verify_signed_document
from incisive_node.identity.signatures import canonical_json

from ..api import GROUP
from ..api.v1alpha1 import VERSION
from ..api.v1alpha1.dataaccessrequest import parse_duration, signed_content
from ..naming import MANAGED_BY
from .access_settings import AccessSettings
from .sites import namespace_of

REQUEST_UID_LABEL = f"{GROUP}/access-request-uid"
DATASET_LABEL = f"{GROUP}/dataset"
REVIEWS = "accessreviews"


@dataclass(frozen=True)
class Outcome:
    status: str  # "True", "False", "Unknown"
    reason: str
    message: str

    @property
    def passed(self) -> bool:
        return self.status == "True"


def dataset_object(name: str) -> str:
    """The catalogue entry's ConfigMap name for a dataset (the grant names it exactly)."""
    return f"dataset.{name}"


def content_of(spec: dict[str, Any]) -> bytes:
    """The exact bytes the researcher signed."""
    return canonical_json(signed_content(spec["request"]))


def verify_signature(spec: dict[str, Any], settings: AccessSettings, now: datetime
                     ) -> tuple[Outcome, dict[str, Any] | None]:
    """SignatureValid, and the signer (fingerprint, organisation, time, service) if valid."""
    if settings.problems:
        return Outcome("False", "TrustedListRefused",
                       "the hub cannot check signatures: " + "; ".join(settings.problems)), None
    try:
        signature = base64.b64decode("".join(spec["signature"].split()), validate=True)
    except (binascii.Error, ValueError):
        return Outcome("False", "BadSignature", "spec.signature is not base64"), None
    try:
        chain = [_certificate(pem) for pem in spec.get("certificateChain") or []]
    except ValueError as exc:
        return Outcome("False", "BadSignature", f"spec.certificateChain: {exc}"), None
    requester = spec["request"]["requester"]
    policy = EidasPolicy(
        Party.NATURAL_PERSON,
        require_qscd=settings.require_qscd,
        expected_organization_id=requester.get("organizationIdentifier"),
    )
    result = verify_signed_document(content_of(spec), signature, settings.trusted_lists,
                                    policy, now=now, intermediates=chain)
    if not result.valid:
        return Outcome("False", str(result.rejection), result.reason), None
    signer = {
        "fingerprint": result.signer_fingerprint,
        "signingTime": result.signing_time.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "trustService": result.service.describe() if result.service else None,
    }
    if result.organization_id is not None:
        signer["organizationIdentifier"] = result.organization_id.value
    return Outcome("True", "QualifiedSignature", result.reason), signer


def _certificate(text: str) -> asn1_x509.Certificate:
    data = text.encode()
    if asn1_pem.detect(data):
        _, _, data = asn1_pem.unarmor(data)
    try:
        cert = asn1_x509.Certificate.load(data)
        cert.native  # noqa: B018 - parse it all now, not inside the validator
    except (ValueError, TypeError) as exc:
        raise ValueError("an entry is not a PEM or DER X.509 certificate") from exc
    return cert


def check_policy(api: Any, spec: dict[str, Any], settings: AccessSettings) -> Outcome:
    request = spec["request"]
    purpose = request["purpose"]
    if purpose not in settings.allowed_purposes:
        allowed = ", ".join(sorted(settings.allowed_purposes)) or "none"
        return Outcome("False", "PurposeNotAllowed",
                       f"purpose {purpose!r} is not one the consortium grants data access for "
                       f"(allowed: {allowed}; {settings.source})")
    try:
        duration = parse_duration(request["duration"])
    except ValueError as exc:
        return Outcome("False", "InvalidDuration", str(exc))
    if duration.total_seconds() <= 0:
        return Outcome("False", "InvalidDuration", "the requested duration is zero")
    if duration > settings.max_duration:
        return Outcome("False", "DurationTooLong",
                       f"{request['duration']} is longer than the {_days(settings)} the hub "
                       "grants at most; ask for less")
    if request["requester"]["userName"].startswith("system:"):
        return Outcome("False", "ReservedUserName",
                       "access cannot be granted to a system: identity")
    objects = client.CustomObjectsApi(api)
    core = client.CoreV1Api(api)
    missing_sites, missing_data = [], []
    for site in sorted({d["site"] for d in request["datasets"]}):
        try:
            objects.get_cluster_custom_object(GROUP, VERSION, "federatedsites", site)
        except client.ApiException as exc:
            if exc.status != 404:
                raise
            missing_sites.append(site)
    for dataset in request["datasets"]:
        if dataset["site"] in missing_sites:
            continue
        if not _in_catalogue(core, dataset["site"], dataset["name"]):
            missing_data.append(f"{dataset['site']}/{dataset['name']}")
    if missing_sites:
        return Outcome("False", "UnknownSite",
                       f"no FederatedSite named {', '.join(missing_sites)} on this hub")
    if missing_data:
        return Outcome("False", "DatasetNotFound",
                       f"not in the sites' catalogues on the hub: {', '.join(missing_data)}")
    return Outcome("True", "PolicyAllowed",
                   f"purpose {purpose!r} allowed, {len(request['datasets'])} datasets found, "
                   f"duration {request['duration']} within {_days(settings)}")


def _in_catalogue(core: client.CoreV1Api, site: str, name: str) -> bool:
    try:
        found = core.read_namespaced_config_map(dataset_object(name), namespace_of(site))
    except client.ApiException as exc:
        if exc.status == 404:
            return False
        raise
    return (found.metadata.labels or {}).get(DATASET_LABEL) == name


def _days(settings: AccessSettings) -> str:
    seconds = int(settings.max_duration.total_seconds())
    return f"{seconds // 86400}d" if seconds % 86400 == 0 else f"{seconds}s"


def sites_of(spec: dict[str, Any]) -> list[str]:
    return sorted({d["site"] for d in spec["request"]["datasets"]})


def review_name(request: dict[str, Any]) -> str:
    return f"{request['metadata']['namespace']}.{request['metadata']['name']}"


def review(request: dict[str, Any], site: str, signer_fingerprint: str) -> dict[str, Any]:
    """The AccessReview a site answers: what it would share, with whom, why, for how long."""
    spec = signed_content(request["spec"]["request"])
    return {
        "apiVersion": f"{GROUP}/{VERSION}", "kind": "AccessReview",
        "metadata": {
            "name": review_name(request), "namespace": namespace_of(site),
            "labels": {REQUEST_UID_LABEL: request["metadata"]["uid"], **MANAGED_BY},
        },
        "spec": {
            "requestRef": {"namespace": request["metadata"]["namespace"],
                           "name": request["metadata"]["name"],
                           "uid": request["metadata"]["uid"]},
            "requester": spec["requester"],
            "signerFingerprint": signer_fingerprint,
            "purpose": spec["purpose"],
            "datasets": [{"name": d["name"], "query": d["query"]}
                         for d in spec["datasets"] if d["site"] == site],
            "duration": spec["duration"],
        },
    }


def list_reviews(api: Any, uid: str) -> dict[str, dict[str, Any]]:
    """This request's AccessReviews by site."""
    items = client.CustomObjectsApi(api).list_cluster_custom_object(
        GROUP, VERSION, REVIEWS, label_selector=f"{REQUEST_UID_LABEL}={uid}")["items"]
    return {i["metadata"]["namespace"].removeprefix("site-"): i for i in items}


def answers(sites: list[str], reviews: dict[str, dict[str, Any]]) -> list[dict[str, str]]:
    result = []
    for site in sites:
        status = (reviews.get(site) or {}).get("status") or {}
        result.append({
            "site": site,
            "decision": status.get("decision") or "Pending",
            "reason": status.get("reason") or "AwaitingSite",
            "message": status.get("message") or "the site has not answered yet",
        })
    return result


def sites_outcome(decisions: list[dict[str, str]]) -> Outcome:
    declined = [d for d in decisions if d["decision"] == "Declined"]
    if declined:
        return Outcome("False", "SiteDeclined", "; ".join(
            f"{d['site']} declined ({d['reason']}): {d['message']}" for d in declined))
    pending = [d["site"] for d in decisions if d["decision"] != "Approved"]
    if pending:
        return Outcome("Unknown", "AwaitingSites",
                       f"waiting for {', '.join(pending)} to review the request")
    return Outcome("True", "AllSitesApproved",
                   f"{', '.join(d['site'] for d in decisions)} approved")


def withdraw_reviews(api: Any, uid: str) -> int:
    objects = client.CustomObjectsApi(api)
    reviews = list_reviews(api, uid)
    for item in reviews.values():
        try:
            objects.delete_namespaced_custom_object(
                GROUP, VERSION, item["metadata"]["namespace"], REVIEWS, item["metadata"]["name"])
        except client.ApiException as exc:
            if exc.status != 404:
                raise
    return len(reviews)
