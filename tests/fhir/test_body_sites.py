"""The body-part table: generated from PS3.16 Annex L, case and spacing variants map to the
same code, unknown terms keep their text and get no code."""

from __future__ import annotations

import pytest

from incisive_node.fhir import codes, terminology


@pytest.mark.parametrize("term", ["CHEST", "chest", "Chest", " chest ", "cHeSt"])
def test_case_variants_map_to_one_code(term: str) -> None:
    site = codes.body_site(term)
    assert site is not None
    assert (site["system"], site["code"], site["display"]) == (codes.SNOMED, "816094009", "Chest")
    assert site["extension"][0]["valueString"] == term.strip()


@pytest.mark.parametrize(("term", "code"), [
    ("ABDOMENPELVIS", "818982008"), ("abdomen pelvis", "818982008"), ("l_spine", "122496007"),
    ("KNEE", "72696002"), ("Breast", "76752008"), ("HEADNECK", "774007"),
])
def test_known_terms(term: str, code: str) -> None:
    assert codes.body_site_code(term) == code


@pytest.mark.parametrize("term", ["TUMMY", "CHEST2", "SNOMED:51185008", "Brust", "ÉPAULE"])
def test_unknown_terms_are_text_only(term: str) -> None:
    site = codes.body_site(term)
    assert site is not None
    assert "code" not in site and "system" not in site
    assert site["display"] == term


@pytest.mark.parametrize("term", [None, "", "   "])
def test_no_term_no_body_site(term: str | None) -> None:
    assert codes.body_site(term) is None


def test_the_table_names_its_source_and_is_snomed_only() -> None:
    assert "highdicom==0.28.2" in terminology.SOURCE and "sha256:" in terminology.SOURCE
    assert len(terminology.BODY_PARTS) > 300
    assert all(code.isdigit() for code, *_ in terminology.BODY_PARTS.values())
    assert all(term == codes.normalise_body_part(term) for term in terminology.BODY_PARTS)


def test_modality_codes_and_laterality() -> None:
    assert codes.modality("ct") == {"system": codes.DCM, "code": "CT",
                                    "display": "Computed Tomography"}
    assert codes.modality("XYZ") == {"display": "XYZ"}
    assert codes.laterality("R")["code"] == "419465000"
    assert codes.laterality("U") is None
