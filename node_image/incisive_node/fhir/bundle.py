"""Everything the appliance can say in FHIR about its store, as resources or one Bundle."""

from __future__ import annotations

from typing import Any

from incisive_node.consent import ConsentRegistry
from incisive_node.curation import CurationRecords
from incisive_node.fhir import imaging, quality, validate
from incisive_node.fhir.consent import consent
from incisive_node.fhir.source import StudyView, load_studies
from incisive_node.store import Store


def study_resources(study: StudyView, curation: CurationRecords) -> list[dict[str, Any]]:
    out = [imaging.imaging_study(study), imaging.provenance(study)]
    qualities = [q for q in (curation.series(s.uid) for s in study.series) if q is not None]
    if qualities:
        observations = [quality.observation(study, q) for q in qualities]
        out += observations
        out.append(quality.report(study, observations, qualities))
    return out


def all_resources(store: Store, registry: ConsentRegistry | None = None) -> list[dict[str, Any]]:
    curation = CurationRecords(store.index)
    studies = load_studies(store)
    patients = sorted({s.patient for s in studies})
    out = [imaging.patient(p) for p in patients]
    for study in studies:
        out += study_resources(study, curation)
    registry = registry or ConsentRegistry(store.index)
    out += [consent(r) for r in registry.all_active()]
    return out


def bundle(resources: list[dict[str, Any]], kind: str = "collection") -> dict[str, Any]:
    entries = [{"fullUrl": f"urn:incisive:{r['resourceType']}/{r['id']}", "resource": r}
               for r in resources]
    result: dict[str, Any] = {"resourceType": "Bundle", "type": kind, "entry": entries}
    if kind == "searchset":
        result["total"] = len(entries)
    return result


def export(store: Store, registry: ConsentRegistry | None = None) -> dict[str, Any]:
    """A validated collection Bundle of the whole store (raises InvalidResource if not)."""
    return validate.check(bundle(all_resources(store, registry)))
