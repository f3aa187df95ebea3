"""Door 1: a DICOM C-STORE SCP (pynetdicom) for the hospital PACS and modalities.

Only calling AE titles on the allow-list may associate (pynetdicom rejects the rest during
association negotiation); the called AE title must be ours. Verification (C-ECHO) and every
storage SOP class are accepted, in every transfer syntax pynetdicom knows: de-identification
works on headers, so compressed pixel data need not be decoded.

Status returned to the peer for each C-STORE:
  0x0000 stored; 0xC000 quarantined (ErrorComment holds the reason code, never data);
  0xA700 out of resources: neither stored nor quarantined, the peer should retry.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

from pydicom.dataset import Dataset
from pynetdicom import AE, ALL_TRANSFER_SYNTAXES, AllStoragePresentationContexts, evt
from pynetdicom.sop_class import Verification  # type: ignore[attr-defined]

from incisive_node.ingest.loopback import require_loopback
from incisive_node.ingest.pipeline import Pipeline, StoreUnavailable

log = logging.getLogger(__name__)

DOOR = "scp"
SUCCESS = 0x0000
OUT_OF_RESOURCES = 0xA700
CANNOT_UNDERSTAND = 0xC000

# pynetdicom's INFO and DEBUG records quote request attributes (the original SOP Instance
# UID among them); only its warnings and errors may reach the appliance's logs.
logging.getLogger("pynetdicom").setLevel(logging.WARNING)


class StorageScp:
    def __init__(
        self,
        pipeline: Pipeline,
        *,
        allowed_calling_aets: Iterable[str],
        ae_title: str = "INCISIVE",
        host: str = "127.0.0.1",
        port: int = 11112,
        allow_external: bool = False,
    ) -> None:
        allowed = [aet.strip() for aet in allowed_calling_aets if aet.strip()]
        if not allowed:
            # pynetdicom reads an empty list as "anyone"; a hospital appliance must not.
            raise ValueError("the SCP needs at least one allowed calling AE title")
        self.pipeline = pipeline
        self.host = require_loopback(host, allow_external)
        self.port = port
        self.ae = AE(ae_title=ae_title)
        self.ae.require_called_aet = True
        self.ae.require_calling_aet = allowed
        for context in AllStoragePresentationContexts:
            self.ae.add_supported_context(context.abstract_syntax, ALL_TRANSFER_SYNTAXES)
        self.ae.add_supported_context(Verification, ALL_TRANSFER_SYNTAXES)
        self._server: Any = None

    def start(self) -> None:
        handlers = [(evt.EVT_C_STORE, self._on_store), (evt.EVT_C_ECHO, _on_echo)]
        self._server = self.ae.start_server(
            (self.host, self.port), block=False, evt_handlers=handlers
        )
        self.port = self._server.server_address[1]
        log.info("C-STORE SCP %s listening on %s:%d", self.ae.ae_title, self.host, self.port)

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server = None

    def _on_store(self, event: Any) -> Any:
        try:
            data = event.encoded_dataset(include_meta=True)
        except Exception as failure:
            # Nothing usable came in (pynetdicom could not hand us the bytes): nothing to keep.
            log.error("C-STORE request unreadable (%s)", type(failure).__name__)
            return _status(CANNOT_UNDERSTAND, "unreadable-request")
        try:
            outcome = self.pipeline.ingest(data, DOOR)
        except StoreUnavailable:
            return _status(OUT_OF_RESOURCES, "store-unavailable")
        if outcome.stored:
            return SUCCESS
        return _status(CANNOT_UNDERSTAND, f"quarantined: {outcome.reason}")


def _on_echo(event: Any) -> int:
    return SUCCESS


def _status(code: int, comment: str) -> Dataset:
    status = Dataset()
    status.Status = code
    status.ErrorComment = comment[:64]  # LO
    return status
