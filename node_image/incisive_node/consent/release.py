"""What may leave the site for one use, now: the stored instances whose patient's consent
permits the purpose for the grantee at this moment, less what curation refused.

Every door that hands data out asks this (DICOMweb reads, the pool sync), so consent and
curation are enforced in one place. Curation withholds a series it failed and an instance
whose pixel data does not decode (stored before curation existed, found on backfill); with
`require_curated`, also a series not yet checked (the pool takes whole, checked series only).
"""

from __future__ import annotations

from dataclasses import dataclass

from incisive_node.consent.enforcement import permitting
from incisive_node.consent.registry import ConsentRegistry
from incisive_node.curation.findings import INSTANCE
from incisive_node.curation.score import FAIL

# The instance finding that means nobody can use the bytes (the pipeline quarantines such
# instances on arrival; an older store may still hold some).
UNUSABLE = "pixel-data-undecodable"

_ROWS = (
    "SELECT st.patient_pseudonym, se.study_uid, i.series_uid, i.sop_instance_uid, i.sha256,"
    " cs.status, uf.subject FROM instances i"
    " JOIN series se ON se.series_uid = i.series_uid"
    " JOIN studies st ON st.study_uid = se.study_uid"
    " LEFT JOIN curation_series cs ON cs.series_uid = i.series_uid"
    " LEFT JOIN (SELECT DISTINCT subject FROM curation_findings WHERE level = ? AND code = ?)"
    " uf ON uf.subject = i.sop_instance_uid"
)


@dataclass(frozen=True)
class Releasable:
    patient: str  # the pseudonym
    study_uid: str
    series_uid: str
    sop_instance_uid: str
    sha256: str


def releasable(registry: ConsentRegistry, purpose: str, grantee: str, *,
               study: str | None = None, series: str | None = None,
               instance: str | None = None, require_curated: bool = False,
               at: str | None = None) -> list[Releasable]:
    """The instances (optionally of one study, series or instance) that may leave for this
    purpose and grantee now, ordered by study, series and SOP Instance UID. An unknown
    purpose raises InvalidConsent."""
    allowed = permitting(registry, purpose, grantee, at)
    sql, params = _ROWS, [INSTANCE, UNUSABLE]
    clauses = []
    for column, value in (("se.study_uid", study), ("i.series_uid", series),
                          ("i.sop_instance_uid", instance)):
        if value is not None:
            clauses.append(f"{column} = ?")
            params.append(value)
    if clauses:
        sql += " WHERE " + " AND ".join(clauses)
    rows = registry.index.read(
        sql + " ORDER BY se.study_uid, i.series_uid, i.sop_instance_uid", tuple(params))
    out = []
    for patient, study_uid, series_uid, sop_uid, sha, status, unusable in rows:
        if status == FAIL or unusable is not None:
            continue
        if require_curated and status is None:
            continue
        if allowed(patient):
            out.append(Releasable(patient, study_uid, series_uid, sop_uid, sha))
    return out
