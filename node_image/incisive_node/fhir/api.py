"""The read-only FHIR REST API, mounted on the appliance's HTTP server under /fhir:

    GET /fhir/metadata
    GET /fhir/{type}            search (ImagingStudy: see search.py; others: _id, patient)
    GET /fhir/{type}/{id}       read

Resources are built from the store once and kept, each with its JSON, until the store's
generation moves (cache.py): a request costs one aggregate read of the index plus the
matching, instead of a rebuild of the whole store. Consent-purpose search still asks the
registry on every request. `cache=False` rebuilds on every request (the benchmark's
"before", and a way to rule the cache out)."""

from __future__ import annotations

import json
import re
from typing import Any

from incisive_node.consent import ConsentRegistry
from incisive_node.fhir import bundle, search
from incisive_node.fhir.cache import Cached, ResourceCache, Snapshot
from incisive_node.ingest.routes import Reply, Request
from incisive_node.store import Store

FHIR_JSON = "application/fhir+json"
TYPES = ("ImagingStudy", "Patient", "Consent", "Observation", "DiagnosticReport",
         "Provenance")
_PATH = re.compile(r"/fhir/(?P<type>[A-Za-z]+)(?:/(?P<id>[A-Za-z0-9.\-]{1,64}))?/?")


class FhirApi:
    name = "fhir"

    def __init__(self, store: Store, registry: ConsentRegistry | None = None, *,
                 cache: bool = True) -> None:
        self.store = store
        self.registry = registry or ConsentRegistry(store.index)
        self.cache = ResourceCache(store.index, self._build) if cache else None

    def _build(self) -> list[dict[str, Any]]:
        return bundle.all_resources(self.store, self.registry)

    def snapshot(self) -> Snapshot:
        if self.cache is not None:
            return self.cache.snapshot()
        return Snapshot.of((), self._build())

    def handle(self, request: Request) -> Reply | None:
        if not request.path.startswith("/fhir/"):
            return None
        if request.method != "GET":
            return _outcome(405, "not-supported", "this FHIR server is read-only")
        if request.path.rstrip("/") == "/fhir/metadata":
            return _reply(200, capability())
        match = _PATH.fullmatch(request.path)
        if match is None or match["type"] not in TYPES:
            return _outcome(404, "not-found", "unknown resource type")
        kind = match["type"]
        snapshot = self.snapshot()
        if match["id"]:
            found = snapshot.by_id.get((kind, match["id"]))
            if found is None:
                return _outcome(404, "not-found", "no such id")
            return Reply(200, found.encoded.encode(), FHIR_JSON)
        consent = search.ConsentCheck(self.registry)
        try:
            search.check(request.query)
            hits = [c for c in snapshot.by_type.get(kind, [])
                    if self._matches(kind, c.resource, request.query, consent)]
        except search.BadSearch as bad:
            return _outcome(400, "invalid", str(bad))
        return Reply(200, _searchset(hits), FHIR_JSON)

    @staticmethod
    def _matches(kind: str, resource: dict[str, Any], query: dict[str, list[str]],
                 consent: search.ConsentCheck) -> bool:
        if kind == "ImagingStudy":
            return search.matches(resource, query, consent)
        for name, values in query.items():
            if name == "_id" and resource["id"] not in values[0].split(","):
                return False
            if name == "patient":
                ref = (resource.get("subject") or resource.get("patient") or {}).get("reference")
                wanted = values[0] if "/" in values[0] else f"Patient/{values[0]}"
                if ref != wanted:
                    return False
        return True


def _searchset(hits: list[Cached]) -> bytes:
    """bundle.bundle(..., "searchset") as JSON, from each resource's JSON made once."""
    entries = ", ".join(
        '{"fullUrl": ' + json.dumps(f"urn:incisive:{c.resource['resourceType']}/"
                                    f"{c.resource['id']}") + ', "resource": ' + c.encoded + "}"
        for c in hits)
    return ('{"resourceType": "Bundle", "type": "searchset", "entry": [' + entries
            + '], "total": ' + str(len(hits)) + "}").encode()


def capability() -> dict[str, Any]:
    resources: list[dict[str, Any]] = [
        {"type": t, "interaction": [{"code": "read"}, {"code": "search-type"}]} for t in TYPES
    ]
    resources[0]["searchParam"] = [
        {"name": n, "type": "date" if n == "started" else "token"}
        for n in search.SUPPORTED if n != "_id"
    ]
    return {
        "resourceType": "CapabilityStatement", "status": "active", "date": "2025-01-01",
        "kind": "instance", "fhirVersion": "4.0.1", "format": ["json"],
        "rest": [{"mode": "server", "resource": resources}],
    }


def _reply(status: int, body: dict[str, Any]) -> Reply:
    return Reply(status, json.dumps(body).encode(), FHIR_JSON)


def _outcome(status: int, code: str, text: str) -> Reply:
    return _reply(status, {"resourceType": "OperationOutcome", "issue": [
        {"severity": "error", "code": code, "diagnostics": text}]})
