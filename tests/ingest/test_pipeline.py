"""The one pipeline: every input is stored or quarantined with a reason, and counted."""

from __future__ import annotations

import stat
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from incisive_node.ingest.pipeline import DEID_ERROR, Pipeline
from incisive_node.store import DUPLICATE, NEW, Store
from tests.ingest import samples


def _sample(pipeline: Pipeline, name: str, labels: dict[str, str]) -> float:
    value = pipeline.metrics.registry.get_sample_value(name, labels)
    return value or 0.0


def assert_no_canary(store: Store) -> None:
    """No canary in any stored object's bytes or path, nor anywhere in the index file."""
    canary = samples.CANARY.encode()
    for path in (store.root / "objects").rglob("*"):
        assert samples.CANARY not in str(path)
        if path.is_file():
            assert canary not in path.read_bytes(), path
    for path in store.root.glob("index.sqlite3*"):
        assert canary not in path.read_bytes()


def test_good_instances_are_deidentified_and_stored(pipeline: Pipeline, store: Store) -> None:
    study = samples.new_study()
    outcomes = [pipeline.ingest(samples.ct_file(study, n), "test") for n in (1, 2, 3)]
    assert [o.stored_as for o in outcomes] == [NEW, NEW, NEW]
    counts = store.index.counts()
    assert (counts.patients, counts.studies, counts.series, counts.instances) == (1, 1, 1, 3)
    records = list(store.index.instances())
    assert {r.study_uid for r in records} != {study.study_uid}
    assert all(r.sha256 in store.objects for r in records)
    assert {r.modality for r in records} == {"CT"}
    assert_no_canary(store)


def test_the_same_file_twice_is_stored_once(pipeline: Pipeline, store: Store) -> None:
    data = samples.ct_file(samples.new_study(), 1)
    first, again = pipeline.ingest(data, "test"), pipeline.ingest(data, "test")
    assert (first.stored_as, again.stored_as) == (NEW, DUPLICATE)
    assert first.sha256 == again.sha256
    assert store.index.counts().instances == 1
    assert len([p for p in (store.root / "objects").rglob("*") if p.is_file()]) == 1
    new = {"door": "test", "outcome": "new"}
    assert _sample(pipeline, "incisive_ingest_stored_total", new) == 1
    assert _sample(pipeline, "incisive_store_bytes_total", {}) == first.size


@pytest.mark.parametrize("kind", sorted(samples.bad_inputs()))
def test_bad_input_is_quarantined_with_a_reason(
    pipeline: Pipeline, store: Store, kind: str
) -> None:
    data = samples.bad_inputs()[kind]
    outcome = pipeline.ingest(data, "test")
    assert not outcome.stored
    assert outcome.reason
    assert outcome.sha256 in store.quarantine
    assert store.quarantine.get(outcome.sha256) == data
    kept = store.quarantine.path_for(outcome.sha256)
    assert stat.S_IMODE(kept.stat().st_mode) == 0o600
    assert store.index.quarantined_by_reason() == {outcome.reason: 1}
    assert store.index.counts().instances == 0
    labels = {"door": "test", "reason": outcome.reason}
    assert _sample(pipeline, "incisive_ingest_quarantined_total", labels) == 1


def test_inputs_equal_stored_plus_quarantined(pipeline: Pipeline, store: Store) -> None:
    study = samples.new_study()
    inputs = [samples.ct_file(study, n) for n in range(1, 6)]
    inputs += list(samples.bad_inputs().values())
    inputs.append(samples.ct_file(study, 9, burned_in=True))
    outcomes = [pipeline.ingest(data, "test") for data in inputs]
    totals = pipeline.totals.snapshot()
    assert totals["received"] == len(inputs)
    assert totals["stored"] + totals["quarantined"] == len(inputs)
    assert totals["stored"] == 5 and totals["failed"] == 0
    assert sum(not o.stored for o in outcomes) == len(inputs) - 5
    assert "burned-in-annotation" in totals["quarantined_by_reason"]
    received = _sample(pipeline, "incisive_ingest_received_total", {"door": "test"})
    assert received == len(inputs)
    assert_no_canary(store)


def test_an_engine_bug_quarantines_one_file_and_says_nothing_of_its_content(
    store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    class Exploding:
        def deidentify(self, source: bytes) -> object:
            raise RuntimeError(f"cannot parse {samples.PATIENT_NAME}")

    pipeline = Pipeline(store, Exploding())
    outcome = pipeline.ingest(samples.ct_file(samples.new_study(), 1), "test")
    assert (outcome.stored, outcome.reason, outcome.detail) == (False, DEID_ERROR, "RuntimeError")
    assert samples.CANARY not in caplog.text
    assert "RuntimeError" in caplog.text


def test_a_full_disk_is_quarantined_then_refused(
    pipeline: Pipeline, store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    from incisive_node.ingest.pipeline import StoreUnavailable

    def no_space(data: bytes) -> object:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(store.objects, "put", no_space)
    outcome = pipeline.ingest(samples.ct_file(samples.new_study(), 1), "test")
    assert outcome.reason == "store-error"
    monkeypatch.setattr(store.quarantine, "put", no_space)
    with pytest.raises(StoreUnavailable):
        pipeline.ingest(samples.ct_file(samples.new_study(), 2), "test")
    totals = pipeline.totals.snapshot()
    assert (totals["received"], totals["quarantined"], totals["failed"]) == (2, 1, 1)


def test_threads_share_one_pipeline(pipeline: Pipeline, store: Store) -> None:
    studies = [samples.new_study() for _ in range(4)]
    files = [samples.ct_file(s, n) for s in studies for n in range(1, 11)]
    files += [b"", b"junk"] * 5

    def send(data: bytes) -> bool:
        return pipeline.ingest(data, "test").stored

    with ThreadPoolExecutor(max_workers=8) as pool:
        stored = list(pool.map(send, files))
    assert sum(stored) == 40
    assert store.index.counts().instances == 40
    assert store.index.counts().studies == 4
    totals = pipeline.totals.snapshot()
    assert totals["received"] == len(files) == totals["stored"] + totals["quarantined"]


def test_index_holds_no_original_identifiers(pipeline: Pipeline, store: Store) -> None:
    study = samples.new_study()
    pipeline.ingest(samples.ct_file(study, 1), "test")
    index_bytes = b"".join(p.read_bytes() for p in store.root.glob("index.sqlite3*"))
    assert study.study_uid.encode() not in index_bytes
    assert study.series_uid.encode() not in index_bytes
    assert samples.PATIENT_ID.encode() not in index_bytes


def test_store_root_layout(store: Store, tmp_path: Path) -> None:
    assert store.objects.root == tmp_path / "store" / "objects"
    assert store.quarantine.root == tmp_path / "store" / "quarantine"


def test_the_pipeline_on_either_index(
    index_target: str | Path, deidentifier: object, tmp_path: Path
) -> None:
    with Store(tmp_path / "pg-store", index_target) as store:
        pipeline = Pipeline(store, deidentifier)  # type: ignore[arg-type]
        study = samples.new_study()
        for data in [samples.ct_file(study, n) for n in (1, 2)] + [b"", b"junk"]:
            pipeline.ingest(data, "test")
        counts = store.index.counts()
        assert (counts.instances, counts.quarantined) == (2, 2)
        assert not (tmp_path / "pg-store" / "index.sqlite3").exists() or isinstance(
            index_target, Path
        )
