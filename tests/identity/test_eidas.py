"""eIDAS validation end to end: a signed document, a trusted list, a policy, a verdict.

Each test builds its own TSP CA (the trusted-list service), qualified leaf certificates
with QCStatements, and a TS 119 612 list, then signs a request with the leaf's key.
"""

from __future__ import annotations

import logging

import pytest

from incisive_node.identity.eidas import (
    EidasPolicy,
    Party,
    Rejection,
    verify_signed_document,
)
from incisive_node.identity.qualified import QcType
from incisive_node.identity.signatures import canonical_json, sign_detached
from incisive_node.identity.trusted_list import (
    FOR_ESIGNATURES,
    GRANTED,
    STATUS_PREFIX,
    WITHDRAWN,
)
from incisive_node.identity.trusted_list_signature import load_trusted_list

from .factory import (
    NOW,
    SCHEME_OPERATOR,
    SIGNING_TIME,
    Issued,
    ServiceSpec,
    make_ca,
    make_qualified,
    t,
    trusted_list_xml,
)

ORG_ID = "VATBE-0876065378"
ENROLMENT = {"kind": "Enrolment", "site": "site-a", "organizationIdentifier": ORG_ID}
ACCESS_REQUEST = {"kind": "DataAccessRequest", "datasets": ["lung-ct"], "purpose": "research"}
ORG = EidasPolicy(Party.ORGANISATION)
PERSON = EidasPolicy(Party.NATURAL_PERSON)
# Re-checking an archived enrolment long after it was signed: no freshness bound.
ARCHIVE = EidasPolicy(Party.ORGANISATION, max_signature_age=None)


@pytest.fixture(scope="module")
def tsp_ca() -> Issued:
    return make_ca("Test Qualified CA 1")


@pytest.fixture(scope="module")
def seal(tsp_ca: Issued) -> Issued:
    return make_qualified(
        tsp_ca,
        common_name="Hospital Universitario Test",
        organization_identifier=ORG_ID,
        qc_types=(QcType.ESEAL,),
    )


@pytest.fixture(scope="module")
def esign(tsp_ca: Issued) -> Issued:
    return make_qualified(tsp_ca, common_name="Maria Researcher", qc_types=(QcType.ESIGN,))


def trusted(ca: Issued, statuses=None, **spec) -> list:
    kwargs = {"statuses": statuses} if statuses else {}
    service = ServiceSpec("Qualified CA 1 for QCs", ca, **kwargs, **spec)
    # Lists are loaded as the hub loads them: signature checked against the pinned operator.
    return [load_trusted_list(trusted_list_xml("DE", [service]), [SCHEME_OPERATOR.cert])]


def signed(document: dict, signer: Issued, chain=(), at=SIGNING_TIME) -> tuple[bytes, bytes]:
    content = canonical_json(document)
    signature = sign_detached(
        content, signer.key, signer.asn1, [c.asn1 for c in chain], signing_time=at
    )
    return content, signature


def verify(document, signer, lists, policy, *, chain=(), at=SIGNING_TIME, now=NOW):
    content, signature = signed(document, signer, chain, at)
    return verify_signed_document(content, signature, lists, policy, now=now)


def test_valid_eseal_for_an_organisation(tsp_ca, seal):
    result = verify(ENROLMENT, seal, trusted(tsp_ca), ORG)
    assert result.valid, result.reason
    assert result.rejection is None
    assert result.organization_id is not None
    assert (result.organization_id.identity_type, result.organization_id.country) == ("VAT", "BE")
    assert result.qc.types == (QcType.ESEAL,)
    assert result.qc.sscd and result.qc.pds[0].language == "en"
    assert result.service.territory == "DE"
    assert result.signing_time == SIGNING_TIME
    assert "Qualified CA 1 for QCs" in result.reason


def test_valid_esign_for_a_natural_person(tsp_ca, esign):
    result = verify(ACCESS_REQUEST, esign, trusted(tsp_ca), PERSON)
    assert result.valid, result.reason
    assert result.organization_id is None
    assert result.qc.types == (QcType.ESIGN,)


def test_person_name_stays_out_of_logs(tsp_ca, esign, caplog):
    with caplog.at_level(logging.INFO, logger="incisive_node.identity"):
        accepted = verify(ACCESS_REQUEST, esign, trusted(tsp_ca), PERSON)
        refused = verify(ACCESS_REQUEST, esign, trusted(tsp_ca), ORG)
    assert accepted.valid and not refused.valid
    assert caplog.records
    assert "Maria" not in caplog.text
    assert accepted.signer_fingerprint[:16] in caplog.text


