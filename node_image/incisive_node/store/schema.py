"""The index's tables, in SQL that SQLite (>= 3.24) and PostgreSQL both accept.

Times are ISO-8601 UTC text so both back ends store and sort them alike. UIDs and
pseudonyms are the de-identified ones; `detail` is the de-identifier's PHI-free explanation.
"""

from __future__ import annotations

SCHEMA_VERSION = 1

TABLES = (
    """CREATE TABLE IF NOT EXISTS schema_version (
        version INTEGER NOT NULL
    )""",
    """CREATE TABLE IF NOT EXISTS patients (
        pseudonym TEXT PRIMARY KEY,
        first_seen TEXT NOT NULL
    )""",
    """CREATE TABLE IF NOT EXISTS studies (
        study_uid TEXT PRIMARY KEY,
        patient_pseudonym TEXT NOT NULL REFERENCES patients (pseudonym),
        first_seen TEXT NOT NULL
    )""",
    """CREATE TABLE IF NOT EXISTS series (
        series_uid TEXT PRIMARY KEY,
        study_uid TEXT NOT NULL REFERENCES studies (study_uid),
        modality TEXT,
        body_part TEXT,
        first_seen TEXT NOT NULL
    )""",
    """CREATE TABLE IF NOT EXISTS instances (
        sop_instance_uid TEXT PRIMARY KEY,
        series_uid TEXT NOT NULL REFERENCES series (series_uid),
        sop_class_uid TEXT NOT NULL,
        sha256 TEXT NOT NULL,
        size BIGINT NOT NULL,
        door TEXT NOT NULL,
        stored_at TEXT NOT NULL
    )""",
    "CREATE INDEX IF NOT EXISTS instances_by_series ON instances (series_uid)",
    "CREATE INDEX IF NOT EXISTS series_by_study ON series (study_uid)",
    "CREATE INDEX IF NOT EXISTS studies_by_patient ON studies (patient_pseudonym)",
    """CREATE TABLE IF NOT EXISTS quarantine (
        sha256 TEXT PRIMARY KEY,
        size BIGINT NOT NULL,
        reason TEXT NOT NULL,
        detail TEXT NOT NULL,
        door TEXT NOT NULL,
        first_seen TEXT NOT NULL,
        last_seen TEXT NOT NULL,
        times_seen INTEGER NOT NULL
    )""",
    "CREATE INDEX IF NOT EXISTS quarantine_by_reason ON quarantine (reason)",
    # Curation (incisive_node.curation, docs/curation.md). Added tables only, created on open,
    # so an older store gains them without a version bump. `facts` is JSON of de-identified
    # numbers (geometry, pixel statistics) that the series checks need without re-reading.
    """CREATE TABLE IF NOT EXISTS curation_instances (
        sop_instance_uid TEXT PRIMARY KEY,
        series_uid TEXT NOT NULL,
        facts TEXT NOT NULL,
        checked_at TEXT NOT NULL
    )""",
    "CREATE INDEX IF NOT EXISTS curation_instances_by_series ON curation_instances (series_uid)",
    """CREATE TABLE IF NOT EXISTS curation_series (
        series_uid TEXT PRIMARY KEY,
        status TEXT NOT NULL,
        score REAL NOT NULL,
        instances INTEGER NOT NULL,
        checked_at TEXT NOT NULL
    )""",
    """CREATE TABLE IF NOT EXISTS curation_findings (
        series_uid TEXT NOT NULL,
        subject TEXT NOT NULL,
        level TEXT NOT NULL,
        code TEXT NOT NULL,
        severity TEXT NOT NULL,
        detail TEXT NOT NULL,
        PRIMARY KEY (subject, code)
    )""",
    "CREATE INDEX IF NOT EXISTS curation_findings_by_series ON curation_findings (series_uid)",
    "CREATE INDEX IF NOT EXISTS curation_findings_by_code ON curation_findings (code)",
    # Consent (incisive_node.consent, docs/consent.md): one row per decision ever recorded,
    # superseded rows kept; the audit log is append-only and hash-chained.
    """CREATE TABLE IF NOT EXISTS consents (
        consent_id TEXT PRIMARY KEY,
        patient_pseudonym TEXT NOT NULL,
        purpose TEXT NOT NULL,
        grantee TEXT NOT NULL,
        decision TEXT NOT NULL,
        period_start TEXT,
        period_end TEXT,
        status TEXT NOT NULL,
        recorded_at TEXT NOT NULL,
        source TEXT NOT NULL
    )""",
    "CREATE INDEX IF NOT EXISTS consents_by_patient ON consents (patient_pseudonym, purpose)",
    """CREATE TABLE IF NOT EXISTS consent_audit (
        seq INTEGER PRIMARY KEY,
        at TEXT NOT NULL,
        event TEXT NOT NULL,
        entry_hash TEXT NOT NULL
    )""",
    """CREATE TABLE IF NOT EXISTS donor_tokens (
        token_hash TEXT PRIMARY KEY,
        patient_pseudonym TEXT NOT NULL,
        issued_at TEXT NOT NULL,
        revoked_at TEXT
    )""",
)

INSERT_PATIENT = "INSERT INTO patients VALUES (?, ?) ON CONFLICT (pseudonym) DO NOTHING"
INSERT_STUDY = "INSERT INTO studies VALUES (?, ?, ?) ON CONFLICT (study_uid) DO NOTHING"
INSERT_SERIES = "INSERT INTO series VALUES (?, ?, ?, ?, ?) ON CONFLICT (series_uid) DO NOTHING"
SELECT_INSTANCE_SHA = "SELECT sha256 FROM instances WHERE sop_instance_uid = ?"
INSERT_INSTANCE = (
    "INSERT INTO instances VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (sop_instance_uid) DO NOTHING"
)
REPLACE_INSTANCE = (
    "UPDATE instances SET series_uid = ?, sop_class_uid = ?, sha256 = ?, size = ?, door = ?,"
    " stored_at = ? WHERE sop_instance_uid = ?"
)
UPSERT_QUARANTINE = (
    "INSERT INTO quarantine VALUES (?, ?, ?, ?, ?, ?, ?, 1) ON CONFLICT (sha256) DO UPDATE SET"
    " reason = excluded.reason, detail = excluded.detail, door = excluded.door,"
    " last_seen = excluded.last_seen, times_seen = quarantine.times_seen + 1"
)
COUNTS = (
    "SELECT (SELECT COUNT(*) FROM patients), (SELECT COUNT(*) FROM studies),"
    " (SELECT COUNT(*) FROM series), (SELECT COUNT(*) FROM instances),"
    " (SELECT COUNT(*) FROM quarantine)"
)
