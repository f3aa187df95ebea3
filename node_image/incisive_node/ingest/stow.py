"""Door 2: DICOMweb STOW-RS (PS3.18 §10.5), `POST /studies[/{study}]` with a
`multipart/related; type="application/dicom"` body. The response is the Store Instances
Response dataset in DICOM JSON: ReferencedSOPSequence for instances stored, FailedSOPSequence
(with a FailureReason) for those quarantined.

The UIDs in the response are the ones the sender sent in each part: they are what the sender
can match, and the response goes back only to the sender, who has them already. They are
read here, for that response alone, and never logged or stored.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Any

import pydicom

from incisive_node.ingest import multipart
from incisive_node.ingest.pipeline import Pipeline, StoreUnavailable

DOOR = "stow"
DICOM_JSON = "application/dicom+json"

# PS3.18 Store Instances failure reasons (the C-STORE statuses of PS3.4).
OUT_OF_RESOURCES = 0xA700
CANNOT_UNDERSTAND = 0xC000

# Reasons this door gives before a part reaches the de-identifier.
NOT_APPLICATION_DICOM = "unsupported-media-type"
STUDY_MISMATCH = "study-mismatch"


@dataclass(frozen=True)
class StowResponse:
    status: int  # HTTP status
    body: dict[str, Any] | None  # DICOM JSON, or None for a bare error status
    message: str = ""


def store_instances(
    pipeline: Pipeline, content_type: str, body: bytes, study_uid: str | None = None
) -> StowResponse:
    media = multipart.parse_media_type(content_type)
    if media.value != "multipart/related":
        return StowResponse(415, None, "expected multipart/related")
    part_type = media.params.get("type", "").lower()
    if part_type != "application/dicom":
        return StowResponse(415, None, 'expected multipart/related; type="application/dicom"')
    try:
        parts = multipart.split(body, media.params.get("boundary", ""))
    except multipart.MultipartError as bad:
        return StowResponse(400, None, f"malformed multipart body: {bad}")
    if not parts:
        return StowResponse(400, None, "no parts in the body")

    referenced: list[dict[str, Any]] = []
    failed: list[dict[str, Any]] = []
    for part in parts:
        sent_class, sent_instance, sent_study = _sent_uids(part.body)
        try:
            outcome = _ingest_part(pipeline, part, sent_study, study_uid)
        except StoreUnavailable:
            failed.append(_item(sent_class, sent_instance, OUT_OF_RESOURCES))
            continue
        if outcome.stored:
            referenced.append(_item(sent_class, sent_instance))
        else:
            failed.append(_item(sent_class, sent_instance, CANNOT_UNDERSTAND))

    dataset: dict[str, Any] = {}
    if referenced:
        dataset["00081199"] = {"vr": "SQ", "Value": referenced}
    if failed:
        dataset["00081198"] = {"vr": "SQ", "Value": failed}
    # 200 when everything was stored, 202 when some were, 409 when none (PS3.18 §10.5.3).
    status = 200 if not failed else 202 if referenced else 409
    return StowResponse(status, dataset)


def _ingest_part(
    pipeline: Pipeline, part: multipart.Part, sent_study: str | None, study_uid: str | None
) -> Any:
    # RFC 2387: a part without Content-Type has the type named by the `type` parameter.
    if part.content_type is not None and part.content_type.value != "application/dicom":
        return pipeline.quarantine(
            part.body, DOOR, NOT_APPLICATION_DICOM, "part is not application/dicom"
        )
    # An unreadable part has no study to compare; the de-identifier names what is wrong.
    if study_uid is not None and sent_study is not None and sent_study != study_uid:
        return pipeline.quarantine(
            part.body, DOOR, STUDY_MISMATCH, "instance is not in the study of the request URL"
        )
    return pipeline.ingest(part.body, DOOR)


def _sent_uids(data: bytes) -> tuple[str | None, str | None, str | None]:
    """SOP Class, SOP Instance and Study Instance UIDs as sent, or None where unreadable."""
    try:
        dataset = pydicom.dcmread(
            io.BytesIO(data),
            stop_before_pixels=True,
            specific_tags=["SOPClassUID", "SOPInstanceUID", "StudyInstanceUID"],
        )
        meta = getattr(dataset, "file_meta", None)
        sop_class = dataset.get("SOPClassUID") or (meta and meta.get("MediaStorageSOPClassUID"))
        sop_instance = dataset.get("SOPInstanceUID") or (
            meta and meta.get("MediaStorageSOPInstanceUID")
        )
        study = dataset.get("StudyInstanceUID")
        return _text(sop_class), _text(sop_instance), _text(study)
    except Exception:  # anything unreadable is the pipeline's to judge and quarantine
        return None, None, None


def _text(value: object) -> str | None:
    return str(value) if value else None


def _item(sop_class: str | None, sop_instance: str | None, failure: int | None = None) -> dict:
    item: dict[str, Any] = {}
    if sop_class:
        item["00081150"] = {"vr": "UI", "Value": [sop_class]}
    if sop_instance:
        item["00081155"] = {"vr": "UI", "Value": [sop_instance]}
    if failure is not None:
        item["00081197"] = {"vr": "US", "Value": [failure]}
    return item