def test_compliant_certificate_without_qctype_counts_as_esign(tsp_ca):
    legacy = make_qualified(tsp_ca, common_name="Legacy Signer")
    assert verify(ACCESS_REQUEST, legacy, trusted(tsp_ca), PERSON).valid
    refused = verify(ENROLMENT, legacy, trusted(tsp_ca), ORG)
    assert refused.rejection is Rejection.WRONG_QUALIFIED_TYPE


def test_withdrawn_service_is_refused(tsp_ca, seal):
    lists = trusted(tsp_ca, [(GRANTED, t("2020-01-01")), (WITHDRAWN, t("2025-03-01"))])
    result = verify(ENROLMENT, seal, lists, ORG)
    assert not result.valid
    assert result.rejection is Rejection.SERVICE_NOT_GRANTED
    assert "withdrawn at 2025-03-01T00:00:00Z, before the signing time 2025-06-01T10:00:00Z" in (
        result.reason
    )
    assert "trusted list for DE" in result.reason


def test_signature_made_while_granted_survives_a_later_withdrawal(tsp_ca, seal):
    lists = trusted(tsp_ca, [(GRANTED, t("2020-01-01")), (WITHDRAWN, t("2025-03-01"))])
    result = verify(ENROLMENT, seal, lists, ARCHIVE, at=t("2025-02-28T12:00:00"), now=NOW)
    assert result.valid, result.reason


def test_signing_time_in_a_lapsed_period_of_the_history_is_refused(tsp_ca, seal):
    # Granted, then withdrawn 2024-09-01, then granted again after the signature was made.
    lists = trusted(
        tsp_ca,
        [(GRANTED, t("2020-01-01")), (WITHDRAWN, t("2024-09-01")), (GRANTED, t("2025-09-01"))],
    )
    result = verify(ENROLMENT, seal, lists, ARCHIVE, now=t("2025-10-01"))
    assert result.rejection is Rejection.SERVICE_NOT_GRANTED
    assert "withdrawn at 2024-09-01" in result.reason


def test_certificate_expired_before_the_signing_time_is_refused(tsp_ca):
    leaf = make_qualified(
        tsp_ca, common_name="Clinic", organization_identifier=ORG_ID,
        qc_types=(QcType.ESEAL,), not_after=t("2025-01-01"),
    )
    result = verify(ENROLMENT, leaf, trusted(tsp_ca), ORG)
    assert result.rejection is Rejection.CERTIFICATE_NOT_VALID_AT_SIGNING_TIME
    assert "2025-06-01T10:00:00Z" in result.reason


def test_expired_intermediate_below_the_listed_service_is_refused(tsp_ca):
    issuing = make_ca("Expired Issuing CA", issuer=tsp_ca, not_after=t("2025-01-01"))
    leaf = make_qualified(
        issuing, common_name="Clinic", organization_identifier=ORG_ID, qc_types=(QcType.ESEAL,)
    )
    result = verify(ENROLMENT, leaf, trusted(tsp_ca), ORG, chain=(issuing,))
    assert result.rejection is Rejection.CERTIFICATE_NOT_VALID_AT_SIGNING_TIME


def test_service_granted_only_after_the_signing_time_is_refused(tsp_ca, seal):
    result = verify(ENROLMENT, seal, trusted(tsp_ca, [(GRANTED, t("2025-07-01"))]), ORG)
    assert result.rejection is Rejection.SERVICE_NOT_YET_GRANTED
    assert "first listed as granted at 2025-07-01T00:00:00Z, after the signing time" in (
        result.reason
    )


def test_service_in_another_status_until_granted_later_is_refused(tsp_ca, seal):
    national = STATUS_PREFIX + "recognisedatnationallevel"
    lists = trusted(tsp_ca, [(national, t("2019-01-01")), (GRANTED, t("2025-07-01"))])
    result = verify(ENROLMENT, seal, lists, ORG)
    assert result.rejection is Rejection.SERVICE_NOT_YET_GRANTED
    assert "granted only from 2025-07-01T00:00:00Z" in result.reason
    assert "recognisedatnationallevel" in result.reason


def test_esign_certificate_cannot_seal_for_an_organisation(tsp_ca, esign):
    result = verify(ENROLMENT, esign, trusted(tsp_ca), ORG)
    assert result.rejection is Rejection.WRONG_QUALIFIED_TYPE
    assert "QcType eseal (0.4.0.1862.1.6.2)" in result.reason
    assert "this one is for esign" in result.reason


