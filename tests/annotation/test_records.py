"""Proposals and labels on both index back ends (SQLite and a real PostgreSQL on
127.60.2.1): superseding, the queue, and reviews that race."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from incisive_node.annotation.records import (
    ACCEPTED,
    PENDING,
    REJECTED,
    SUPERSEDED,
    AlreadyReviewed,
    AnnotationRecords,
    InstanceLabel,
    Proposal,
    now,
    proposal_id,
)
from incisive_node.store import Store


def _proposal(series: str, model: str, uncertainty: float) -> Proposal:
    return Proposal(
        proposal_id=proposal_id("classification", series, model), task="classification",
        series_uid=series, study_uid="1.2.3", patient_pseudonym="P1", model_sha256=model,
        instances=2, label=1, confidence=0.9, uncertainty=uncertainty, seg_sha256=None,
        seg_uid=None, lesion_pixels=None, pixel_area_mm2=None, status=PENDING,
        created_at=now(),
    )


def test_records_on_both_back_ends(tmp_path: Path, index_target: str | Path) -> None:
    with Store(tmp_path / "store", index_target) as store:
        records = AnnotationRecords(store.index)
        AnnotationRecords(store.index)  # creating the tables twice is harmless
        old = _proposal("1.2.3.1", "a" * 64, 0.2)
        assert records.add(old) and not records.add(old)
        other = _proposal("1.2.3.2", "a" * 64, 0.6)
        records.add(other)
        assert [p.proposal_id for p in records.queue()] == [other.proposal_id,
                                                            old.proposal_id]
        # A newer model's proposal for the same series supersedes the pending one.
        newer = _proposal("1.2.3.1", "b" * 64, 0.9)
        records.add(newer)
        assert records.get(old.proposal_id).status == SUPERSEDED
        assert [p.proposal_id for p in records.queue()] == [newer.proposal_id,
                                                            other.proposal_id]

        # Eight reviewers race on one proposal: exactly one wins, its labels alone exist.
        labels = [InstanceLabel(f"1.2.3.1.{i}", "1.2.3.1", 1, None) for i in range(2)]
        outcomes: list[str] = []

        def review(status: str) -> None:
            try:
                made = labels if status == ACCEPTED else []
                records.review(newer, status, final_label=1, labels=made)
                outcomes.append(status)
            except AlreadyReviewed:
                outcomes.append("lost")

        threads = [threading.Thread(target=review, args=(ACCEPTED if i % 2 else REJECTED,))
                   for i in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        winners = [o for o in outcomes if o != "lost"]
        assert len(winners) == 1 and len(outcomes) == 8
        settled = records.get(newer.proposal_id)
        assert settled is not None and settled.status == winners[0]
        stored = records.labels("classification")
        if winners[0] == ACCEPTED:
            assert set(stored) == {"1.2.3.1.0", "1.2.3.1.1"}
        else:
            assert stored == {}
        with pytest.raises(AlreadyReviewed, match="not pending"):
            records.review(newer, REJECTED)
        with pytest.raises(ValueError, match="accepts, corrects or rejects"):
            records.review(other, PENDING)
        with pytest.raises(ValueError, match="no training labels"):
            records.review(other, REJECTED, labels=labels)
        counts = records.counts()
        assert counts[("classification", PENDING)] == (1, 2)
        assert counts[("classification", SUPERSEDED)] == (1, 2)
