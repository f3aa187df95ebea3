"""The trusted list's own signature: refuse a list its scheme operator did not sign.

A TS 119 612 list is an XML document with an enveloped XAdES signature (clause 5.7) made by
the Member State's scheme operator, whose certificates the EU list of trusted lists (LOTL)
pins. We verify it against certificates pinned in our configuration, never against the
certificate the list carries about itself, and then parse only the bytes the signature
covers (``signxml`` hands back the signed element), so content slipped in beside the signed
part (a signature-wrapping attack) never reaches the parser.

XML canonicalisation, reference resolution and the XAdES signed properties are signxml's
job; this module decides which certificate is trusted and words the refusal.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from cryptography import x509
from lxml import etree
from signxml import InvalidInput, SignatureConfiguration
from signxml.exceptions import InvalidCertificate, InvalidDigest, InvalidSignature
from signxml.xades import XAdESSignatureConfiguration, XAdESVerifier

from .trusted_list import TSL_NS, MalformedTrustedList, TrustedList, parse_trusted_list

DSIG_NS = "http://www.w3.org/2000/09/xmldsig#"


class TrustedListSignatureInvalid(MalformedTrustedList):
    """The list is unsigned, tampered with, or signed by a certificate we do not pin."""


def load_pinned_certificates(pem: bytes) -> list[x509.Certificate]:
    try:
        certs = x509.load_pem_x509_certificates(pem)
    except ValueError as exc:
        raise TrustedListSignatureInvalid(
            f"the pinned scheme-operator certificates are not PEM: {exc}") from exc
    return certs


def load_trusted_list(
    data: bytes, scheme_operator_certs: Sequence[x509.Certificate], *,
    at: datetime | None = None,
) -> TrustedList:
    """Verify the list's enveloped signature with a pinned certificate, then parse it.

    ``at`` is the time at which the pinned certificate must be valid (default: now).
    Raises :class:`TrustedListSignatureInvalid` with the reason when the signature does not
    hold, :class:`MalformedTrustedList` when the signed list is not a TS 119 612 list.
    """
    if not scheme_operator_certs:
        raise TrustedListSignatureInvalid(
            "no scheme-operator certificate is pinned for this trusted list, so its "
            "signature cannot be checked")
    root = _parse(data)
    signatures = root.findall(f"{{{DSIG_NS}}}Signature")
    if not signatures:
        raise TrustedListSignatureInvalid(
            "the trusted list is not signed (no enveloped ds:Signature under "
            "TrustServiceStatusList)")
    if len(signatures) > 1:
        raise TrustedListSignatureInvalid(
            f"the trusted list carries {len(signatures)} signatures; exactly one is expected")
    failures = []
    for cert in scheme_operator_certs:
        try:
            signed = _verify(data, cert, at)
        except (InvalidSignature, InvalidDigest, InvalidCertificate, InvalidInput) as exc:
            failures.append(f"{_subject(cert)}: {_why(exc)}")
            continue
        return parse_trusted_list(etree.tostring(signed))
    raise TrustedListSignatureInvalid(
        "the trusted list's signature does not verify with any pinned scheme-operator "
        "certificate (" + "; ".join(failures) + ")")


def _parse(data: bytes) -> etree._Element:
    parser = etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=False)
    try:
        root = etree.fromstring(data, parser=parser)
    except etree.XMLSyntaxError as exc:
        raise MalformedTrustedList(f"trusted list is not well-formed XML: {exc}") from exc
    if root.tag != f"{{{TSL_NS}}}TrustServiceStatusList":
        raise MalformedTrustedList(
            f"root element is {root.tag}, not TrustServiceStatusList in {TSL_NS}")
    return root


def _verify(data: bytes, cert: x509.Certificate, at: datetime | None) -> etree._Element:
    # References: the list itself, the XAdES SignedProperties and, when the signer also
    # signed its KeyInfo, that; real lists use two or three, so the count is not fixed.
    config: SignatureConfiguration = XAdESSignatureConfiguration(
        expect_references=True, verification_time=at)
    results = XAdESVerifier().verify(data, x509_cert=cert, expect_config=config)
    for result in results:
        signed = result.signed_xml
        if signed is not None and signed.tag == f"{{{TSL_NS}}}TrustServiceStatusList":
            return signed
    raise InvalidInput("the signature does not cover the TrustServiceStatusList element")


def _why(exc: Exception) -> str:
    # signxml's certificate and digest errors subclass its signature error: test them first.
    if isinstance(exc, InvalidCertificate):
        return f"the certificate is not usable ({exc})"
    if isinstance(exc, InvalidDigest):
        return f"the list was changed after it was signed ({exc})"
    if isinstance(exc, InvalidSignature):
        return "the signature value does not verify with this certificate's key"
    return str(exc)


def _subject(cert: x509.Certificate) -> str:
    return cert.subject.rfc4514_string()