def test_eseal_cannot_sign_for_a_person(tsp_ca, seal):
    result = verify(ACCESS_REQUEST, seal, trusted(tsp_ca), PERSON)
    assert result.rejection is Rejection.WRONG_QUALIFIED_TYPE
    assert "esign (0.4.0.1862.1.6.1)" in result.reason


def test_missing_qc_compliance_is_refused(tsp_ca):
    leaf = make_qualified(
        tsp_ca, common_name="Clinic", organization_identifier=ORG_ID,
        qc_types=(QcType.ESEAL,), compliance=False,
    )
    result = verify(ENROLMENT, leaf, trusted(tsp_ca), ORG)
    assert result.rejection is Rejection.NOT_QUALIFIED
    assert "QcCompliance" in result.reason


def test_certificate_without_qcstatements_is_refused(tsp_ca):
    leaf = make_qualified(tsp_ca, common_name="Plain", qc_statements=False)
    assert verify(ACCESS_REQUEST, leaf, trusted(tsp_ca), PERSON).rejection is (
        Rejection.NOT_QUALIFIED
    )


@pytest.mark.parametrize(
    ("value", "why"),
    [
        ("VATBE0876065378", "is not 'TTTCC-identifier'"),
        ("XYZBE-0876065378", "identity type 'XYZ'"),
        ("VATQQ-0876065378", "not an ISO 3166-1 country code"),
        ("vatBE-0876065378", "must be upper case"),
        ("NTRDE-", "no identifier"),
        ("LEIXG-5493001KJTIIGC8Y1R13", "check digits"),
    ],
)
def test_malformed_organization_identifier_is_refused(tsp_ca, value, why):
    leaf = make_qualified(
        tsp_ca, common_name="Clinic", organization_identifier=value, qc_types=(QcType.ESEAL,)
    )
    result = verify(ENROLMENT, leaf, trusted(tsp_ca), ORG)
    assert result.rejection is Rejection.ORGANIZATION_ID_MALFORMED
    assert why in result.reason


def test_seal_without_organization_identifier_is_refused(tsp_ca):
    leaf = make_qualified(tsp_ca, common_name="Clinic", qc_types=(QcType.ESEAL,))
    result = verify(ENROLMENT, leaf, trusted(tsp_ca), ORG)
    assert result.rejection is Rejection.ORGANIZATION_ID_MISSING


def test_seal_of_another_organisation_is_refused(tsp_ca, seal):
    policy = EidasPolicy(Party.ORGANISATION, expected_organization_id="NTRDE-HRB12345")
    result = verify(ENROLMENT, seal, trusted(tsp_ca), policy)
    assert result.rejection is Rejection.ORGANIZATION_ID_MISMATCH
    assert ORG_ID in result.reason and "NTRDE-HRB12345" in result.reason


def test_chain_to_an_untrusted_root_is_refused(tsp_ca):
    rogue_ca = make_ca("Rogue Qualified CA")
    forged = make_qualified(
        rogue_ca, common_name="Clinic", organization_identifier=ORG_ID, qc_types=(QcType.ESEAL,)
    )
    result = verify(ENROLMENT, forged, trusted(tsp_ca), ORG, chain=(rogue_ca,))
    assert result.rejection is Rejection.UNTRUSTED_CHAIN
    assert "Rogue Qualified CA" in result.reason and "DE" in result.reason


def test_intermediate_listed_as_the_service_anchors_the_chain():
    root = make_ca("Unlisted Root")
    issuing = make_ca("Listed Issuing CA", issuer=root)
    leaf = make_qualified(
        issuing, common_name="Clinic", organization_identifier=ORG_ID, qc_types=(QcType.ESEAL,)
    )
    result = verify(ENROLMENT, leaf, trusted(issuing), ORG, chain=(issuing, root))
    assert result.valid, result.reason


def test_service_that_is_not_a_qualified_ca_is_refused(tsp_ca, seal):
    lists = trusted(tsp_ca, service_type="http://uri.etsi.org/TrstSvc/Svctype/CA/PKC")
    assert verify(ENROLMENT, seal, lists, ORG).rejection is Rejection.SERVICE_NOT_QUALIFIED_CA


