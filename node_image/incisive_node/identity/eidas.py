"""eIDAS validation of a signed enrolment or access request.

A document is accepted when its detached CMS signature verifies, the signer's certificate
chains (at the signing time) to a CA/QC service of an ETSI TS 119 612 trusted list, that
service's status was *granted* at the signing time, and the certificate is qualified for
the right purpose: an electronic seal (QcType eseal) for an organisation, an electronic
signature (QcType esign) for a natural person. Every rejection names the failed rule in
words a human can act on; docs/identity.md lists them all.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum

from asn1crypto import x509
from pyhanko_certvalidator import CertificateValidator, ValidationContext
from pyhanko_certvalidator.errors import (
    ExpiredError,
    NotYetValidError,
    PathBuildingError,
    ValidationError,
)

from .organization_id import (
    MalformedOrganizationIdentifier,
    OrganizationIdentifier,
    parse_organization_identifier,
)
from .qualified import MalformedQcStatements, QcStatements, QcType, qc_statements
from .signatures import SignatureInvalid, verify_detached
from .trusted_list import (
    FOR_ESEALS,
    FOR_ESIGNATURES,
    FOR_WEBSITE_AUTH,
    GRANTED,
    SERVICE_TYPE_CA_QC,
    TrustedList,
    TrustService,
    certificate_fingerprint,
)

log = logging.getLogger(__name__)


class Party(StrEnum):
    ORGANISATION = "organisation"  # enrolment: signed with a qualified electronic seal
    NATURAL_PERSON = "natural person"  # access request: signed with a qualified signature


class Rejection(StrEnum):
    BAD_SIGNATURE = "BadSignature"
    SIGNING_TIME_IN_FUTURE = "SigningTimeInFuture"
    SIGNATURE_TOO_OLD = "SignatureTooOld"
    TRUSTED_LIST_STALE = "TrustedListStale"
    UNTRUSTED_CHAIN = "UntrustedChain"
    CERTIFICATE_NOT_VALID_AT_SIGNING_TIME = "CertificateNotValidAtSigningTime"
    SERVICE_NOT_QUALIFIED_CA = "ServiceNotQualifiedCA"
    SERVICE_NOT_YET_GRANTED = "ServiceNotYetGranted"
    SERVICE_NOT_GRANTED = "ServiceNotGranted"
    SERVICE_NOT_FOR_PURPOSE = "ServiceNotForPurpose"
    NOT_QUALIFIED = "NotQualified"
    WRONG_QUALIFIED_TYPE = "WrongQualifiedType"
    NO_QSCD = "NoQSCD"
    KEY_USAGE = "KeyUsage"
    ORGANIZATION_ID_MISSING = "OrganizationIdentifierMissing"
    ORGANIZATION_ID_MALFORMED = "OrganizationIdentifierMalformed"
    ORGANIZATION_ID_MISMATCH = "OrganizationIdentifierMismatch"


_REQUIRED_TYPE = {Party.ORGANISATION: QcType.ESEAL, Party.NATURAL_PERSON: QcType.ESIGN}
_SERVICE_PURPOSE = {QcType.ESEAL: FOR_ESEALS, QcType.ESIGN: FOR_ESIGNATURES}
_PURPOSE_URIS = frozenset({FOR_ESEALS, FOR_ESIGNATURES, FOR_WEBSITE_AUTH})


@dataclass(frozen=True)
class EidasPolicy:
    party: Party
    require_qscd: bool = False  # True: only a QES/QESeal (key on a QSCD) is enough
    expected_organization_id: str | None = None
    # The signing time is the signer's claim (no timestamp token yet), so a withdrawn
    # service's key could backdate it; bounding its age against our own clock limits that.
    max_signature_age: timedelta | None = timedelta(hours=24)
    clock_skew: timedelta = timedelta(minutes=5)


@dataclass(frozen=True)
class EidasResult:
    valid: bool
    reason: str
    rejection: Rejection | None = None
    signing_time: datetime | None = None
    signer_fingerprint: str | None = None  # SHA-256 of the signer certificate's DER
    organization_id: OrganizationIdentifier | None = None
    qc: QcStatements | None = None
    service: TrustService | None = field(default=None, repr=False)

    def __bool__(self) -> bool:
        return self.valid


class _Rejected(Exception):
    def __init__(self, rejection: Rejection, reason: str):
        super().__init__(reason)
        self.rejection = rejection
        self.reason = reason


def verify_signed_document(
    content: bytes,
    signature: bytes,
    trusted_lists: Sequence[TrustedList],
    policy: EidasPolicy,
    *,
    now: datetime | None = None,
    intermediates: Sequence[x509.Certificate] = (),
) -> EidasResult:
    """Synchronous entry point; from async code await :func:`averify_signed_document`."""
    return asyncio.run(averify_signed_document(
        content, signature, trusted_lists, policy, now=now, intermediates=intermediates))


async def averify_signed_document(
    content: bytes,
    signature: bytes,
    trusted_lists: Sequence[TrustedList],
    policy: EidasPolicy,
    *,
    now: datetime | None = None,
    intermediates: Sequence[x509.Certificate] = (),
) -> EidasResult:
    """``intermediates``: chain certificates shipped beside the signature rather than in it
    (a signing device may embed the signer's certificate only)."""
    now = now or datetime.now(UTC)
    try:
        signed = verify_detached(signature, content)
    except SignatureInvalid as exc:
        return EidasResult(False, f"signature rejected: {exc}", Rejection.BAD_SIGNATURE)
    if signed.signing_time > now + policy.clock_skew:
        return _reject(
            Rejection.SIGNING_TIME_IN_FUTURE,
            f"the signing time {_t(signed.signing_time)} is later than now ({_t(now)})",
            signed.signing_time,
            signed.signer,
        )
    if policy.max_signature_age is not None and now - signed.signing_time > (
        policy.max_signature_age
    ):
        return _reject(
            Rejection.SIGNATURE_TOO_OLD,
            f"the document was signed at {_t(signed.signing_time)}, more than "
            f"{policy.max_signature_age.total_seconds() / 3600:g} h before now ({_t(now)}); "
            "sign it again",
            signed.signing_time,
            signed.signer,
        )
    others = [c for c in [*signed.certificates, *intermediates]
              if c.dump() != signed.signer.dump()]
    return await avalidate_qualified_certificate(
        signed.signer, others, trusted_lists, policy, at=signed.signing_time, now=now
    )


async def avalidate_qualified_certificate(
    cert: x509.Certificate,
    intermediates: Sequence[x509.Certificate],
    trusted_lists: Sequence[TrustedList],
    policy: EidasPolicy,
    *,
    at: datetime,
    now: datetime | None = None,
) -> EidasResult:
    """Whether ``cert`` was a qualified certificate for ``policy.party`` at the time ``at``."""
    try:
        _check_lists_fresh(trusted_lists, now or datetime.now(UTC))
        service = await _granted_service(cert, intermediates, trusted_lists, at)
        qc = _check_qualified(cert, service, policy)
        org_id = _check_organization(cert, policy)
    except _Rejected as rejected:
        return _reject(rejected.rejection, rejected.reason, at, cert)
    fingerprint = certificate_fingerprint(cert)
    who = (f"organisation {org_id}" if policy.party is Party.ORGANISATION
           else f"person with certificate {fingerprint[:16]}")
    log.info("eIDAS: %s accepted through %s", who, service.describe())
    return EidasResult(
        True,
        f"qualified {_REQUIRED_TYPE[policy.party].name.lower()} of the {who}, issued under "
        f"{service.describe()}, granted at the signing time {_t(at)}",
        None,
        at,
        fingerprint,
        org_id,
        qc,
        service,
    )


def _check_lists_fresh(trusted_lists: Sequence[TrustedList], now: datetime) -> None:
    if not trusted_lists:
        raise _Rejected(Rejection.UNTRUSTED_CHAIN, "no trusted list is loaded")
    for tl in trusted_lists:
        if tl.next_update is not None and tl.next_update < now:
            raise _Rejected(
                Rejection.TRUSTED_LIST_STALE,
                f"the trusted list for {tl.territory} (sequence {tl.sequence_number}) was due "
                f"for update at {_t(tl.next_update)}; fetch the current list",
            )


async def _granted_service(
    cert: x509.Certificate,
    intermediates: Sequence[x509.Certificate],
    trusted_lists: Sequence[TrustedList],
    at: datetime,
) -> TrustService:
    services = [s for tl in trusted_lists for s in tl.services]
    context = ValidationContext(
        trust_roots=[c for tl in trusted_lists for c in tl.anchors],
        other_certs=list(intermediates),
        moment=at,
        allow_fetching=False,
        revocation_mode="soft-fail",
    )
    territories = ", ".join(sorted({tl.territory for tl in trusted_lists}))
    try:
        path = await CertificateValidator(cert, validation_context=context).async_validate_path()
    except (ExpiredError, NotYetValidError) as exc:
        raise _Rejected(
            Rejection.CERTIFICATE_NOT_VALID_AT_SIGNING_TIME,
            f"a certificate in the signer's chain was not valid at the signing time {_t(at)}: "
            f"{exc}",
        ) from exc
    except PathBuildingError as exc:
        raise _Rejected(
            Rejection.UNTRUSTED_CHAIN,
            f"the signer's certificate (issuer {cert.issuer.human_friendly!r}) does not chain "
            f"to any service in the trusted lists for {territories}",
        ) from exc
    except ValidationError as exc:
        raise _Rejected(
            Rejection.UNTRUSTED_CHAIN,
            f"the signer's certificate chain does not validate at {_t(at)}: {exc}",
        ) from exc
    path_certs = list(path.iter_certs(include_root=True))
    matches = [s for s in services if any(s.identifies(c) for c in path_certs)]
    qualified = [s for s in matches if s.service_type == SERVICE_TYPE_CA_QC]
    if not qualified:
        listed = matches[0].describe() if matches else "a listed service"
        raise _Rejected(
            Rejection.SERVICE_NOT_QUALIFIED_CA,
            f"the chain ends at {listed}, whose type is not {SERVICE_TYPE_CA_QC} "
            "(a CA issuing qualified certificates)",
        )
    for service in qualified:
        period = service.status_at(at)
        if period is not None and period.status == GRANTED:
            return service
    raise _Rejected(*_status_reason(qualified[0], at))


def _status_reason(service: TrustService, at: datetime) -> tuple[Rejection, str]:
    period = service.status_at(at)
    if period is None:
        first = service.history[0]
        return (
            Rejection.SERVICE_NOT_YET_GRANTED,
            f"{service.describe()} was first listed as {first.status_name} at "
            f"{_t(first.start)}, after the signing time {_t(at)}",
        )
    later_grant = next(
        (p for p in service.history if p.start > at and p.status == GRANTED), None
    )
    if later_grant is not None and all(
        p.status != GRANTED for p in service.history if p.start <= at
    ):
        return (
            Rejection.SERVICE_NOT_YET_GRANTED,
            f"{service.describe()} was granted only from {_t(later_grant.start)}, after the "
            f"signing time {_t(at)}; at that time it was {period.status_name}",
        )
    return (
        Rejection.SERVICE_NOT_GRANTED,
        f"{service.describe()} was {period.status_name} at {_t(period.start)}, before the "
        f"signing time {_t(at)}",
    )


def _check_qualified(
    cert: x509.Certificate, service: TrustService, policy: EidasPolicy
) -> QcStatements:
    required = _REQUIRED_TYPE[policy.party]
    try:
        qc = qc_statements(cert)
    except MalformedQcStatements as exc:
        raise _Rejected(Rejection.NOT_QUALIFIED, str(exc)) from exc
    if not qc.compliance:
        raise _Rejected(
            Rejection.NOT_QUALIFIED,
            "the signer's certificate has no QcCompliance statement (ETSI EN 319 412-5): "
            "it is not an EU qualified certificate",
        )
    types = qc.effective_types
    if required not in types:
        stated = ", ".join(_type_name(t) for t in types) or "none"
        raise _Rejected(
            Rejection.WRONG_QUALIFIED_TYPE,
            f"{_article(policy.party)} {policy.party} must sign with a qualified certificate of "
            f"QcType "
            f"{required.name.lower()} ({required.value}); this one is for {stated}",
        )
    declared = service.additional_info & _PURPOSE_URIS
    if declared and _SERVICE_PURPOSE[required] not in declared:
        raise _Rejected(
            Rejection.SERVICE_NOT_FOR_PURPOSE,
            f"{service.describe()} is listed for {', '.join(sorted(declared))}, "
            f"not for {_SERVICE_PURPOSE[required]}",
        )
    if policy.require_qscd and not qc.sscd:
        raise _Rejected(
            Rejection.NO_QSCD,
            "the policy requires a key held on a qualified device (QcSSCD statement), and "
            "the certificate has none",
        )
    key_usage = cert.key_usage_value
    if key_usage is None or "non_repudiation" not in key_usage.native:
        raise _Rejected(
            Rejection.KEY_USAGE,
            "the certificate's key usage lacks nonRepudiation (contentCommitment), which "
            "ETSI EN 319 412-2/-3 require for signing and sealing certificates",
        )
    return qc


def _check_organization(
    cert: x509.Certificate, policy: EidasPolicy
) -> OrganizationIdentifier | None:
    values = [
        attr["value"].native
        for rdn in cert.subject.chosen
        for attr in rdn
        if attr["type"].dotted == "2.5.4.97"
    ]
    if policy.party is Party.NATURAL_PERSON:
        return _check_affiliation(values, policy)
    if len(values) != 1:
        raise _Rejected(
            Rejection.ORGANIZATION_ID_MISSING,
            f"an organisation's seal must name it with exactly one organizationIdentifier "
            f"(2.5.4.97) in the subject; found {len(values)}",
        )
    try:
        org_id = parse_organization_identifier(values[0])
    except MalformedOrganizationIdentifier as exc:
        raise _Rejected(Rejection.ORGANIZATION_ID_MALFORMED, str(exc)) from exc
    expected = policy.expected_organization_id
    if expected is not None and org_id.value != expected:
        raise _Rejected(
            Rejection.ORGANIZATION_ID_MISMATCH,
            f"the seal belongs to {org_id.value}, but the enrolment is for {expected}",
        )
    return org_id


def _check_affiliation(values: list[str], policy: EidasPolicy) -> OrganizationIdentifier | None:
    """A person's certificate may name the organisation the person is associated with
    (EN 319 412-2, clause 4.2.1: natural person certificates with organisation attributes).
    Optional, unless the request says whom the person acts for; well-formed when present."""
    expected = policy.expected_organization_id
    if not values:
        if expected is None:
            return None
        raise _Rejected(
            Rejection.ORGANIZATION_ID_MISSING,
            f"the request says the signer acts for {expected}, but the signature "
            "certificate names no organizationIdentifier (2.5.4.97)",
        )
    if len(values) > 1:
        raise _Rejected(
            Rejection.ORGANIZATION_ID_MISSING,
            f"the signature certificate names {len(values)} organizationIdentifiers; at most "
            "one is allowed",
        )
    try:
        org_id = parse_organization_identifier(values[0])
    except MalformedOrganizationIdentifier as exc:
        raise _Rejected(Rejection.ORGANIZATION_ID_MALFORMED, str(exc)) from exc
    if expected is not None and org_id.value != expected:
        raise _Rejected(
            Rejection.ORGANIZATION_ID_MISMATCH,
            f"the signature certificate names {org_id.value}, but the request says the "
            f"signer acts for {expected}",
        )
    return org_id


def _reject(
    rejection: Rejection, reason: str, at: datetime | None, cert: x509.Certificate
) -> EidasResult:
    fingerprint = certificate_fingerprint(cert)
    # Fingerprints only: a natural person's name must not end up in logs.
    log.warning("eIDAS: certificate %s rejected (%s): %s", fingerprint[:16], rejection, reason)
    return EidasResult(False, reason, rejection, at, fingerprint)


def _article(party: Party) -> str:
    return "an" if party is Party.ORGANISATION else "a"


def _type_name(qc_type: QcType | str) -> str:
    return qc_type.name.lower() if isinstance(qc_type, QcType) else qc_type


def _t(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
