"""Builders for the tests' own trust services: TSP CAs, qualified certificates, trusted lists.

Everything here is made fresh per test session; no certificate or list is downloaded.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from lxml import etree
from signxml import methods
from signxml.xades import XAdESSigner

from incisive_node.identity.qualified import QC_STATEMENTS_OID, encode_qc_statements
from incisive_node.identity.trusted_list import GRANTED, SERVICE_TYPE_CA_QC, TSL_NS

ORGANIZATION_IDENTIFIER = x509.ObjectIdentifier("2.5.4.97")


def t(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


CA_FROM, CA_UNTIL = t("2019-01-01"), t("2035-01-01")
LEAF_FROM, LEAF_UNTIL = t("2024-01-01"), t("2027-01-01")
LIST_ISSUED, LIST_NEXT_UPDATE = t("2025-05-01"), t("2025-11-01")
SIGNING_TIME = t("2025-06-01T10:00:00")
NOW = SIGNING_TIME + timedelta(hours=1)


@dataclass
class Issued:
    key: ec.EllipticCurvePrivateKey
    cert: x509.Certificate

    @property
    def asn1(self) -> asn1_x509.Certificate:
        return asn1_x509.Certificate.load(self.cert.public_bytes(serialization.Encoding.DER))


def make_ca(
    name: str,
    *,
    issuer: Issued | None = None,
    not_before: datetime = CA_FROM,
    not_after: datetime = CA_UNTIL,
) -> Issued:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name(
        [
            x509.NameAttribute(NameOID.COUNTRY_NAME, "DE"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Test Trust Services GmbH"),
            x509.NameAttribute(NameOID.COMMON_NAME, name),
        ]
    )
    signer = issuer or Issued(key, None)  # type: ignore[arg-type]
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer.cert.subject if issuer else subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(signer.key.public_key()), False
        )
    )
    return Issued(key, builder.sign(signer.key, hashes.SHA256()))


def make_qualified(
    issuer: Issued,
    *,
    common_name: str,
    organization_identifier: str | None = None,
    qc_types: tuple[str, ...] = (),
    compliance: bool = True,
    sscd: bool = True,
    qc_statements: bool = True,
    non_repudiation: bool = True,
    not_before: datetime = LEAF_FROM,
    not_after: datetime = LEAF_UNTIL,
) -> Issued:
    key = ec.generate_private_key(ec.SECP256R1())
    attrs = [x509.NameAttribute(NameOID.COUNTRY_NAME, "BE")]
    if organization_identifier is not None:
        attrs.append(x509.NameAttribute(ORGANIZATION_IDENTIFIER, organization_identifier))
        attrs.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, common_name))
    attrs.append(x509.NameAttribute(NameOID.COMMON_NAME, common_name))
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name(attrs))
        .issuer_name(issuer.cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(True, non_repudiation, False, False, False, False, False, False, False),
            critical=True,
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer.key.public_key()), False
        )
    )
    if qc_statements:
        der = encode_qc_statements(
            compliance=compliance,
            types=qc_types,
            sscd=sscd,
            pds=(("https://tsp.example/pds_en.pdf", "en"),),
        )
        builder = builder.add_extension(
            x509.UnrecognizedExtension(x509.ObjectIdentifier(QC_STATEMENTS_OID), der), False
        )
    return Issued(key, builder.sign(issuer.key, hashes.SHA256()))


@dataclass
class ServiceSpec:
    name: str
    identity: Issued
    # (status URI, starting time), any order; the latest becomes the current status
    statuses: list[tuple[str, datetime]] = field(
        default_factory=lambda: [(GRANTED, t("2020-01-01"))]
    )
    service_type: str = SERVICE_TYPE_CA_QC
    additional_info: tuple[str, ...] = ()


def make_scheme_operator(name: str = "Test Trusted List Scheme Operator") -> Issued:
    """The supervisory body's signing certificate (TS 119 612 clause 5.7.1 profile)."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([
        x509.NameAttribute(NameOID.COUNTRY_NAME, "DE"),
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Test Supervisory Body"),
        x509.NameAttribute(NameOID.COMMON_NAME, name),
    ])
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject).issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(CA_FROM).not_valid_after(CA_UNTIL)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(True, True, False, False, False, False, False, False, False),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([x509.ObjectIdentifier("0.4.0.2231.3.0")]),
                       critical=False)  # id-tsl-kp-tslSigning
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
        .sign(key, hashes.SHA256())
    )
    return Issued(key, cert)


# One scheme operator signs every list the tests build, unless a test passes another.
SCHEME_OPERATOR = make_scheme_operator()


