"""The read-only FHIR REST API, mounted on the appliance's HTTP server under /fhir:

    GET /fhir/metadata
    GET /fhir/{type}            search (ImagingStudy: see search.py; others: _id, patient)
    GET /fhir/{type}/{id}       read

Resources are built from the store on each request, so they are always current (the
headers they read are cached by content hash)."""

from __future__ import annotations

import json
import re
from typing import Any

from incisive_node.consent import ConsentRegistry
from incisive_node.fhir import bundle, search
from incisive_node.ingest.routes import Reply, Request
from incisive_node.store import Store

FHIR_JSON = "application/fhir+json"
TYPES = ("ImagingStudy", "Patient", "Consent", "Observation", "DiagnosticReport",
         "Provenance")
_PATH = re.compile(r"/fhir/(?P<type>[A-Za-z]+)(?:/(?P<id>[A-Za-z0-9.\-]{1,64}))?/?")


class FhirApi:
    name = "fhir"

    def __init__(self, store: Store, registry: ConsentRegistry | None = None) -> None:
        self.store = store
        self.registry = registry or ConsentRegistry(store.index)

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
        resources = [r for r in bundle.all_resources(self.store, self.registry)
                     if r["resourceType"] == kind]
        if match["id"]:
            found = [r for r in resources if r["id"] == match["id"]]
            return _reply(200, found[0]) if found else _outcome(404, "not-found", "no such id")
        try:
            hits = [r for r in resources if self._matches(kind, r, request.query)]
        except search.BadSearch as bad:
            return _outcome(400, "invalid", str(bad))
        return _reply(200, bundle.bundle(hits, "searchset"))

    def _matches(self, kind: str, resource: dict[str, Any], query: dict[str, list[str]]
                 ) -> bool:
        if kind == "ImagingStudy":
            return search.matches(resource, query, self.registry)
        for name, values in query.items():
            if name == "_id" and resource["id"] not in values[0].split(","):
                return False
            if name == "patient":
                ref = (resource.get("subject") or resource.get("patient") or {}).get("reference")
                wanted = values[0] if "/" in values[0] else f"Patient/{values[0]}"
                if ref != wanted:
                    return False
        return True


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
