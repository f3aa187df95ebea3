"""The one question training and HPC code asks before offering data to a job: may this
patient's data be used for this purpose by this grantee, now?

It reads the registry at the moment of the call (no cache), so a withdrawal is in force for
the very next job. Precedence: a decision for this grantee over one for any grantee (`*`);
among those, the most recent in force; otherwise the site default.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import TypeVar

from incisive_node.consent.model import ANY_GRANTEE, PERMIT, ConsentRecord
from incisive_node.consent.registry import ConsentRegistry

T = TypeVar("T")


def decision(registry: ConsentRegistry, patient: str, purpose: str, grantee: str,
             at: str | None = None) -> tuple[str, ConsentRecord | None]:
    moment = at or datetime.now(UTC).isoformat(timespec="milliseconds")
    records = [r for r in registry.records(patient) if r.purpose == purpose and r.in_force(moment)]
    for wanted in (grantee, ANY_GRANTEE):
        matching = [r for r in records if r.grantee == wanted]
        if matching:
            latest = max(matching, key=lambda r: r.recorded_at)
            return latest.decision, latest
    return registry.policy.decision(purpose), None


def permits(registry: ConsentRegistry, patient: str, purpose: str, grantee: str,
            at: str | None = None) -> bool:
    return decision(registry, patient, purpose, grantee, at)[0] == PERMIT


def filter_permitted(registry: ConsentRegistry, items: Iterable[T], purpose: str, grantee: str,
                     patient_of: Callable[[T], str]) -> list[T]:
    """The items (instances, series, rows...) whose patient permits this use right now."""
    cache: dict[str, bool] = {}  # one decision per patient within this one call
    kept = []
    for item in items:
        patient = patient_of(item)
        if patient not in cache:
            cache[patient] = permits(registry, patient, purpose, grantee)
        if cache[patient]:
            kept.append(item)
    return kept


def offerable_series(registry: ConsentRegistry, purpose: str, grantee: str) -> list[str]:
    """Series UIDs whose patient permits this use now (what a job may be offered)."""
    rows = registry.index.read(
        "SELECT se.series_uid, st.patient_pseudonym FROM series se"
        " JOIN studies st ON st.study_uid = se.study_uid ORDER BY se.series_uid")
    return [uid for uid, _ in filter_permitted(registry, rows, purpose, grantee, lambda r: r[1])]
