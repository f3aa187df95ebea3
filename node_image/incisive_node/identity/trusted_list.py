"""ETSI TS 119 612 trusted lists: which qualified services a Member State supervises, and when.

Only what eIDAS validation needs is read: the territory, the list's issue and next-update
times, and for each service its type, name, certificates, current status and status
history. The list's own XML signature is not checked here: load lists with
:func:`incisive_node.identity.trusted_list_signature.load_trusted_list`, which verifies it
against the pinned scheme-operator certificates and then calls this parser.
"""

from __future__ import annotations

import base64
import hashlib
from bisect import bisect_right
from dataclasses import dataclass, field
from datetime import datetime

from asn1crypto import x509
from lxml import etree

TSL_NS = "http://uri.etsi.org/02231/v2#"
_NS = {"tsl": TSL_NS}

STATUS_PREFIX = "http://uri.etsi.org/TrstSvc/TrustedList/Svcstatus/"
GRANTED = STATUS_PREFIX + "granted"
WITHDRAWN = STATUS_PREFIX + "withdrawn"
SERVICE_TYPE_CA_QC = "http://uri.etsi.org/TrstSvc/Svctype/CA/QC"
# additionalServiceInformation URIs (TS 119 612 clause 5.5.9.4) that narrow what a CA/QC
# service issues qualified certificates for.
FOR_ESIGNATURES = "http://uri.etsi.org/TrstSvc/TrustedList/SvcInfoExt/ForeSignatures"
FOR_ESEALS = "http://uri.etsi.org/TrstSvc/TrustedList/SvcInfoExt/ForeSeals"
FOR_WEBSITE_AUTH = "http://uri.etsi.org/TrstSvc/TrustedList/SvcInfoExt/ForWebSiteAuthentication"


class MalformedTrustedList(ValueError):
    pass


@dataclass(frozen=True)
class StatusPeriod:
    status: str
    start: datetime
    end: datetime | None  # None: still the current status

    @property
    def status_name(self) -> str:
        return self.status.removeprefix(STATUS_PREFIX)


@dataclass(frozen=True)
class TrustService:
    territory: str
    provider: str
    name: str
    service_type: str
    certificates: tuple[x509.Certificate, ...]
    subject_key_ids: frozenset[bytes]
    history: tuple[StatusPeriod, ...]  # oldest first; the last is the current status
    additional_info: frozenset[str] = field(default_factory=frozenset)

    def status_at(self, moment: datetime) -> StatusPeriod | None:
        """The status period covering ``moment``; None when the service was not yet listed."""
        starts = [p.start for p in self.history]
        i = bisect_right(starts, moment)
        return self.history[i - 1] if i else None

    def identifies(self, cert: x509.Certificate) -> bool:
        """Whether ``cert`` is this service's digital identity (TS 119 612 clause 5.5.3)."""
        if any(c.dump() == cert.dump() for c in self.certificates):
            return True
        ski = cert.key_identifier
        return ski is not None and ski in self.subject_key_ids

    def describe(self) -> str:
        return (
            f"service {self.name!r} of {self.provider!r} in the trusted list for {self.territory}"
        )


@dataclass(frozen=True)
class TrustedList:
    territory: str
    sequence_number: int
    issued: datetime
    next_update: datetime | None
    services: tuple[TrustService, ...]

    @property
    def anchors(self) -> list[x509.Certificate]:
        return [c for s in self.services for c in s.certificates]


def parse_trusted_list(data: bytes) -> TrustedList:
    # No network access and no entity expansion: a list is data, never a program.
    parser = etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=False)
    try:
        root = etree.fromstring(data, parser=parser)
    except etree.XMLSyntaxError as exc:
        raise MalformedTrustedList(f"trusted list is not well-formed XML: {exc}") from exc
    if root.tag != f"{{{TSL_NS}}}TrustServiceStatusList":
        raise MalformedTrustedList(
            f"root element is {root.tag}, not TrustServiceStatusList in {TSL_NS}"
        )
    info = _one(root, "tsl:SchemeInformation")
    territory = _text(info, "tsl:SchemeTerritory")
    services = tuple(
        _service(territory, tsp, svc)
        for tsp in root.iterfind("tsl:TrustServiceProviderList/tsl:TrustServiceProvider", _NS)
        for svc in tsp.iterfind("tsl:TSPServices/tsl:TSPService", _NS)
    )
    next_update = info.find("tsl:NextUpdate/tsl:dateTime", _NS)
    return TrustedList(
        territory=territory,
        sequence_number=int(_text(info, "tsl:TSLSequenceNumber")),
        issued=_time(_text(info, "tsl:ListIssueDateTime")),
        next_update=_time(next_update.text) if next_update is not None else None,
        services=services,
    )


