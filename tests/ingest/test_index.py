"""The index, against SQLite and a real PostgreSQL alike."""

from __future__ import annotations

import threading
from pathlib import Path

from incisive_node.store import (
    DUPLICATE,
    NEW,
    REPLACED,
    IndexCounts,
    InstanceRecord,
    QuarantineRecord,
    open_index,
)


def _instance(n: int, *, series: int = 1, sha: str | None = None) -> InstanceRecord:
    return InstanceRecord(
        patient_pseudonym="PSEUDO-1",
        study_uid="2.25.100",
        series_uid=f"2.25.200{series}",
        sop_instance_uid=f"2.25.300{n}",
        sop_class_uid="1.2.840.10008.5.1.4.1.1.2",
        modality="CT",
        body_part="CHEST",
        sha256=sha or f"{n:064x}",
        size=1000 + n,
        door="folder",
    )


def test_new_duplicate_and_replaced_instances(index_target: str | Path) -> None:
    index = open_index(index_target)
    try:
        assert index.add_instance(_instance(1)) == NEW
        assert index.add_instance(_instance(1)) == DUPLICATE
        assert index.add_instance(_instance(1, sha="f" * 64)) == REPLACED
        assert index.add_instance(_instance(2, series=2)) == NEW
        assert index.counts() == IndexCounts(
            patients=1, studies=1, series=2, instances=2, quarantined=0
        )
        stored = {r.sop_instance_uid: r for r in index.instances()}
        assert stored["2.25.3001"].sha256 == "f" * 64
        assert stored["2.25.3002"].modality == "CT"
    finally:
        index.close()


def test_quarantine_entries_count_repeats(index_target: str | Path) -> None:
    index = open_index(index_target)
    try:
        entry = QuarantineRecord("a" * 64, 10, "truncated", "ends inside an element", "scp")
        index.add_quarantine(entry)
        index.add_quarantine(entry)
        index.add_quarantine(QuarantineRecord("b" * 64, 0, "not-dicom", "empty", "folder"))
        assert index.quarantined_by_reason() == {"not-dicom": 1, "truncated": 1}
        entries = dict((rec.sha256, seen) for rec, seen in index.quarantine_entries())
        assert entries == {"a" * 64: 2, "b" * 64: 1}
    finally:
        index.close()


def test_reopening_keeps_the_data(index_target: str | Path) -> None:
    first = open_index(index_target)
    first.add_instance(_instance(1))
    first.close()
    again = open_index(index_target)
    try:
        assert again.counts().instances == 1
    finally:
        again.close()


def test_concurrent_writers_share_one_index(index_target: str | Path) -> None:
    index = open_index(index_target)
    try:
        def write(start: int) -> None:
            for n in range(start, start + 25):
                index.add_instance(_instance(n, series=n % 3))
                index.add_instance(_instance(n, series=n % 3))

        threads = [threading.Thread(target=write, args=(k * 100,)) for k in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert index.counts().instances == 100
        assert index.counts().series == 3
    finally:
        index.close()
