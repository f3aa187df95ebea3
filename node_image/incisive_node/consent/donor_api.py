"""The donor-facing API, mounted on the appliance's HTTP server:

    GET    /donor/consent            my decisions per purpose (explicit or the site default)
    PUT    /donor/consent/{purpose}  {"decision": "permit"|"deny", "grantee"?, "end"?}
    DELETE /donor/consent/{purpose}  withdraw (deny from now on)
    DELETE /donor/token              revoke the token used for this request

Every request carries `Authorization: Bearer <token>`; the token resolves to a pseudonym
and nothing else. Replies never echo the pseudonym: the donor needs only their decisions.
"""

from __future__ import annotations

import json
import re
from typing import Any

from incisive_node.consent import enforcement
from incisive_node.consent.model import ANY_GRANTEE, InvalidConsent
from incisive_node.consent.registry import ConsentRegistry
from incisive_node.consent.tokens import DonorTokens
from incisive_node.ingest.routes import Reply, Request

_PURPOSE = re.compile(r"/donor/consent/(?P<purpose>[a-z0-9:-]{1,80})")
JSON = "application/json"


class DonorApi:
    name = "donor"

    def __init__(self, registry: ConsentRegistry, tokens: DonorTokens) -> None:
        self.registry = registry
        self.tokens = tokens

    def handle(self, request: Request) -> Reply | None:
        if not request.path.startswith("/donor/"):
            return None
        token = request.headers.get("authorization", "")
        patient = self.tokens.resolve(token[7:].strip()) if token[:7].lower() == "bearer " else None
        if patient is None:
            return Reply(401, b'{"error": "a valid donor token is required"}', JSON,
                         (("WWW-Authenticate", 'Bearer realm="incisive-donor"'),))
        try:
            return self._route(request, patient, token[7:].strip())
        except InvalidConsent as refused:
            return _json(400, {"error": str(refused)})

    def _route(self, request: Request, patient: str, token: str) -> Reply:
        if request.path == "/donor/consent" and request.method == "GET":
            return _json(200, self.summary(patient))
        if request.path == "/donor/token" and request.method == "DELETE":
            self.tokens.revoke(token)
            return Reply(204, b"", JSON)
        match = _PURPOSE.fullmatch(request.path)
        if match is None:
            return _json(404, {"error": "not found"})
        purpose = match["purpose"]
        if request.method == "DELETE":
            self.registry.withdraw(patient, purpose, source="donor")
            return _json(200, self.summary(patient))
        if request.method == "PUT":
            try:
                body = json.loads(request.body or b"{}")
            except ValueError:
                return _json(400, {"error": "body must be JSON"})
            if not isinstance(body, dict):
                return _json(400, {"error": "body must be a JSON object"})
            self.registry.decide(
                patient, purpose, str(body.get("decision", "")),
                grantee=str(body.get("grantee", ANY_GRANTEE)), end=body.get("end"),
                source="donor",
            )
            return _json(200, self.summary(patient))
        return _json(405, {"error": "method not allowed"})

    def summary(self, patient: str) -> dict[str, Any]:
        records = self.registry.records(patient)
        purposes = sorted(set(self.registry.policy.purposes()) | {r.purpose for r in records})
        decisions = []
        for purpose in purposes:
            decided, record = enforcement.decision(self.registry, patient, purpose, ANY_GRANTEE)
            decisions.append({
                "purpose": purpose, "decision": decided,
                "source": record.source if record else "site-default",
                "grantee": record.grantee if record else ANY_GRANTEE,
                "end": record.end if record else None,
            })
        return {"decisions": decisions}


def _json(status: int, body: dict[str, Any]) -> Reply:
    return Reply(status, json.dumps(body).encode(), JSON)
