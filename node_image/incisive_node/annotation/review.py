"""What a reviewer does with a proposal: accept it, correct it, or reject it.

Accepting or correcting makes training labels, one per instance of the series:

* classification: the series' label (the model's when accepted, the reviewer's when
  corrected) for each instance;
* segmentation: each instance's lesion mask, kept as our own SEG in the object store (the
  proposal's when accepted, a re-encoding of the reviewer's when corrected), and a label
  saying whether the slice has a lesion.

A correction identical to the proposal counts as an acceptance: nothing was changed, and
the "accepted unchanged" metric should say so. Rejecting makes no label. Only a pending
proposal can be reviewed; bad input (an unknown proposal, a label that is not a class
number, a SEG of some other series) is refused with the reason, and changes nothing.
"""

from __future__ import annotations

import numpy as np

from incisive_node.annotation import seg
from incisive_node.annotation.records import (
    ACCEPTED,
    CORRECTED,
    PENDING,
    REJECTED,
    AlreadyReviewed,
    AnnotationRecords,
    InstanceLabel,
    Proposal,
)
from incisive_node.annotation.sources import load_series, series_instances
from incisive_node.store import Store


class ReviewRefused(ValueError):
    status = 400


class ProposalNotFound(ReviewRefused):
    status = 404


class NotPending(ReviewRefused):
    status = 409


class Reviews:
    def __init__(self, store: Store, records: AnnotationRecords | None = None) -> None:
        self.store = store
        self.records = records or AnnotationRecords(store.index)

    def accept(self, proposal_id: str) -> Proposal:
        proposal = self._pending(proposal_id)
        if proposal.task == "segmentation":
            return self._settle_masks(proposal, ACCEPTED, proposal.seg_sha256)
        return self._settle_label(proposal, ACCEPTED, proposal.label)

    def reject(self, proposal_id: str) -> Proposal:
        return self._review(self._pending(proposal_id), REJECTED)

    def correct_label(self, proposal_id: str, label: object) -> Proposal:
        proposal = self._pending(proposal_id)
        if proposal.task != "classification":
            raise ReviewRefused("a segmentation proposal is corrected with a SEG, not a label")
        if isinstance(label, bool) or not isinstance(label, int) or label < 0:
            raise ReviewRefused("label must be a class number (an integer >= 0)")
        status = ACCEPTED if label == proposal.label else CORRECTED
        return self._settle_label(proposal, status, label)

    def correct_masks(self, proposal_id: str, seg_data: bytes) -> Proposal:
        proposal = self._pending(proposal_id)
        if proposal.task != "segmentation":
            raise ReviewRefused("a classification proposal is corrected with a label")
        source = load_series(self.store, series_instances(self.store, proposal.series_uid))
        if source is None:
            raise ReviewRefused("the proposal's series can no longer be read from the store")
        try:
            masks = seg.read_masks(seg_data, source)
        except seg.InvalidSeg as refused:
            raise ReviewRefused(str(refused)) from None
        if proposal.seg_sha256 is not None and np.array_equal(
            masks, self._proposal_masks(proposal, source.sop_instance_uids)
        ):
            return self._settle_masks(proposal, ACCEPTED, proposal.seg_sha256)
        written = seg.reviewed_seg(source, masks)
        stored = self.store.objects.put(written.data)
        return self._settle_masks(proposal, CORRECTED, stored.sha256)

    # -- the parts ----------------------------------------------------------------------------
    def _pending(self, proposal_id: str) -> Proposal:
        proposal = self.records.get(proposal_id)
        if proposal is None:
            raise ProposalNotFound("no such proposal")
        if proposal.status != PENDING:
            raise NotPending(f"proposal is {proposal.status}, not pending")
        return proposal

    def _proposal_masks(self, proposal: Proposal, order: list[str]) -> np.ndarray:
        by_instance = seg.masks_by_instance(self.store.objects.get(proposal.seg_sha256 or ""))
        return np.stack([by_instance[uid] for uid in order])

    def _settle_label(self, proposal: Proposal, status: str, label: int | None) -> Proposal:
        if label is None:
            raise ReviewRefused("the proposal has no label to accept")
        labels = [InstanceLabel(r.sop_instance_uid, proposal.series_uid, label, None)
                  for r in series_instances(self.store, proposal.series_uid)]
        return self._review(proposal, status, final_label=label, labels=labels)

    def _settle_masks(self, proposal: Proposal, status: str, seg_sha: str | None) -> Proposal:
        if seg_sha is None:
            raise ReviewRefused("the proposal has no masks to accept")
        by_instance = seg.masks_by_instance(self.store.objects.get(seg_sha))
        labels = [InstanceLabel(uid, proposal.series_uid, int(mask.any()), seg_sha)
                  for uid, mask in sorted(by_instance.items())]
        pixels = int(sum(int(mask.sum()) for mask in by_instance.values()))
        return self._review(proposal, status, final_seg_sha256=seg_sha,
                            final_lesion_pixels=pixels, labels=labels)

    def _review(self, proposal: Proposal, status: str, **settled: object) -> Proposal:
        try:
            return self.records.review(proposal, status, **settled)  # type: ignore[arg-type]
        except AlreadyReviewed as lost:
            raise NotPending(str(lost)) from None
