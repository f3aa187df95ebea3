"""Fixed studies, written out by hand, for the golden FHIR files: nothing here depends on
the clock or on random UIDs, so the resources built from them never change."""

from __future__ import annotations

from incisive_node.consent import ConsentRecord
from incisive_node.curation import Finding, SeriesQuality
from incisive_node.fhir.source import InstanceView, SeriesView, StudyView

CT_IMAGE = "1.2.840.10008.5.1.4.1.1.2"
MG_IMAGE = "1.2.840.10008.5.1.4.1.1.1.2"

STUDY = StudyView(
    uid="2.25.100000000000000000000000000000000001",
    patient="PSEUDO0000000000000A",
    date="2016-04-17",
    first_stored="2025-01-02T03:04:05.678+00:00",
    deid_methods=(("DCM", "113100", "Basic Application Confidentiality Profile"),
                  ("DCM", "113107", "Retain Longitudinal Temporal Information Modified Dates"
                   " Option")),
    series=(
        SeriesView("2.25.200000000000000000000000000000000001", 1, "CT", "chest", None,
                   (InstanceView("2.25.300000000000000000000000000000000001", CT_IMAGE, 1),
                    InstanceView("2.25.300000000000000000000000000000000002", CT_IMAGE, 2))),
        SeriesView("2.25.200000000000000000000000000000000002", 2, "MG", "BREAST", "L",
                   (InstanceView("2.25.300000000000000000000000000000000003", MG_IMAGE, 1),)),
        SeriesView("2.25.200000000000000000000000000000000003", 3, "CT", "TUMMY", None,
                   (InstanceView("2.25.300000000000000000000000000000000004", CT_IMAGE, None),)),
    ),
)

QUALITIES = (
    SeriesQuality("2.25.200000000000000000000000000000000001", "pass", 1.0, 2,
                  "2025-01-02T03:05:00.000+00:00", ()),
    SeriesQuality("2.25.200000000000000000000000000000000002", "flag", 0.85, 1,
                  "2025-01-02T03:05:00.000+00:00",
                  (Finding("constant-image", "every pixel has one value"),)),
)

CONSENT = ConsentRecord(
    "consent-0001", "PSEUDO0000000000000A", "central-hpc", "hpc-consortium", "permit",
    "2025-01-01", "2027-01-01", "active", "2025-01-02T03:06:00.000+00:00", "staff",
)
