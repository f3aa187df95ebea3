"""The trusted list's own XAdES signature: checked against a pinned scheme-operator
certificate before one service in it is believed."""

from __future__ import annotations

import re

import pytest
from lxml import etree

from incisive_node.identity.trusted_list import GRANTED, WITHDRAWN, MalformedTrustedList
from incisive_node.identity.trusted_list_signature import (
    TrustedListSignatureInvalid,
    load_pinned_certificates,
    load_trusted_list,
)

from .factory import (
    SCHEME_OPERATOR,
    ServiceSpec,
    make_ca,
    make_scheme_operator,
    sign_trusted_list,
    t,
    trusted_list_xml,
)


@pytest.fixture(scope="module")
def withdrawn_list() -> bytes:
    ca = make_ca("Qualified CA withdrawn in 2025")
    service = ServiceSpec("Withdrawn CA", ca,
                          statuses=[(GRANTED, t("2020-01-01")), (WITHDRAWN, t("2025-03-01"))])
    return trusted_list_xml("DE", [service])


def test_signed_list_loads_with_the_pinned_certificate(withdrawn_list):
    tl = load_trusted_list(withdrawn_list, [SCHEME_OPERATOR.cert])
    assert tl.territory == "DE"
    assert [s.name for s in tl.services] == ["Withdrawn CA"]
    assert tl.services[0].history[-1].status == WITHDRAWN


def test_pinned_certificates_read_from_pem():
    from cryptography.hazmat.primitives import serialization

    second = make_scheme_operator("Second operator")
    pem = b"".join(c.public_bytes(serialization.Encoding.PEM)
                   for c in (SCHEME_OPERATOR.cert, second.cert))
    assert load_pinned_certificates(pem) == [SCHEME_OPERATOR.cert, second.cert]
    with pytest.raises(TrustedListSignatureInvalid, match="not PEM"):
        load_pinned_certificates(b"not a certificate")


def test_unsigned_list_is_refused():
    unsigned = trusted_list_xml("DE", [ServiceSpec("CA", make_ca("CA"))], signer=None)
    with pytest.raises(TrustedListSignatureInvalid, match="the trusted list is not signed"):
        load_trusted_list(unsigned, [SCHEME_OPERATOR.cert])


def test_tampered_list_is_refused(withdrawn_list):
    # Someone "reinstates" the withdrawn service by editing the signed list.
    tampered = withdrawn_list.replace(b"Svcstatus/withdrawn", b"Svcstatus/granted")
    assert tampered != withdrawn_list
    with pytest.raises(TrustedListSignatureInvalid) as refused:
        load_trusted_list(tampered, [SCHEME_OPERATOR.cert])
    assert "changed after it was signed" in str(refused.value)
    assert "Digest mismatch" in str(refused.value)


def test_list_signed_by_an_unpinned_key_is_refused(withdrawn_list):
    rogue = make_scheme_operator("Rogue operator")
    forged = sign_trusted_list(_strip_signature(withdrawn_list), rogue)
    with pytest.raises(TrustedListSignatureInvalid) as refused:
        load_trusted_list(forged, [SCHEME_OPERATOR.cert])
    assert "does not verify with any pinned scheme-operator certificate" in str(refused.value)
    assert "Test Trusted List Scheme Operator" in str(refused.value)
    # The forger's own certificate inside the list's KeyInfo is never what we trust.
    assert load_trusted_list(forged, [rogue.cert]).territory == "DE"


def test_nothing_pinned_means_nothing_trusted(withdrawn_list):
    with pytest.raises(TrustedListSignatureInvalid, match="no scheme-operator certificate"):
        load_trusted_list(withdrawn_list, [])


def test_rotated_operator_key_any_pinned_certificate_verifies(withdrawn_list):
    successor = make_scheme_operator("Successor operator")
    resigned = sign_trusted_list(_strip_signature(withdrawn_list), successor)
    tl = load_trusted_list(resigned, [SCHEME_OPERATOR.cert, successor.cert])
    assert tl.services[0].name == "Withdrawn CA"


def test_pinned_certificate_expired_at_verification_time_is_refused(withdrawn_list):
    with pytest.raises(TrustedListSignatureInvalid, match="not usable"):
        load_trusted_list(withdrawn_list, [SCHEME_OPERATOR.cert], at=t("2036-01-01"))


def test_unsigned_service_added_beside_the_signature_is_refused(withdrawn_list):
    """Signature wrapping: a second, unsigned provider list appended to a signed list."""
    root = etree.fromstring(withdrawn_list)
    ns = root.nsmap[None]
    extra = etree.SubElement(root, f"{{{ns}}}TrustServiceProviderList")
    etree.SubElement(extra, f"{{{ns}}}TrustServiceProvider")
    wrapped = etree.tostring(root)
    with pytest.raises(TrustedListSignatureInvalid, match="changed after it was signed"):
        load_trusted_list(wrapped, [SCHEME_OPERATOR.cert])


def test_not_a_trusted_list_is_malformed():
    with pytest.raises(MalformedTrustedList, match="not well-formed"):
        load_trusted_list(b"<TrustServiceStatusList", [SCHEME_OPERATOR.cert])
    with pytest.raises(MalformedTrustedList, match="not TrustServiceStatusList"):
        load_trusted_list(b"<other/>", [SCHEME_OPERATOR.cert])


def _strip_signature(xml: bytes) -> bytes:
    return re.sub(rb"<ds:Signature .*</ds:Signature>", b"", xml, flags=re.S)
