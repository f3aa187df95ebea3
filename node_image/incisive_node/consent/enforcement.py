"""The one question training and HPC code asks before offering data to a job: may this
patient's data be used for this purpose by this grantee, now?

It reads the registry at the moment of the call (no cache), so a withdrawal is in force for
the very next job. Precedence: a decision for this grantee over one for any grantee (`*`);
among those, the most recent in force; otherwise the site default.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import TypeVar

from incisive_node.consent.model import ANY_GRANTEE, PERMIT, ConsentRecord, check_purpose
from incisive_node.consent.registry import ConsentRegistry

T = TypeVar("T")


def _moment(at: str | None) -> str:
    return at or datetime.now(UTC).isoformat(timespec="milliseconds")


def _decided(records: Iterable[ConsentRecord], purpose: str, grantee: str,
             moment: str) -> ConsentRecord | None:
    """The record that decides, by the precedence above; None: the site default applies."""
    in_force = [r for r in records if r.purpose == purpose and r.in_force(moment)]
    for wanted in (grantee, ANY_GRANTEE):
        matching = [r for r in in_force if r.grantee == wanted]
        if matching:
            return max(matching, key=lambda r: r.recorded_at)
    return None


def decision(registry: ConsentRegistry, patient: str, purpose: str, grantee: str,
             at: str | None = None) -> tuple[str, ConsentRecord | None]:
    record = _decided(registry.records(patient), purpose, grantee, _moment(at))
    if record is not None:
        return record.decision, record
    return registry.policy.decision(purpose), None


def permits(registry: ConsentRegistry, patient: str, purpose: str, grantee: str,
            at: str | None = None) -> bool:
    return decision(registry, patient, purpose, grantee, at)[0] == PERMIT


def permitting(registry: ConsentRegistry, purpose: str, grantee: str,
               at: str | None = None) -> Callable[[str], bool]:
    """`permits` for many patients at once: one read of the purpose's decisions, now, and a
    predicate over pseudonyms. Keep it for one request or one pass, never longer: it is a
    snapshot, and a withdrawal after it is read is not in it."""
    check_purpose(purpose)
    moment = _moment(at)
    by_patient: dict[str, list[ConsentRecord]] = defaultdict(list)
    for record in registry.active_for_purpose(purpose):
        by_patient[record.patient].append(record)
    default = registry.policy.decision(purpose) == PERMIT
    verdicts = {}
    for patient, records in by_patient.items():
        record = _decided(records, purpose, grantee, moment)
        verdicts[patient] = default if record is None else record.decision == PERMIT
    return lambda patient: verdicts.get(patient, default)


def filter_permitted(registry: ConsentRegistry, items: Iterable[T], purpose: str, grantee: str,
                     patient_of: Callable[[T], str]) -> list[T]:
    """The items (instances, series, rows...) whose patient permits this use right now."""
    allowed = permitting(registry, purpose, grantee)
    return [item for item in items if allowed(patient_of(item))]


def offerable_series(registry: ConsentRegistry, purpose: str, grantee: str) -> list[str]:
    """Series UIDs whose patient permits this use now (what a job may be offered)."""
    rows = registry.index.read(
        "SELECT se.series_uid, st.patient_pseudonym FROM series se"
        " JOIN studies st ON st.study_uid = se.study_uid ORDER BY se.series_uid")
    return [uid for uid, _ in filter_permitted(registry, rows, purpose, grantee, lambda r: r[1])]
