"""DICOMweb read access (QIDO-RS, WADO-RS) to the de-identified store. See docs/fhir.md."""
