"""HTTP clients for a witness (used by the log) and for a log (used by submitters, monitors)."""

from __future__ import annotations

import base64
import http.client
import json
from typing import Any
from urllib.parse import urlencode, urlsplit

from .entries import SignedEntry
from .witness import Response, WitnessError

TIMEOUT = 10.0


def _request(url: str, method: str, path: str, body: bytes | None = None) -> Response:
    parts = urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=TIMEOUT)
    try:
        connection.request(method, parts.path.rstrip("/") + path, body=body,
                           headers={"Content-Type": "text/plain"} if body is not None else {})
        reply = connection.getresponse()
        content_type = reply.getheader("Content-Type", "")
        return Response(reply.status, reply.read(), content_type)
    finally:
        connection.close()


class HttpWitness:
    """A witness reached over HTTP at its submission prefix."""

    def __init__(self, name: str, url: str) -> None:
        self.name = name
        self.url = url

    def submit(self, body: bytes) -> Response:
        try:
            return _request(self.url, "POST", "/add-checkpoint", body)
        except (OSError, http.client.HTTPException) as exc:
            raise WitnessError(f"unreachable: {type(exc).__name__}") from exc


class LogClientError(RuntimeError):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"HTTP {status}: {message}")
        self.status = status


class LogClient:
    def __init__(self, url: str) -> None:
        self.url = url

    def _get(self, path: str, **query: Any) -> Response:
        query = {k: v for k, v in query.items() if v is not None}
        response = _request(self.url, "GET", path + (f"?{urlencode(query)}" if query else ""))
        if response.status != 200:
            raise LogClientError(response.status, response.body.decode(errors="replace").strip())
        return response

    def add_entry(self, entry: SignedEntry | bytes) -> dict[str, Any]:
        leaf = entry.leaf() if isinstance(entry, SignedEntry) else entry
        response = _request(self.url, "POST", "/add-entry", leaf)
        if response.status != 200:
            raise LogClientError(response.status, response.body.decode(errors="replace").strip())
        return json.loads(response.body)

    def checkpoint(self) -> bytes:
        return self._get("/checkpoint").body

    def inclusion_proof(self, index: int, size: int | None = None) -> tuple[int, list[bytes]]:
        data = json.loads(self._get("/proof/inclusion", index=index, size=size).body)
        return data["size"], [base64.b64decode(p) for p in data["proof"]]

    def consistency_proof(self, old: int, new: int | None = None) -> list[bytes]:
        data = json.loads(self._get("/proof/consistency", old=old, new=new).body)
        return [base64.b64decode(p) for p in data["proof"]]
