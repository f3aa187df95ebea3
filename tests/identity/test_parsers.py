"""The pieces under eIDAS validation: organizationIdentifier, QCStatements, trusted lists, CMS."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from incisive_node.identity.organization_id import (
    MalformedOrganizationIdentifier,
    parse_organization_identifier,
)
from incisive_node.identity.qualified import (
    SEMANTICS_EIDAS_LEGAL,
    QcStatementsSyntax,
    QcType,
    encode_qc_statements,
    qc_statements,
)
from incisive_node.identity.signatures import (
    SignatureInvalid,
    canonical_json,
    sign_detached,
    verify_detached,
)
from incisive_node.identity.trusted_list import (
    FOR_ESEALS,
    GRANTED,
    WITHDRAWN,
    MalformedTrustedList,
    parse_trusted_list,
)

from .factory import SIGNING_TIME, ServiceSpec, make_ca, make_qualified, t, trusted_list_xml


@pytest.mark.parametrize(
    ("value", "kind", "country", "identifier"),
    [
        ("VATBE-0876065378", "VAT", "BE", "0876065378"),
        ("VATEL-123456789", "VAT", "EL", "123456789"),
        ("NTRDE-HRB12345", "NTR", "DE", "HRB12345"),
        ("PSDBE-NBB-0123456789", "PSD", "BE", "NBB-0123456789"),
        ("LEIXG-5493001KJTIIGC8Y1R12", "LEI", "XG", "5493001KJTIIGC8Y1R12"),
        ("FR:RNA-W751234567", None, "FR", "RNA-W751234567"),
    ],
)
def test_well_formed_organization_identifiers(value, kind, country, identifier):
    parsed = parse_organization_identifier(value)
    assert (parsed.identity_type, parsed.country, parsed.identifier) == (kind, country, identifier)
    assert parsed.national_scheme == (kind is None)


@pytest.mark.parametrize(
    ("value", "why"),
    [
        ("", "empty"),
        ("VATBE 0876065378", "whitespace"),
        (" VATBE-0876065378", "whitespace"),
        ("VATBE0876065378", "not 'TTTCC-identifier'"),
        ("VAT-BE-0876065378", "not 'TTTCC-identifier'"),
        ("TAXBE-0876065378", "identity type 'TAX'"),
        ("VatBE-0876065378", "upper case"),
        ("VATbe-0876065378", "upper case"),
        ("VATZZ-0876065378", "not an ISO 3166-1"),
        ("NTREL-123", "not an ISO 3166-1"),  # EL is a VAT prefix, not a country
        ("VATBE-", "no identifier"),
        ("VATBE-08760#65378", "characters outside"),
        ("VATBE-0", "VAT number"),
        ("LEIDE-5493001KJTIIGC8Y1R13", "check digits"),
        ("LEIDE-12345", "18 upper-case"),
        ("PSDBE-0123456789", "competent authority"),
        ("de:123", "upper case"),
        ("DE:", "needs an identifier"),
        ("X" * 65, "more than 64"),
    ],
)
def test_malformed_organization_identifiers(value, why):
    with pytest.raises(MalformedOrganizationIdentifier, match=why):
        parse_organization_identifier(value)


def test_qc_statements_round_trip():
    der = encode_qc_statements(
        types=(QcType.ESEAL,), sscd=True, pds=(("https://x.example/pds", "en"),),
        semantics=SEMANTICS_EIDAS_LEGAL,
    )
    assert len(QcStatementsSyntax.load(der)) == 5
    leaf = make_qualified(make_ca("CA"), common_name="Org", qc_types=(QcType.ESEAL,))
    parsed = qc_statements(leaf.asn1)
    assert parsed.present and parsed.compliance and parsed.sscd
    assert parsed.types == (QcType.ESEAL,)
    assert parsed.pds[0].url == "https://tsp.example/pds_en.pdf"


def test_unknown_qc_type_is_kept_as_its_oid():
    leaf = make_qualified(make_ca("CA"), common_name="Org", qc_types=("1.2.3.4",))
    parsed = qc_statements(leaf.asn1)
    assert parsed.types == ("1.2.3.4",)
    assert QcType.ESIGN not in parsed.effective_types


def test_trusted_list_history_gives_the_status_at_any_time():
    ca = make_ca("Listed CA")
    spec = ServiceSpec(
        "CA/QC 1", ca,
        statuses=[(GRANTED, t("2020-01-01")), (WITHDRAWN, t("2024-01-01")),
                  (GRANTED, t("2025-01-01"))],
        additional_info=(FOR_ESEALS,),
    )
    tl = parse_trusted_list(trusted_list_xml("AT", [spec]))
    assert (tl.territory, tl.sequence_number, tl.next_update) == ("AT", 42, t("2025-11-01"))
    (service,) = tl.services
    assert service.additional_info == {FOR_ESEALS}
    assert service.status_at(t("2019-06-01")) is None
    assert service.status_at(t("2021-06-01")).status == GRANTED
    withdrawn = service.status_at(t("2024-06-01"))
    assert withdrawn.status_name == "withdrawn" and withdrawn.end == t("2025-01-01")
    current = service.status_at(t("2025-06-01"))
    assert current.status == GRANTED and current.end is None
    assert service.identifies(ca.asn1)
    assert not service.identifies(make_ca("Other").asn1)


@pytest.mark.parametrize(
    ("data", "why"),
    [
        (b"<not xml", "well-formed"),
        (b"<TrustServiceStatusList/>", "not TrustServiceStatusList"),
        (
            b'<!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]>'
            b'<TrustServiceStatusList xmlns="http://uri.etsi.org/02231/v2#">&e;'
            b"</TrustServiceStatusList>",
            "SchemeInformation",
        ),
    ],
)
def test_malformed_trusted_lists(data, why):
    with pytest.raises(MalformedTrustedList, match=why):
        parse_trusted_list(data)


@pytest.fixture(scope="module")
def signer():
    return make_qualified(make_ca("CA"), common_name="Org", qc_types=(QcType.ESEAL,))


def test_canonical_json_is_stable_and_refuses_floats():
    assert canonical_json({"b": 1, "a": ["é", True]}) == '{"a":["é",true],"b":1}'.encode()
    with pytest.raises(ValueError, match="floats"):
        canonical_json({"score": 0.5})


def test_detached_cms_round_trip_and_tampering(signer):
    content = canonical_json({"purpose": "research"})
    signature = sign_detached(content, signer.key, signer.asn1, signing_time=SIGNING_TIME)
    signed = verify_detached(signature, content)
    assert signed.signing_time == SIGNING_TIME
    assert signed.signer.dump() == signer.asn1.dump()
    with pytest.raises(SignatureInvalid, match="message digest"):
        verify_detached(signature, content + b" ")
    other = make_qualified(make_ca("CA2"), common_name="Other")
    swapped = sign_detached(content, other.key, signer.asn1, signing_time=SIGNING_TIME)
    with pytest.raises(SignatureInvalid, match="does not verify"):
        verify_detached(swapped, content)
    with pytest.raises(SignatureInvalid, match="not valid DER"):
        verify_detached(b"\x30\x03\x02\x01\x01", content)


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command")
def test_openssl_reads_our_cms(tmp_path, signer):
    # Interoperability: what we sign is ordinary CMS that other tools verify.
    content = canonical_json({"purpose": "research"})
    (tmp_path / "doc.json").write_bytes(content)
    (tmp_path / "doc.p7s").write_bytes(
        sign_detached(content, signer.key, signer.asn1, signing_time=SIGNING_TIME)
    )
    result = subprocess.run(
        ["openssl", "cms", "-verify", "-noverify", "-binary", "-inform", "DER",
         "-in", tmp_path / "doc.p7s", "-content", tmp_path / "doc.json", "-out", tmp_path / "o"],
        capture_output=True, text=True, check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "Verification successful" in result.stderr
