"""Resources built from fixed studies equal the golden files under golden/, and validate
(fhir.resources R4B plus our own rules). INCISIVE_UPDATE_GOLDEN=1 rewrites the files; the
diff is then reviewed like code."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from incisive_node.fhir import imaging, quality, validate
from incisive_node.fhir.consent import consent
from tests.fhir import views

GOLDEN = Path(__file__).with_name("golden")


def _built() -> dict[str, dict[str, Any]]:
    observations = [quality.observation(views.STUDY, q) for q in views.QUALITIES]
    return {
        "patient.json": imaging.patient(views.STUDY.patient),
        "imaging-study.json": imaging.imaging_study(views.STUDY),
        "provenance.json": imaging.provenance(views.STUDY),
        "observation.json": observations[1],
        "diagnostic-report.json": quality.report(views.STUDY, observations, views.QUALITIES),
        "consent.json": consent(views.CONSENT),
    }


@pytest.mark.parametrize("name", sorted(_built()))
def test_resource_equals_its_golden_file(name: str) -> None:
    resource = _built()[name]
    path = GOLDEN / name
    if os.environ.get("INCISIVE_UPDATE_GOLDEN"):
        path.write_text(json.dumps(resource, indent=2, sort_keys=True) + "\n")
    assert resource == json.loads(path.read_text())
    assert validate.problems(resource) == []


def test_the_golden_study_maps_dicom_as_the_standard_says() -> None:
    study = json.loads((GOLDEN / "imaging-study.json").read_text())
    assert study["identifier"] == [
        {"system": "urn:dicom:uid", "value": f"urn:oid:{views.STUDY.uid}"}]
    chest, breast, unknown = study["series"]
    assert chest["uid"] == views.STUDY.series[0].uid  # raw, no urn:oid:
    assert chest["bodySite"]["code"] == "816094009"
    assert chest["bodySite"]["extension"][0]["valueString"] == "chest"
    assert breast["laterality"]["code"] == "419161000"
    assert unknown["bodySite"] == {
        "display": "TUMMY",
        "extension": [{"url": "http://hl7.org/fhir/StructureDefinition/originalText",
                       "valueString": "TUMMY"}]}
    assert [m["code"] for m in study["modality"]] == ["CT", "MG"]
    assert study["meta"]["security"][0]["code"] == "PSEUDED"


def test_our_own_checks_catch_what_the_models_do_not() -> None:
    study = imaging.imaging_study(views.STUDY)
    study["status"] = "done"
    study["series"][0]["uid"] = "1." + "2" * 70
    study["series"][1]["bodySite"] = {"system": "http://loinc.org", "code": "X"}
    found = validate.problems(study)
    assert any("status" in p for p in found)
    assert any("series.uid" in p for p in found)
    assert any("bodySite" in p for p in found)
