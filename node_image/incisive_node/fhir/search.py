"""ImagingStudy search: modality, bodysite, started (date with eq/ne/lt/le/gt/ge prefixes),
patient, _id, and `consent-purpose` (studies whose patient permits that purpose now, by
the consent package's own enforcement function, read once per request). Parameters combine
with AND; several values of one parameter, comma-separated, combine with OR (FHIR search
semantics)."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from incisive_node.consent import ANY_GRANTEE, ConsentRegistry, InvalidConsent, permitting
from incisive_node.fhir import codes

SUPPORTED = ("modality", "bodysite", "started", "patient", "_id", "consent-purpose",
             "consent-grantee")
_DATE = re.compile(r"(eq|ne|lt|le|gt|ge)?(\d{4}(-\d{2}(-\d{2})?)?)")


class BadSearch(ValueError):
    """A parameter we do not support or cannot parse; the message says which."""


class ConsentCheck:
    """`permits(patient, purpose, grantee)` for one request: the registry is read once per
    purpose and grantee the request names, at the moment of the request."""

    def __init__(self, registry: ConsentRegistry | None) -> None:
        self.registry = registry
        self._verdicts: dict[tuple[str, str], Callable[[str], bool]] = {}

    def permits(self, patient: str, purpose: str, grantee: str) -> bool:
        if self.registry is None:
            raise BadSearch("consent-purpose: no consent registry here")
        if (purpose, grantee) not in self._verdicts:
            try:
                self._verdicts[purpose, grantee] = permitting(self.registry, purpose, grantee)
            except InvalidConsent as refused:
                raise BadSearch(f"consent-purpose: {refused}") from None
        return self._verdicts[purpose, grantee](patient)


def check(query: dict[str, list[str]]) -> None:
    """Refuse an unsupported parameter even when there is nothing to match it against."""
    for name in query:
        if name not in SUPPORTED and not name.startswith("_"):
            raise BadSearch(f"unsupported search parameter: {name}")


def _tokens(value: str) -> list[tuple[str | None, str]]:
    out = []
    for part in value.split(","):
        system, bar, code = part.partition("|")
        out.append((system or None, code) if bar else (None, part))
    return out


def _codings_match(codings: list[dict[str, Any]], value: str,
                   normalise: Callable[[str], str]) -> bool:
    for system, code in _tokens(value):
        for coding in codings:
            if "code" in coding and normalise(coding["code"]) == normalise(code) and (
                    system is None or coding.get("system") == system):
                return True
    return False


def _date_matches(started: str | None, value: str) -> bool:
    match = _DATE.fullmatch(value)
    if match is None:
        raise BadSearch("started: expected [prefix]YYYY[-MM[-DD]]")
    if started is None:
        return False
    prefix, day = match[1] or "eq", match[2]
    have = started[: len(day)]
    return {"eq": have == day, "ne": have != day, "lt": have < day, "le": have <= day,
            "gt": have > day, "ge": have >= day}[prefix]


def matches(study: dict[str, Any], query: dict[str, list[str]],
            consent: ConsentRegistry | ConsentCheck | None) -> bool:
    if not isinstance(consent, ConsentCheck):
        consent = ConsentCheck(consent)
    check(query)
    for name, values in query.items():
        for value in values:
            if not _one(study, name, value, query, consent):
                return False
    return True


def _one(study: dict[str, Any], name: str, value: str, query: dict[str, list[str]],
         consent: ConsentCheck) -> bool:
    series = study.get("series", [])
    if name == "modality":
        return _codings_match([s["modality"] for s in series], value, str.upper)
    if name == "bodysite":
        sites = [s["bodySite"] for s in series if "bodySite" in s]
        # a body part term (CHEST, chest) is accepted as well as the SNOMED code
        terms = ",".join(codes.body_site_code(v) or v for v in value.split(","))
        return _codings_match(sites, terms, str.upper)
    if name == "started":
        return _date_matches(study.get("started"), value)
    if name == "patient":
        return study["subject"]["reference"] in {
            v if "/" in v else f"Patient/{v}" for v in value.split(",")}
    if name == "_id":
        return study["id"] in value.split(",")
    if name == "consent-purpose":
        grantee = (query.get("consent-grantee") or [ANY_GRANTEE])[0]
        patient = study["subject"]["reference"].split("/", 1)[1]
        return any(consent.permits(patient, p, grantee) for p in value.split(","))
    return True  # consent-grantee qualifies consent-purpose; _format, _count are ignored
