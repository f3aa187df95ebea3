"""QCStatements (ETSI EN 319 412-5, RFC 3739): what a certificate says about its qualification.

asn1crypto does not know the extension, so the ASN.1 is declared here from EN 319 412-5
Annex B. Unknown statements are kept by OID and otherwise ignored, as the standard allows
for non-critical statements.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import ClassVar

from asn1crypto import core, x509

QC_STATEMENTS_OID = "1.3.6.1.5.5.7.1.3"  # id-pe-qcStatements, RFC 3739

QC_COMPLIANCE = "0.4.0.1862.1.1"
QC_LIMIT_VALUE = "0.4.0.1862.1.2"
QC_RETENTION_PERIOD = "0.4.0.1862.1.3"
QC_SSCD = "0.4.0.1862.1.4"
QC_PDS = "0.4.0.1862.1.5"
QC_TYPE = "0.4.0.1862.1.6"
QC_CC_LEGISLATION = "0.4.0.1862.1.7"
PKIX_QC_SYNTAX_V2 = "1.3.6.1.5.5.7.11.2"  # RFC 3739 semantics information

# ETSI EN 319 412-1 clause 5.1: semantics identifiers inside id-qcs-pkixQCSyntax-v2.
SEMANTICS_NATURAL = "0.4.0.194121.1.1"
SEMANTICS_LEGAL = "0.4.0.194121.1.2"
SEMANTICS_EIDAS_NATURAL = "0.4.0.194121.1.3"
SEMANTICS_EIDAS_LEGAL = "0.4.0.194121.1.4"


class QcType(StrEnum):
    """id-etsi-qct-*: the purpose a qualified certificate is issued for."""

    ESIGN = "0.4.0.1862.1.6.1"  # natural person, electronic signature
    ESEAL = "0.4.0.1862.1.6.2"  # legal person, electronic seal
    WEB = "0.4.0.1862.1.6.3"  # website authentication


class _PdsLocation(core.Sequence):
    _fields: ClassVar = [("url", core.IA5String), ("language", core.PrintableString)]


class _PdsLocations(core.SequenceOf):
    _child_spec = _PdsLocation


class _QcTypeSyntax(core.SequenceOf):
    _child_spec = core.ObjectIdentifier


class _CountryCodes(core.SequenceOf):
    _child_spec = core.PrintableString


class _SemanticsInformation(core.Sequence):
    _fields: ClassVar = [
        ("semantics_identifier", core.ObjectIdentifier, {"optional": True}),
        ("name_registration_authorities", x509.GeneralNames, {"optional": True}),
    ]


class _QcStatement(core.Sequence):
    _fields: ClassVar = [
        ("statement_id", core.ObjectIdentifier),
        ("statement_info", core.Any, {"optional": True}),
    ]


class QcStatementsSyntax(core.SequenceOf):
    _child_spec = _QcStatement


@dataclass(frozen=True)
class PdsLocation:
    url: str
    language: str


@dataclass(frozen=True)
class QcStatements:
    present: bool = False
    compliance: bool = False
    sscd: bool = False
    types: tuple[QcType | str, ...] = ()
    pds: tuple[PdsLocation, ...] = ()
    retention_years: int | None = None
    legislation: tuple[str, ...] = ()
    semantics: str | None = None
    other: tuple[str, ...] = field(default_factory=tuple)

    @property
    def effective_types(self) -> tuple[QcType | str, ...]:
        """QcType, or esign when a compliant certificate states none.

        ETSI TS 119 615 (and EN 319 412-5's backward compatibility with Directive 1999/93)
        read a QcCompliance certificate without QcType as one for electronic signatures.
        """
        if self.types:
            return self.types
        return (QcType.ESIGN,) if self.compliance else ()


class MalformedQcStatements(ValueError):
    pass


def qc_statements(cert: x509.Certificate) -> QcStatements:
    """Parse the certificate's QCStatements; absent extension gives ``present=False``."""
    ext = _extension(cert, QC_STATEMENTS_OID)
    if ext is None:
        return QcStatements()
    try:
        parsed = QcStatementsSyntax.load(ext)
        return _from_syntax(parsed)
    except (ValueError, TypeError) as exc:
        raise MalformedQcStatements(f"QCStatements extension cannot be parsed: {exc}") from exc


def _from_syntax(parsed: QcStatementsSyntax) -> QcStatements:
    values: dict = {"present": True}
    other: list[str] = []
    for statement in parsed:
        oid = statement["statement_id"].dotted
        info = statement["statement_info"]
        raw = info.dump() if info.native is not None else None
        if oid == QC_COMPLIANCE:
            values["compliance"] = True
        elif oid == QC_SSCD:
            values["sscd"] = True
        elif oid == QC_TYPE and raw:
            values["types"] = tuple(
                _qc_type(o.dotted) for o in _QcTypeSyntax.load(raw)
            )
        elif oid == QC_PDS and raw:
            values["pds"] = tuple(
                PdsLocation(p["url"].native, p["language"].native)
                for p in _PdsLocations.load(raw)
            )
        elif oid == QC_RETENTION_PERIOD and raw:
            values["retention_years"] = core.Integer.load(raw).native
        elif oid == QC_CC_LEGISLATION and raw:
            values["legislation"] = tuple(c.native for c in _CountryCodes.load(raw))
        elif oid == PKIX_QC_SYNTAX_V2 and raw:
            ident = _SemanticsInformation.load(raw)["semantics_identifier"]
            values["semantics"] = ident.dotted if ident.native is not None else None
        else:
            other.append(oid)
    return QcStatements(**values, other=tuple(other))


def _qc_type(dotted: str) -> QcType | str:
    try:
        return QcType(dotted)
    except ValueError:
        return dotted


def _extension(cert: x509.Certificate, oid: str) -> bytes | None:
    for ext in cert["tbs_certificate"]["extensions"]:
        if ext["extn_id"].dotted == oid:
            return ext["extn_value"].contents
    return None


def encode_qc_statements(
    *,
    compliance: bool = True,
    types: tuple[str, ...] = (),
    sscd: bool = False,
    pds: tuple[tuple[str, str], ...] = (),
    semantics: str | None = None,
) -> bytes:
    """DER of a QCStatements value, for issuing test and demo certificates."""
    items = []
    if compliance:
        items.append({"statement_id": QC_COMPLIANCE})
    if semantics is not None:
        info = _SemanticsInformation({"semantics_identifier": semantics})
        items.append({"statement_id": PKIX_QC_SYNTAX_V2, "statement_info": info})
    if sscd:
        items.append({"statement_id": QC_SSCD})
    if types:
        items.append({"statement_id": QC_TYPE, "statement_info": _QcTypeSyntax(list(types))})
    if pds:
        locations = _PdsLocations([{"url": u, "language": lang} for u, lang in pds])
        items.append({"statement_id": QC_PDS, "statement_info": locations})
    return QcStatementsSyntax(items).dump()