def sign_trusted_list(xml: bytes, signer: Issued = SCHEME_OPERATOR) -> bytes:
    """Enveloped XAdES-B-B over the whole list, as TS 119 612 clause 5.7 asks."""
    root = etree.fromstring(xml)
    signed = XAdESSigner(
        method=methods.enveloped, signature_algorithm="ecdsa-sha256", digest_algorithm="sha256",
    ).sign(root, key=signer.key, cert=[signer.cert])
    return etree.tostring(signed, xml_declaration=True, encoding="UTF-8")


def trusted_list_xml(
    territory: str,
    services: list[ServiceSpec],
    *,
    issued: datetime = LIST_ISSUED,
    next_update: datetime = LIST_NEXT_UPDATE,
    provider: str = "Test Trust Services GmbH",
    signer: Issued | None = SCHEME_OPERATOR,
) -> bytes:
    """A TS 119 612 v2 list with one TSP holding ``services``, signed by ``signer``
    (unsigned with ``signer=None``)."""
    ns = f"{{{TSL_NS}}}"
    root = etree.Element(ns + "TrustServiceStatusList", nsmap={None: TSL_NS})
    root.set("TSLTag", "http://uri.etsi.org/19612/TSLTag")
    info = etree.SubElement(root, ns + "SchemeInformation")
    _sub(info, "TSLVersionIdentifier", "5")
    _sub(info, "TSLSequenceNumber", "42")
    _sub(info, "TSLType", "http://uri.etsi.org/TrstSvc/TrustedList/TSLType/EUgeneric")
    _names(info, "SchemeOperatorName", f"Supervisory body of {territory}")
    _sub(info, "SchemeTerritory", territory)
    _sub(info, "ListIssueDateTime", _iso(issued))
    _sub(etree.SubElement(info, ns + "NextUpdate"), "dateTime", _iso(next_update))
    tsp = etree.SubElement(etree.SubElement(root, ns + "TrustServiceProviderList"),
                           ns + "TrustServiceProvider")
    _names(etree.SubElement(tsp, ns + "TSPInformation"), "TSPName", provider)
    tsp_services = etree.SubElement(tsp, ns + "TSPServices")
    for spec in services:
        ordered = sorted(spec.statuses, key=lambda s: s[1], reverse=True)
        service = etree.SubElement(tsp_services, ns + "TSPService")
        _service_information(etree.SubElement(service, ns + "ServiceInformation"), spec,
                             *ordered[0])
        if len(ordered) > 1:
            history = etree.SubElement(service, ns + "ServiceHistory")
            for status, start in ordered[1:]:
                instance = etree.SubElement(history, ns + "ServiceHistoryInstance")
                _service_information(instance, spec, status, start, history=True)
    xml = etree.tostring(root, xml_declaration=True, encoding="UTF-8")
    return sign_trusted_list(xml, signer) if signer is not None else xml


def _service_information(parent, spec: ServiceSpec, status: str, start: datetime,
                         history: bool = False) -> None:
    ns = f"{{{TSL_NS}}}"
    _sub(parent, "ServiceTypeIdentifier", spec.service_type)
    _names(parent, "ServiceName", spec.name)
    digital_id = etree.SubElement(etree.SubElement(parent, ns + "ServiceDigitalIdentity"),
                                  ns + "DigitalId")
    if history:  # history instances name the service by key identifier, as real lists do
        ski = spec.identity.cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier)
        _sub(digital_id, "X509SKI", base64.b64encode(ski.value.digest).decode())
    else:
        der = spec.identity.cert.public_bytes(serialization.Encoding.DER)
        _sub(digital_id, "X509Certificate", base64.b64encode(der).decode())
    _sub(parent, "ServiceStatus", status)
    _sub(parent, "StatusStartingTime", _iso(start))
    if spec.additional_info and not history:
        extensions = etree.SubElement(parent, ns + "ServiceInformationExtensions")
        for uri in spec.additional_info:
            extension = etree.SubElement(extensions, ns + "Extension", Critical="true")
            _sub(etree.SubElement(extension, ns + "AdditionalServiceInformation"), "URI", uri)


def _sub(parent, tag: str, text: str):
    element = etree.SubElement(parent, f"{{{TSL_NS}}}{tag}")
    element.text = text
    return element


def _names(parent, tag: str, name: str) -> None:
    holder = etree.SubElement(parent, f"{{{TSL_NS}}}{tag}")
    _sub(holder, "Name", name).set("{http://www.w3.org/XML/1998/namespace}lang", "en")


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
