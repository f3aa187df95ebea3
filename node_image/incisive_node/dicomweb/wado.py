"""WADO-RS (PS3.18 §10.4): retrieve de-identified instances (multipart/related of
application/dicom, in the transfer syntax they were stored in) and their metadata (DICOM
JSON without bulk data)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from pydicom.dataset import Dataset

from incisive_node.dicomweb.catalog import Entry

_BULK_VRS = {"OB", "OD", "OF", "OL", "OV", "OW", "UN"}


def multipart(entries: Sequence[Entry]) -> tuple[bytes, str]:
    boundary = uuid.uuid4().hex
    parts = []
    for entry in entries:
        syntax = str(entry.header.file_meta.get("TransferSyntaxUID", ""))
        head = f"--{boundary}\r\nContent-Type: application/dicom; transfer-syntax={syntax}\r\n\r\n"
        parts.append(head.encode() + entry.data() + b"\r\n")
    body = b"".join(parts) + f"--{boundary}--\r\n".encode()
    return body, f'multipart/related; type="application/dicom"; boundary={boundary}'


def metadata(entries: Sequence[Entry]) -> list[dict[str, Any]]:
    return [_without_bulk(entry.header).to_json_dict() for entry in entries]


def _without_bulk(header: Dataset) -> Dataset:
    copy = Dataset()
    for element in header:
        if element.VR not in _BULK_VRS:
            copy.add(element)
    return copy
