"""HTTP clients for a witness (used by the log) and for a log (used by submitters, monitors):
plain HTTP for http:// URLs (loopback testbeds), mutual TLS for https:// (tls.py)."""

from __future__ import annotations

import base64
import http.client
import json
from typing import Any
from urllib.parse import urlencode, urlsplit

from .entries import SignedEntry
from .tls import ClientTls, TlsConfigError
from .witness import Response, WitnessError

TIMEOUT = 10.0


def check_scheme(url: str, tls: ClientTls | None) -> None:
    """At construction, so that a misconfiguration fails at startup, not at the first send."""
    scheme = urlsplit(url).scheme
    if scheme == "https" and tls is None:
        raise TlsConfigError(f"{url} is https: a client certificate and the CA are needed")
    if scheme != "https" and tls is not None:
        raise TlsConfigError(f"{url} is not https: TLS settings are given for it")


def _request(url: str, method: str, path: str, body: bytes | None = None,
             timeout: float = TIMEOUT, tls: ClientTls | None = None) -> Response:
    parts = urlsplit(url)
    connection: http.client.HTTPConnection
    if tls is None:
        connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout)
    else:
        connection = tls.connection(parts.hostname or "", parts.port or 443, timeout)
    try:
        connection.request(method, parts.path.rstrip("/") + path, body=body,
                           headers={"Content-Type": "text/plain"} if body is not None else {})
        reply = connection.getresponse()
        content_type = reply.getheader("Content-Type", "")
        return Response(reply.status, reply.read(), content_type)
    finally:
        connection.close()


class HttpWitness:
    """A witness reached over HTTP(S) at its submission prefix."""

    def __init__(self, name: str, url: str, tls: ClientTls | None = None) -> None:
        check_scheme(url, tls)
        self.name = name
        self.url = url
        self.tls = tls

    def submit(self, body: bytes) -> Response:
        try:
            return _request(self.url, "POST", "/add-checkpoint", body, tls=self.tls)
        except (OSError, http.client.HTTPException) as exc:
            raise WitnessError(f"unreachable: {type(exc).__name__}") from exc


class LogClientError(RuntimeError):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"HTTP {status}: {message}")
        self.status = status


class LogClient:
    def __init__(self, url: str, timeout: float = TIMEOUT, tls: ClientTls | None = None) -> None:
        check_scheme(url, tls)
        self.url = url
        self.timeout = timeout
        self.tls = tls

    def _get(self, path: str, **query: Any) -> Response:
        query = {k: v for k, v in query.items() if v is not None}
        response = _request(self.url, "GET", path + (f"?{urlencode(query)}" if query else ""),
                            timeout=self.timeout, tls=self.tls)
        if response.status != 200:
            raise LogClientError(response.status, response.body.decode(errors="replace").strip())
        return response

    def add_entry(self, entry: SignedEntry | bytes) -> dict[str, Any]:
        leaf = entry.leaf() if isinstance(entry, SignedEntry) else entry
        response = _request(self.url, "POST", "/add-entry", leaf, timeout=self.timeout,
                            tls=self.tls)
        if response.status != 200:
            raise LogClientError(response.status, response.body.decode(errors="replace").strip())
        return json.loads(response.body)

    def checkpoint(self) -> bytes:
        return self._get("/checkpoint").body

    def find(self, leaf_hash: bytes) -> int | None:
        """The position of a leaf with this hash, or None when the log does not hold one."""
        try:
            data = json.loads(self._get("/proof/inclusion", hash=leaf_hash.hex()).body)
        except LogClientError as exc:
            if exc.status == 404:
                return None
            raise
        return int(data["index"])

    def entries(self, start: int = 0, count: int = 100) -> list[dict[str, Any]]:
        return json.loads(self._get("/entries", start=start, count=count).body)

    def inclusion_proof(self, index: int, size: int | None = None) -> tuple[int, list[bytes]]:
        data = json.loads(self._get("/proof/inclusion", index=index, size=size).body)
        return data["size"], [base64.b64decode(p) for p in data["proof"]]

    def consistency_proof(self, old: int, new: int | None = None) -> list[bytes]:
        data = json.loads(self._get("/proof/consistency", old=old, new=new).body)
        return [base64.b64decode(p) for p in data["proof"]]
