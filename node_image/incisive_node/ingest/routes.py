"""Routes other packages mount on the appliance's HTTP server (FHIR, DICOMweb, donor API).

An app answers the requests it owns and returns None for the rest; the server tries apps in
order and answers 404 when none takes a request. Apps name themselves for the access log,
which never shows a path (paths carry UIDs and tokens).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol
from urllib.parse import parse_qs


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]  # lower-case names
    body: bytes = b""

    @classmethod
    def parse(cls, method: str, target: str, headers: dict[str, str], body: bytes) -> Request:
        path, _, query = target.partition("?")
        return cls(method, path, parse_qs(query, keep_blank_values=True),
                   {k.lower(): v for k, v in headers.items()}, body)

    def first(self, name: str) -> str | None:
        values = self.query.get(name)
        return values[0] if values else None


@dataclass(frozen=True)
class Reply:
    status: int
    body: bytes
    content_type: str
    headers: tuple[tuple[str, str], ...] = field(default=())


class App(Protocol):
    name: str

    def handle(self, request: Request) -> Reply | None: ...
