"""QIDO-RS and WADO-RS routes on the appliance's HTTP server, at the same root as STOW-RS
(so one DICOMweb base URL serves store, search and retrieve):

    GET /studies | /series | /instances                              QIDO-RS
    GET /studies/{s}/series | /studies/{s}/series/{se}/instances     QIDO-RS
    GET /studies/{s}[/series/{se}[/instances/{i}]]                   WADO-RS instances
    GET .../metadata                                                 WADO-RS metadata

Only de-identified objects are served; UIDs in paths are the pseudonymous ones.

Every read names its use in the `Incisive-Purpose` header (federated-training, central-hpc or
project:<slug>) and may name its grantee in `Incisive-Grantee` (default `*`). A read without
a purpose is refused with 400. Each request sees only instances whose patient permits that
use at that moment and that curation did not fail (consent.release), so a withdrawal takes
effect on the very next request; a withheld study answers 404, like one that never existed.
A header rather than a query parameter: QIDO-RS query parameters are DICOM matching keys,
and one header serves search and retrieve alike (dicomweb-client: `headers=`)."""

from __future__ import annotations

import json
import re

from incisive_node.consent import ANY_GRANTEE, ConsentRegistry, InvalidConsent
from incisive_node.consent.model import check_grantee
from incisive_node.dicomweb import catalog, qido, wado
from incisive_node.ingest.routes import Reply, Request
from incisive_node.store import Store

DICOM_JSON = "application/dicom+json"
PURPOSE_HEADER = "Incisive-Purpose"
GRANTEE_HEADER = "Incisive-Grantee"
_NO_PURPOSE = (
    f"DICOMweb reads must name their use: send the header {PURPOSE_HEADER}: "
    "federated-training, central-hpc or project:<slug> (and optionally "
    f"{GRANTEE_HEADER}: <organisation or project>)\n"
).encode()
_UID = r"[0-9.]{1,64}"
_PATH = re.compile(
    rf"/(?:studies(?:/(?P<study>{_UID})(?:/series(?:/(?P<series>{_UID})"
    rf"(?:/instances(?:/(?P<instance>{_UID}))?)?)?)?)?|(?P<top>series|instances))"
    r"(?P<metadata>/metadata)?/?"
)


class DicomWebApi:
    name = "dicomweb"

    def __init__(self, store: Store, registry: ConsentRegistry | None = None) -> None:
        self.store = store
        self.registry = registry or ConsentRegistry(store.index)

    def handle(self, request: Request) -> Reply | None:
        if request.method != "GET":
            return None
        match = _PATH.fullmatch(request.path)
        if match is None:
            return None
        purpose = request.headers.get(PURPOSE_HEADER.lower(), "").strip()
        if not purpose:
            return Reply(400, _NO_PURPOSE, "text/plain")
        grantee = request.headers.get(GRANTEE_HEADER.lower(), "").strip() or ANY_GRANTEE
        study, series, instance = match["study"], match["series"], match["instance"]
        path = request.path.rstrip("/")
        try:
            check_grantee(grantee)
            entries = catalog.entries(self.store, self.registry, purpose, grantee,
                                      study, series, instance)
        except InvalidConsent as refused:
            return Reply(400, f"{refused}\n".encode(), "text/plain")
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
