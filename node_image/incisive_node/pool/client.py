"""A client of the hub's pool API (server.py), over mutual TLS with the caller's federation
certificate. One connection is kept for a whole sync pass.

The pool URL may name the hub by address while its certificate names a service
(`pool.hub.<domain>`): `server_name` is then the name the certificate is checked against.
"""

from __future__ import annotations

import http.client
import json
import ssl
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

from incisive_node.identity.mtls import CredentialFiles, HTTPSConnection, client_context

TIMEOUT = 60.0


class PoolUnavailable(ConnectionError):
    """The pool could not be reached or failed (5xx): try again on the next pass."""


class PoolRefused(RuntimeError):
    """The pool answered, and said no (4xx); the message is the pool's reason."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"pool refused ({status}): {message}")
        self.status = status


def tls_context(cert: Path, key: Path, trust_anchor: Path) -> ssl.SSLContext:
    """The caller's federation chain and key, trusting only the federation root."""
    return client_context(CredentialFiles(Path(cert), Path(key)), Path(trust_anchor).read_bytes())


class PoolClient:
    def __init__(self, url: str, context: ssl.SSLContext, *, server_name: str | None = None,
                 timeout: float = TIMEOUT) -> None:
        parts = urlsplit(url)
        if parts.scheme != "https" or not parts.hostname:
            raise ValueError("the pool URL must be https://HOST[:PORT]")
        self.url = f"https://{parts.netloc}"
        self._host, self._port = parts.hostname, parts.port or 443
        self._context = context
        self.server_name = server_name or parts.hostname
        self._timeout = timeout
        self._connection: HTTPSConnection | None = None

    def _request(self, method: str, path: str, body: bytes | None = None,
                 content_type: str | None = None) -> tuple[int, bytes]:
        headers = {"Content-Type": content_type} if content_type else {}
        for attempt in (1, 2):  # a kept connection the server closed meanwhile: once more
            if self._connection is None:
                self._connection = HTTPSConnection(self._host, self._port, self._context,
                                                   self.server_name, self._timeout)
            try:
                self._connection.request(method, path, body=body, headers=headers)
                reply = self._connection.getresponse()
                data = reply.read()
            except (OSError, http.client.HTTPException) as failed:
                self.close()
                fresh = isinstance(failed, http.client.RemoteDisconnected | BrokenPipeError |
                                   ConnectionResetError)
                if attempt == 1 and fresh:
                    continue
                raise PoolUnavailable(f"pool unreachable: {type(failed).__name__}") from None
            if reply.will_close:
                self.close()
            if reply.status >= 500:
                raise PoolUnavailable(f"pool failed ({reply.status})")
            if reply.status >= 400:
                raise PoolRefused(reply.status, _error(data))
            return reply.status, data
        raise PoolUnavailable("pool unreachable")  # not reached: the loop returns or raises

    def _json(self, method: str, path: str) -> Any:
        return json.loads(self._request(method, path)[1])

    def put_instance(self, dataset: str, sop_uid: str, data: bytes) -> dict[str, Any]:
        path = f"/pool/v1/datasets/{quote(dataset)}/instances/{quote(sop_uid)}"
        return json.loads(self._request("PUT", path, data, "application/dicom")[1])

    def delete_patient(self, patient: str, reason: str) -> int:
        path = f"/pool/v1/patients/{quote(patient)}?reason={quote(reason)}"
        return int(self._json("DELETE", path)["deleted"])

    def delete_instance(self, sop_uid: str, reason: str) -> int:
        path = f"/pool/v1/instances/{quote(sop_uid)}?reason={quote(reason)}"
        return int(self._json("DELETE", path)["deleted"])

    def datasets(self) -> list[dict[str, Any]]:
        return list(self._json("GET", "/pool/v1/datasets")["datasets"])

    def instances(self, site: str, dataset: str) -> list[dict[str, Any]]:
        path = f"/pool/v1/datasets/{quote(site)}/{quote(dataset)}/instances"
        return list(self._json("GET", path)["instances"])

    def read(self, site: str, dataset: str, sop_uid: str) -> bytes:
        path = f"/pool/v1/datasets/{quote(site)}/{quote(dataset)}/instances/{quote(sop_uid)}"
        return self._request("GET", path)[1]

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None

    def __enter__(self) -> PoolClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _error(data: bytes) -> str:
    try:
        return str(json.loads(data).get("error", ""))[:200]
    except (ValueError, AttributeError):
        return "(no reason given)"
