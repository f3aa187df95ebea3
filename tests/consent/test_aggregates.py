"""k-suppression: no count below k ever leaves the site, and suppressed cells cannot be
recovered by subtracting the published ones from the total."""

from __future__ import annotations

import random

import pytest

from incisive_node.aggregates import Cell, SeriesFacts, aggregate, store_facts, suppress
from incisive_node.consent import FEDERATED_TRAINING, PERMIT, ConsentRegistry, SitePolicy
from incisive_node.consent import permits as consent_permits
from incisive_node.store import Store
from tests.consent.helpers import patients

K = 5


def _random_facts(rng: random.Random) -> list[SeriesFacts]:
    people = [f"P{n}" for n in range(rng.randint(1, 40))]
    return [
        SeriesFacts(f"S{n}", rng.choice(people), rng.choice(["CT", "MR", "MG", "US", None]),
                    rng.choice(["CHEST", "chest", "KNEE", "BREAST", "HEAD", None]),
                    frozenset(rng.sample(["tumour", "normal", "artefact"], rng.randint(0, 2))))
        for n in range(rng.randint(0, 120))
    ]


def _published(value: object) -> list[int]:
    if isinstance(value, bool):
        return []
    if isinstance(value, int):
        return [value]
    if isinstance(value, dict):
        return [n for key, v in value.items() if key not in ("k",) for n in _published(v)]
    return []


def _check_partition(cells: dict[str, int], shown: dict[str, int | None],
                     total: int | None) -> None:
    hidden = [name for name, value in shown.items() if value is None]
    if total is None:
        return
    recovered = total - sum(v for v in shown.values() if v is not None)
    assert recovered == sum(cells[n] for n in hidden)
    assert recovered == 0 or (recovered >= K and len(hidden) >= 2)


@pytest.mark.parametrize("seed", range(300))
def test_no_count_below_k_is_ever_exposed(seed: int) -> None:
    rng = random.Random(seed)  # noqa: S311 -- reproducible test data, not secrets
    facts = _random_facts(rng)
    permit_set = {f.patient for f in facts if rng.random() < 0.8}
    result = aggregate(facts, {FEDERATED_TRAINING: lambda p: p in permit_set}, k=K)
    assert all(n >= K for n in _published(result))
    truth: dict[str, int] = {}
    for f in facts:
        truth[f.modality or "UNKNOWN"] = truth.get(f.modality or "UNKNOWN", 0) + 1
    _check_partition(truth, result["modality"], result["total"])
    for label, shown in result["label"].items():
        with_label = sum(1 for f in facts if label in f.labels)
        split = {"with": with_label, "without": len(facts) - with_label}
        _check_partition(split, shown, result["total"])
    parts: dict[str, int] = {}
    for f in facts:
        key = (f.body_part or "UNKNOWN").upper()
        parts[key] = parts.get(key, 0) + 1
    _check_partition(parts, result["body_part"], result["total"])
    people = {f.patient for f in facts}
    consent = result["consent"]["purposes"].get(FEDERATED_TRAINING, {})
    split = {"permit": len(people & permit_set), "deny": len(people - permit_set)}
    _check_partition(split, {d: consent.get(d, 0) for d in split if split[d]},
                     result["consent"]["total"])


def test_one_small_cell_takes_a_partner_with_it() -> None:
    shown, total = suppress({"CT": Cell(40, 20), "MR": Cell(30, 12), "PT": Cell(2, 2)},
                            Cell(72, 30), k=K)
    assert shown == {"CT": 40, "MR": None, "PT": None} and total == 72
    shown, total = suppress({"CT": Cell(10, 1)}, Cell(10, 1), k=K)
    assert shown == {"CT": None} and total is None  # many series, one patient


def test_aggregates_of_a_real_store(store: Store, deidentifier) -> None:
    people = patients(store, deidentifier, 6)
    registry = ConsentRegistry(store.index, SitePolicy({FEDERATED_TRAINING: PERMIT}))
    registry.withdraw(people[0], FEDERATED_TRAINING)
    result = aggregate(store_facts(store.index), {
        FEDERATED_TRAINING: lambda p: consent_permits(registry, p, FEDERATED_TRAINING, "hub")})
    assert result["total"] == 6 and result["modality"] == {"CT": 6}
    # 5 permit and 1 deny: the deny is small, so the permit goes too (else 6 - 5 = 1)
    assert result["consent"]["purposes"][FEDERATED_TRAINING] == {"permit": None, "deny": None}
