"""QIDO-RS and WADO-RS routes on the appliance's HTTP server, at the same root as STOW-RS
(so one DICOMweb base URL serves store, search and retrieve):

    GET /studies | /series | /instances                              QIDO-RS
    GET /studies/{s}/series | /studies/{s}/series/{se}/instances     QIDO-RS
    GET /studies/{s}[/series/{se}[/instances/{i}]]                   WADO-RS instances
    GET .../metadata                                                 WADO-RS metadata

Only de-identified objects are served; UIDs in paths are the pseudonymous ones."""

from __future__ import annotations

import json
import re

from incisive_node.dicomweb import catalog, qido, wado
from incisive_node.ingest.routes import Reply, Request
from incisive_node.store import Store

DICOM_JSON = "application/dicom+json"
_UID = r"[0-9.]{1,64}"
_PATH = re.compile(
    rf"/(?:studies(?:/(?P<study>{_UID})(?:/series(?:/(?P<series>{_UID})"
    rf"(?:/instances(?:/(?P<instance>{_UID}))?)?)?)?)?|(?P<top>series|instances))"
    r"(?P<metadata>/metadata)?/?"
)


class DicomWebApi:
    name = "dicomweb"

    def __init__(self, store: Store) -> None:
        self.store = store

    def handle(self, request: Request) -> Reply | None:
        if request.method != "GET":
            return None
        match = _PATH.fullmatch(request.path)
        if match is None:
            return None
        study, series, instance = match["study"], match["series"], match["instance"]
        path = request.path.rstrip("/")
        entries = catalog.entries(self.store, study, series, instance)
        if match["metadata"]:
            return self._json(wado.metadata(entries)) if entries else _missing()
        level = self._search_level(path, match)
        if level is not None:
            try:
                results = qido.search(entries, level, request.query)
            except (qido.BadQuery, ValueError) as bad:
                return Reply(400, (str(bad) + "\n").encode(), "text/plain")
            return self._json(results) if results else Reply(204, b"", DICOM_JSON)
        if not entries:
            return _missing()
        body, content_type = wado.multipart(entries)
        return Reply(200, body, content_type)

    @staticmethod
    def _search_level(path: str, match: re.Match[str]) -> str | None:
        if match["top"]:
            return "series" if match["top"] == "series" else "instance"
        if path == "/studies":
            return "study"
        if path.endswith("/series") and match["series"] is None:
            return "series"
        if path.endswith("/instances") and match["instance"] is None:
            return "instance"
        return None

    @staticmethod
    def _json(body: object) -> Reply:
        return Reply(200, json.dumps(body).encode(), DICOM_JSON)


def _missing() -> Reply:
    return Reply(404, b"not found\n", "text/plain")
