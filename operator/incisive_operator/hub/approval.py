"""Deciding a site's certificate request. Every refusal says why.

A request is approved only when all of these hold:
* it was made with the bootstrap token registered for that site (the apiserver records the
  authenticated requester in spec.username, which the requester cannot forge);
* the subject is exactly CN=incisive:site:<site>, O=incisive:sites, with no alternative
  names, for client authentication only, to the kube-apiserver-client signer;
* the site is registered, and either pre-approved (autoApprove) or approved by a human.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Any

from cryptography import x509
from cryptography.x509.oid import NameOID

from .sites import BOOTSTRAP_GROUP, SITE_USER_PREFIX, SITES_GROUP

SIGNER = "kubernetes.io/kube-apiserver-client"
ALLOWED_USAGES = {"client auth", "digital signature", "key encipherment"}
APPROVED_ANNOTATION = "incisive-project.eu/approved"


@dataclass(frozen=True)
class Verdict:
    approve: bool
    deny: bool
    reason: str
    message: str


def site_of(csr: dict[str, Any]) -> str | None:
    """The site a request claims to be for, from its subject's CN (None if not ours)."""
    try:
        request = x509.load_pem_x509_csr(base64.b64decode(csr["spec"]["request"]))
    except (KeyError, ValueError):
        return None
    names = request.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    if len(names) != 1 or not str(names[0].value).startswith(SITE_USER_PREFIX):
        return None
    return str(names[0].value).removeprefix(SITE_USER_PREFIX)


def decide(csr: dict[str, Any], site: dict[str, Any] | None) -> Verdict:
    spec = csr.get("spec", {})
    claimed = site_of(csr)
    if claimed is None:
        return Verdict(False, False, "NotASiteRequest", "not an INCISIVE site request")
    if site is None:
        return Verdict(False, False, "UnknownSite",
                       f"no FederatedSite named {claimed!r}: register it first")
    token_id = site["spec"]["bootstrapTokenId"]
    if spec.get("username") != f"system:bootstrap:{token_id}":
        return Verdict(False, True, "WrongBootstrapToken",
                       f"requested by {spec.get('username')!r}, but site {claimed!r} enrols "
                       f"with bootstrap token {token_id!r}")
    if BOOTSTRAP_GROUP not in spec.get("groups", []):
        return Verdict(False, True, "NotABootstrapper",
                       f"the requester is not in {BOOTSTRAP_GROUP}")
    if spec.get("signerName") != SIGNER:
        return Verdict(False, True, "WrongSigner", f"signerName must be {SIGNER}")
    usages = set(spec.get("usages", []))
    if "client auth" not in usages or not usages <= ALLOWED_USAGES:
        return Verdict(False, True, "WrongUsages",
                       f"usages must be client auth only (got {sorted(usages)})")
    request = x509.load_pem_x509_csr(base64.b64decode(spec["request"]))
    organizations = [str(a.value) for a in
                     request.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)]
    if organizations != [SITES_GROUP] or len(list(request.subject)) != 2:
        return Verdict(False, True, "WrongSubject",
                       f"the subject must be exactly CN={SITE_USER_PREFIX}{claimed}, "
                       f"O={SITES_GROUP}")
    try:
        request.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    except x509.ExtensionNotFound:
        pass
    else:
        return Verdict(False, True, "AlternativeNames", "site requests carry no SANs")
    if not request.is_signature_valid:
        return Verdict(False, True, "BadSignature", "the request's self-signature is invalid")
    approved = site["metadata"].get("annotations", {}).get(APPROVED_ANNOTATION) == "true"
    if not (site["spec"].get("autoApprove") or approved):
        return Verdict(False, False, "AwaitingApproval",
                       f"approve it with `incisive site approve {claimed}`")
    return Verdict(True, False, "Approved", f"site {claimed} enrolled by the hub operator")
