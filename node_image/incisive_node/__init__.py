"""The hospital's edge appliance: ingest, de-identification, curation, FL client, witness."""
