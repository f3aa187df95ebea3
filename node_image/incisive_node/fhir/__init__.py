"""HL7 FHIR R4 for the de-identified store: ImagingStudy (DICOM mapping), pseudonymous
Patient, Consent, curation Observations/DiagnosticReports, Provenance; a read-only REST API
and a Bundle export. See docs/fhir.md."""
