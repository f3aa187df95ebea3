"""The only numbers that leave the site: counts by modality, body part, label and consent
purpose, with small cells suppressed.

A cell is small when fewer than k series, or fewer than k distinct patients, stand behind
it (k defaults to 5): many series of one patient are still one patient. Suppression is
done per partition, a set of cells that adds up to a published total:

* modality, body part: each series falls in exactly one cell;
* each label and each consent purpose: has / has not (permit / deny), two cells.

Complementary suppression: once any cell of a partition is suppressed, further cells
(smallest first) are suppressed until what is hidden adds up to at least k, so the hidden
cells cannot be recovered, alone or together, by subtracting the published ones from the
total. A total below k is itself suppressed, with every cell of its partition.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

DEFAULT_K = 5
SUPPRESSED = None  # how a hidden count is published


@dataclass(frozen=True)
class Cell:
    series: int
    patients: int


def suppress(cells: Mapping[str, Cell], total: Cell, k: int = DEFAULT_K
             ) -> tuple[dict[str, int | None], int | None]:
    """Published counts (series) of one partition whose cells add up to `total`."""
    everything_hidden = ({name: SUPPRESSED for name in cells}, SUPPRESSED)
    if total.series < k or total.patients < k:
        return everything_hidden
    hidden = {n for n, c in cells.items() if 0 < c.series < k or 0 < c.patients < k}
    shown = sorted((c.series, n) for n, c in cells.items() if n not in hidden and c.series)

    def recoverable() -> bool:
        # one hidden cell is the total minus the rest; several must hide at least k together
        return bool(hidden) and (len(hidden) == 1 or sum(cells[n].series for n in hidden) < k)

    while recoverable() and shown:
        hidden.add(shown.pop(0)[1])
    if recoverable():
        return everything_hidden
    published = {n: (SUPPRESSED if n in hidden else c.series) for n, c in cells.items()}
    return {n: v for n, v in published.items() if v != 0}, total.series


@dataclass(frozen=True)
class SeriesFacts:
    series_uid: str
    patient: str
    modality: str | None
    body_part: str | None
    labels: frozenset[str] = frozenset()


def _partition(items: Iterable[SeriesFacts], key: Callable[[SeriesFacts], str]
               ) -> dict[str, Cell]:
    series: dict[str, int] = defaultdict(int)
    patients: dict[str, set[str]] = defaultdict(set)
    for item in items:
        name = key(item)
        series[name] += 1
        patients[name].add(item.patient)
    return {name: Cell(series[name], len(patients[name])) for name in series}


def aggregate(facts: list[SeriesFacts], purposes: Mapping[str, Callable[[str], bool]] | None
              = None, k: int = DEFAULT_K) -> dict[str, Any]:
    """`purposes` maps a purpose to `permits(patient)`; purpose cells count patients."""
    total = Cell(len(facts), len({f.patient for f in facts}))
    out: dict[str, Any] = {"k": k, "unit": "series"}
    out["modality"], out["total"] = suppress(
        _partition(facts, lambda f: f.modality or "UNKNOWN"), total, k)
    out["body_part"], _ = suppress(
        _partition(facts, lambda f: (f.body_part or "UNKNOWN").upper()), total, k)
    labels: dict[str, dict[str, int | None]] = {}
    for label in sorted({lab for f in facts for lab in f.labels}):
        cells, shown_total = suppress(
            _partition(facts, lambda f, lab=label: "with" if lab in f.labels else "without"),
            total, k)
        if shown_total is not None:
            labels[label] = cells
    out["label"] = labels
    patients = sorted({f.patient for f in facts})
    consent: dict[str, Any] = {}
    for purpose, permits in sorted((purposes or {}).items()):
        decided = [(p, "permit" if permits(p) else "deny") for p in patients]
        counts = {d: sum(1 for _, x in decided if x == d) for d in ("permit", "deny")}
        cells = {d: Cell(n, n) for d, n in counts.items() if n}
        consent[purpose], _ = suppress(cells, Cell(len(patients), len(patients)), k)
    people = Cell(len(patients), len(patients))
    out["consent"] = {"unit": "patients", "total": suppress({}, people, k)[1],
                      "purposes": consent}
    return out


def store_facts(index: Any, labels: Mapping[str, Iterable[str]] | None = None
                ) -> list[SeriesFacts]:
    """Series of the store, with labels from `labels` (series UID -> labels) where given."""
    rows = index.read(
        "SELECT se.series_uid, st.patient_pseudonym, se.modality, se.body_part FROM series se"
        " JOIN studies st ON st.study_uid = se.study_uid ORDER BY se.series_uid")
    labels = labels or {}
    return [SeriesFacts(uid, patient, modality, body, frozenset(labels.get(uid, ())))
            for uid, patient, modality, body in rows]