def test_service_listed_for_signatures_only_cannot_back_a_seal(tsp_ca, seal, esign):
    lists = trusted(tsp_ca, additional_info=(FOR_ESIGNATURES,))
    result = verify(ENROLMENT, seal, lists, ORG)
    assert result.rejection is Rejection.SERVICE_NOT_FOR_PURPOSE
    assert verify(ACCESS_REQUEST, esign, lists, PERSON).valid


def test_qscd_policy(tsp_ca):
    soft = make_qualified(tsp_ca, common_name="Soft Key", qc_types=(QcType.ESIGN,), sscd=False)
    assert verify(ACCESS_REQUEST, soft, trusted(tsp_ca), PERSON).valid
    strict = EidasPolicy(Party.NATURAL_PERSON, require_qscd=True)
    assert verify(ACCESS_REQUEST, soft, trusted(tsp_ca), strict).rejection is Rejection.NO_QSCD


def test_key_usage_without_non_repudiation_is_refused(tsp_ca):
    leaf = make_qualified(
        tsp_ca, common_name="Auth Only", qc_types=(QcType.ESIGN,), non_repudiation=False
    )
    assert verify(ACCESS_REQUEST, leaf, trusted(tsp_ca), PERSON).rejection is Rejection.KEY_USAGE


def test_tampered_document_is_refused(tsp_ca, seal):
    content, signature = signed(ENROLMENT, seal)
    tampered = content.replace(b"site-a", b"site-b")
    result = verify_signed_document(tampered, signature, trusted(tsp_ca), ORG, now=NOW)
    assert result.rejection is Rejection.BAD_SIGNATURE
    assert "message digest" in result.reason


def test_signature_from_the_future_or_too_old_is_refused(tsp_ca, seal):
    future = verify(ENROLMENT, seal, trusted(tsp_ca), ORG, now=t("2025-05-20"))
    assert future.rejection is Rejection.SIGNING_TIME_IN_FUTURE
    # A backdated signing time (say, to before a withdrawal) is refused by the default bound.
    old = verify(ENROLMENT, seal, trusted(tsp_ca), ORG, now=t("2025-06-02T10:00:01"))
    assert old.rejection is Rejection.SIGNATURE_TOO_OLD
    assert "sign it again" in old.reason
    assert verify(ENROLMENT, seal, trusted(tsp_ca), ORG, now=t("2025-06-02T09:59:59")).valid


def test_stale_trusted_list_is_refused(tsp_ca, seal):
    result = verify(ENROLMENT, seal, trusted(tsp_ca), ARCHIVE, now=t("2025-12-01"))
    assert result.rejection is Rejection.TRUSTED_LIST_STALE
    assert "2025-11-01" in result.reason


def test_a_person_may_name_the_organisation_they_act_for(tsp_ca):
    affiliated = make_qualified(tsp_ca, common_name="Maria Researcher",
                                organization_identifier=ORG_ID, qc_types=(QcType.ESIGN,))
    acting_for = EidasPolicy(Party.NATURAL_PERSON, expected_organization_id=ORG_ID)
    result = verify(ACCESS_REQUEST, affiliated, trusted(tsp_ca), acting_for)
    assert result.valid, result.reason
    assert result.organization_id.value == ORG_ID
    assert "Maria" not in result.reason  # a person is named by fingerprint only


def test_person_acting_for_an_organisation_their_certificate_does_not_name(tsp_ca, esign):
    acting_for = EidasPolicy(Party.NATURAL_PERSON, expected_organization_id=ORG_ID)
    missing = verify(ACCESS_REQUEST, esign, trusted(tsp_ca), acting_for)
    assert missing.rejection is Rejection.ORGANIZATION_ID_MISSING
    other = make_qualified(tsp_ca, common_name="Maria Researcher",
                           organization_identifier="NTRDE-HRB12345", qc_types=(QcType.ESIGN,))
    mismatch = verify(ACCESS_REQUEST, other, trusted(tsp_ca), acting_for)
    assert mismatch.rejection is Rejection.ORGANIZATION_ID_MISMATCH
    assert "NTRDE-HRB12345" in mismatch.reason and ORG_ID in mismatch.reason


def test_malformed_organization_identifier_in_a_person_certificate_is_refused(tsp_ca):
    leaf = make_qualified(tsp_ca, common_name="Maria Researcher",
                          organization_identifier="VATQQ-0876065378", qc_types=(QcType.ESIGN,))
    result = verify(ACCESS_REQUEST, leaf, trusted(tsp_ca), PERSON)
    assert result.rejection is Rejection.ORGANIZATION_ID_MALFORMED
    assert "not an ISO 3166-1 country code" in result.reason
