"""Pre-annotation: every stored series this model has not proposed for gets a proposal.

Level-based, like the rest of the appliance: `annotate_pending` compares what the index
holds with what the proposals table holds for this model, and fills the difference, so it
is safe to run from a timer, after a restart, or twice. A series that does not qualify
(sources.py) is skipped and retried on the next pass at no cost beyond reading it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from incisive_node.annotation import seg
from incisive_node.annotation.inference import Prediction, predict
from incisive_node.annotation.model_ref import LoadedModel
from incisive_node.annotation.records import (
    PENDING,
    AnnotationRecords,
    Proposal,
    now,
    proposal_id,
)
from incisive_node.annotation.sources import SourceSeries, load_series, series_records
from incisive_node.store import Store

log = logging.getLogger(__name__)


@dataclass
class PassSummary:
    proposed: list[Proposal] = field(default_factory=list)
    skipped: int = 0  # series that do not qualify for this model


class Annotator:
    def __init__(self, store: Store, model: LoadedModel,
                 records: AnnotationRecords | None = None) -> None:
        self.store = store
        self.model = model
        self.records = records or AnnotationRecords(store.index)

    def annotate_pending(self) -> PassSummary:
        summary = PassSummary()
        for series_uid, records in sorted(series_records(self.store).items()):
            if self.records.has(self.model.task, series_uid, self.model.sha256):
                continue
            source = load_series(self.store, records)
            if source is None:
                summary.skipped += 1
                continue
            summary.proposed.append(self.propose(source))
        log.info("annotation pass: %d proposed, %d series skipped",
                 len(summary.proposed), summary.skipped)
        return summary

    def propose(self, source: SourceSeries) -> Proposal:
        prediction = predict(self.model, source)
        seg_sha = seg_uid = None
        if prediction.masks is not None:
            written = seg.proposal_seg(source, prediction.masks, self.model.sha256)
            seg_sha = self.store.objects.put(written.data).sha256
            seg_uid = written.sop_instance_uid
        proposal = _proposal(self.model, source, prediction, seg_sha, seg_uid)
        self.records.add(proposal)
        return self.records.get(proposal.proposal_id) or proposal


def _proposal(model: LoadedModel, source: SourceSeries, prediction: Prediction,
              seg_sha: str | None, seg_uid: str | None) -> Proposal:
    segmenting = prediction.masks is not None
    return Proposal(
        proposal_id=proposal_id(model.task, source.series_uid, model.sha256),
        task=model.task,
        series_uid=source.series_uid,
        study_uid=source.study_uid,
        patient_pseudonym=source.patient_pseudonym,
        model_sha256=model.sha256,
        instances=len(source.datasets),
        label=prediction.label,
        confidence=prediction.confidence,
        uncertainty=prediction.uncertainty,
        seg_sha256=seg_sha,
        seg_uid=seg_uid,
        lesion_pixels=prediction.lesion_pixels if segmenting else None,
        pixel_area_mm2=pixel_area_mm2(source),
        status=PENDING,
        created_at=now(),
    )


def pixel_area_mm2(source: SourceSeries) -> float | None:
    try:
        rows, cols = (float(v) for v in source.datasets[0].PixelSpacing)
    except (AttributeError, TypeError, ValueError):
        return None
    return rows * cols