def _service(territory: str, tsp: etree._Element, svc: etree._Element) -> TrustService:
    info = _one(svc, "tsl:ServiceInformation")
    provider = _name(_one(tsp, "tsl:TSPInformation/tsl:TSPName"))
    certs, skis = _digital_identity(info)
    for hist in svc.iterfind("tsl:ServiceHistory/tsl:ServiceHistoryInstance", _NS):
        more_certs, more_skis = _digital_identity(hist)
        certs += [c for c in more_certs if all(c.dump() != k.dump() for k in certs)]
        skis |= more_skis
    if not certs and not skis:
        raise MalformedTrustedList(f"a service of {provider!r} has no digital identity")
    entries = [(_time(_text(info, "tsl:StatusStartingTime")), _text(info, "tsl:ServiceStatus"))]
    for hist in svc.iterfind("tsl:ServiceHistory/tsl:ServiceHistoryInstance", _NS):
        entries.append(
            (_time(_text(hist, "tsl:StatusStartingTime")), _text(hist, "tsl:ServiceStatus"))
        )
    entries.sort(key=lambda e: e[0])
    history = tuple(
        StatusPeriod(status, start, entries[i + 1][0] if i + 1 < len(entries) else None)
        for i, (start, status) in enumerate(entries)
    )
    additional = frozenset(
        uri.text.strip()
        for uri in info.iterfind(
            "tsl:ServiceInformationExtensions/tsl:Extension/"
            "tsl:AdditionalServiceInformation/tsl:URI",
            _NS,
        )
        if uri.text
    )
    return TrustService(
        territory=territory,
        provider=provider,
        name=_name(_one(info, "tsl:ServiceName")),
        service_type=_text(info, "tsl:ServiceTypeIdentifier"),
        certificates=tuple(certs),
        subject_key_ids=frozenset(skis),
        history=history,
        additional_info=additional,
    )


def _digital_identity(info: etree._Element) -> tuple[list[x509.Certificate], set[bytes]]:
    certs: list[x509.Certificate] = []
    skis: set[bytes] = set()
    for digital_id in info.iterfind("tsl:ServiceDigitalIdentity/tsl:DigitalId", _NS):
        pem = digital_id.find("tsl:X509Certificate", _NS)
        if pem is not None and pem.text:
            try:
                certs.append(x509.Certificate.load(base64.b64decode(pem.text)))
            except ValueError as exc:
                raise MalformedTrustedList(f"a service certificate is not DER: {exc}") from exc
        ski = digital_id.find("tsl:X509SKI", _NS)
        if ski is not None and ski.text:
            skis.add(base64.b64decode(ski.text))
    return certs, skis


def _one(parent: etree._Element, path: str) -> etree._Element:
    found = parent.find(path, _NS)
    if found is None:
        raise MalformedTrustedList(f"missing {path.replace('tsl:', '')} in trusted list")
    return found


def _text(parent: etree._Element, path: str) -> str:
    text = _one(parent, path).text
    if not text or not text.strip():
        raise MalformedTrustedList(f"empty {path.replace('tsl:', '')} in trusted list")
    return text.strip()


def _name(parent: etree._Element) -> str:
    names = parent.findall("tsl:Name", _NS)
    english = [n for n in names if n.get("{http://www.w3.org/XML/1998/namespace}lang") == "en"]
    chosen = (english or names)
    if not chosen or not chosen[0].text:
        raise MalformedTrustedList("a name in the trusted list has no Name element")
    return chosen[0].text.strip()


def _time(text: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError as exc:
        raise MalformedTrustedList(f"{text!r} is not an xsd:dateTime") from exc
    if moment.utcoffset() is None:
        raise MalformedTrustedList(f"{text!r} has no time zone")
    return moment


def certificate_fingerprint(cert: x509.Certificate) -> str:
    return hashlib.sha256(cert.dump()).hexdigest()
