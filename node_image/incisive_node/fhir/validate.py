"""Validation of what we emit: `fhir.resources` (its R4B models, which share R4's structure
for every resource we write) for structure and types, plus the rules it does not enforce:
required bindings and DICOM UID syntax and length."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from fhir.resources.R4B import get_fhir_model_class

from incisive_node.fhir import codes

_UID = re.compile(r"(0|[1-9][0-9]*)(\.(0|[1-9][0-9]*))*")

# Required bindings of the elements we fill (FHIR R4), by resource type and path.
REQUIRED_CODES: dict[str, dict[str, frozenset[str]]] = {
    "ImagingStudy": {
        "status": frozenset({"registered", "available", "cancelled", "entered-in-error",
                             "unknown"}),
    },
    "Consent": {"status": frozenset({"draft", "proposed", "active", "rejected", "inactive",
                                     "entered-in-error"})},
    "Observation": {"status": frozenset({"registered", "preliminary", "final", "amended",
                                         "corrected", "cancelled", "entered-in-error",
                                         "unknown"})},
    "DiagnosticReport": {"status": frozenset({"registered", "partial", "preliminary", "final",
                                              "amended", "corrected", "appended", "cancelled",
                                              "entered-in-error", "unknown"})},
    "Bundle": {"type": frozenset({"document", "message", "transaction", "transaction-response",
                                  "batch", "batch-response", "history", "searchset",
                                  "collection"})},
}
PROVISION_TYPES = frozenset({"deny", "permit"})
ENTITY_ROLES = frozenset({"derivation", "revision", "quotation", "source", "removal"})


class InvalidResource(ValueError):
    """A resource we built breaks FHIR R4 or our own rules; the message names the rule."""


def problems(resource: dict[str, Any]) -> list[str]:
    """Every rule the resource breaks (empty when valid)."""
    found: list[str] = []
    kind = resource.get("resourceType", "")
    try:
        get_fhir_model_class(kind).model_validate(resource)
    except Exception as error:  # pydantic's message names paths, never our data's meaning
        found.append(f"{kind}: structure: {str(error).splitlines()[0]}")
    for path, allowed in REQUIRED_CODES.get(kind, {}).items():
        if resource.get(path) not in allowed:
            found.append(f"{kind}.{path}: not in its required value set")
    if kind == "ImagingStudy":
        found.extend(_imaging_study(resource))
    elif kind == "Consent":
        if resource.get("provision", {}).get("type") not in PROVISION_TYPES:
            found.append("Consent.provision.type: not in its required value set")
    elif kind == "Provenance":
        for entity in resource.get("entity", []):
            if entity.get("role") not in ENTITY_ROLES:
                found.append("Provenance.entity.role: not in its required value set")
    elif kind == "Bundle":
        for entry in resource.get("entry", []):
            found.extend(problems(entry.get("resource", {})))
    return found


def check(resource: dict[str, Any]) -> dict[str, Any]:
    found = problems(resource)
    if found:
        raise InvalidResource("; ".join(found))
    return resource


def _imaging_study(study: dict[str, Any]) -> Iterator[str]:
    for identifier in study.get("identifier", []):
        if identifier.get("system") == codes.DICOM_UID:
            value = identifier.get("value", "")
            if not value.startswith("urn:oid:") or not _valid_uid(value[8:]):
                yield "ImagingStudy.identifier: not urn:oid: and a valid UID of <= 64 chars"
    for series in study.get("series", []):
        if not _valid_uid(series.get("uid", "")):
            yield "ImagingStudy.series.uid: not a valid UID of <= 64 chars"
        modality = series.get("modality", {})
        if "code" in modality and modality.get("system") != codes.DCM:
            yield "ImagingStudy.series.modality: a code outside DCM"
        site = series.get("bodySite")
        if site and "code" in site and site.get("system") != codes.SNOMED:
            yield "ImagingStudy.series.bodySite: a code outside SNOMED CT"
        for instance in series.get("instance", []):
            if not _valid_uid(instance.get("uid", "")):
                yield "ImagingStudy.series.instance.uid: not a valid UID of <= 64 chars"
            sop = instance.get("sopClass", {}).get("code", "")
            if not sop.startswith("urn:oid:") or not _valid_uid(sop[8:]):
                yield "ImagingStudy.series.instance.sopClass: not urn:oid: and a valid UID"


def _valid_uid(uid: str) -> bool:
    return 0 < len(uid) <= 64 and _UID.fullmatch(uid) is not None
