"""The pool's HTTP API at the hub, over mutual TLS with federation certificates only:

    PUT    /pool/v1/datasets/{dataset}/instances/{sop}   a site gives a copy (application/dicom)
    DELETE /pool/v1/patients/{keyed-id}?reason=R         a site's tombstone: every copy of one
                                                         patient, R in withdrawn|not-permitted
    DELETE /pool/v1/instances/{sop}?reason=withheld      one copy (curation withheld it later)
    GET    /pool/v1/datasets                             what is donated (counts per dataset)
    GET    /pool/v1/datasets/{site}/{dataset}/instances           the copies of one dataset
    GET    /pool/v1/datasets/{site}/{dataset}/instances/{sop}     one copy (application/dicom)
    GET    /healthz, /metrics

Who is asking comes from the client certificate (identity.mtls.peer_entity), never from the
request: a site (OU=site) writes and deletes only its own copies and reads only its own
listing; a hub service (OU=hub: the operator, HPC staging) reads everything and writes
nothing. Sites dial the hub; the pool never dials a site. The access log names the route,
never the path (paths carry keyed patient ids and UIDs).
"""

from __future__ import annotations

import json
import logging
import re
import ssl
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, generate_latest

from incisive_node.identity.csr import Entity, Role
from incisive_node.identity.mtls import peer_entity
from incisive_node.ingest.loopback import require_loopback
from incisive_node.pool.holdings import PoolHoldings, Refused

log = logging.getLogger(__name__)

MAX_COPY = 2 * 1024**3
JSON = "application/json"
DICOM = "application/dicom"
_SEG = r"[A-Za-z0-9._-]{1,64}"
ROUTES = (
    ("PUT", "put-copy", re.compile(rf"/pool/v1/datasets/(?P<dataset>{_SEG})/instances/"
                                   rf"(?P<sop>{_SEG})")),
    ("DELETE", "delete-patient", re.compile(rf"/pool/v1/patients/(?P<patient>{_SEG})")),
    ("DELETE", "delete-copy", re.compile(rf"/pool/v1/instances/(?P<sop>{_SEG})")),
    ("GET", "datasets", re.compile(r"/pool/v1/datasets")),
    ("GET", "list-copies", re.compile(rf"/pool/v1/datasets/(?P<site>{_SEG})/(?P<dataset>{_SEG})"
                                      r"/instances")),
    ("GET", "read-copy", re.compile(rf"/pool/v1/datasets/(?P<site>{_SEG})/(?P<dataset>{_SEG})"
                                    rf"/instances/(?P<sop>{_SEG})")),
)


@dataclass(frozen=True)
class Answer:
    status: int
    body: bytes
    content_type: str = JSON


def _json(status: int, body: Any) -> Answer:
    return Answer(status, json.dumps(body).encode())


class PoolMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self.received = Counter("incisive_pool_received", "Copies received from sites",
                                registry=registry)
        self.received_bytes = Counter("incisive_pool_received_bytes",
                                      "Bytes of copies received from sites", registry=registry)
        self.deleted = Counter("incisive_pool_copies_deleted",
                               "Copies deleted at a site's request, by reason",
                               ["reason"], registry=registry)
        self.refused = Counter("incisive_pool_refused", "Requests refused, by route",
                               ["route"], registry=registry)


class PoolApi:
    """The routes, apart from HTTP and TLS (so that they read in one place)."""

    def __init__(self, holdings: PoolHoldings, metrics: PoolMetrics) -> None:
        self.holdings = holdings
        self.metrics = metrics

    def answer(self, who: Entity, method: str, path: str, query: dict[str, list[str]],
               body: bytes) -> tuple[str, Answer]:
        for route_method, name, pattern in ROUTES:
            match = pattern.fullmatch(path)
            if match and route_method == method:
                try:
                    return name, getattr(self, name.replace("-", "_"))(who, query, body,
                                                                       **match.groupdict())
                except Refused as refused:
                    self.metrics.refused.labels(name).inc()
                    return name, _json(400, {"error": str(refused)})
        return "other", _json(404, {"error": "no such route"})

    @staticmethod
    def _site(who: Entity) -> str | None:
        return who.name if who.role is Role.SITE else None

    @staticmethod
    def _forbidden(why: str) -> Answer:
        return _json(403, {"error": why})

    def put_copy(self, who: Entity, query: Any, body: bytes, dataset: str, sop: str) -> Answer:
        site = self._site(who)
        if site is None:
            return self._forbidden("only a site gives copies")
        received = self.holdings.receive(site, dataset, sop, body)
        self.metrics.received.inc()
        self.metrics.received_bytes.inc(len(body))
        return _json(201 if received.created else 200,
                     {"sha256": received.sha256, "created": received.created})

    def delete_patient(self, who: Entity, query: dict[str, list[str]], body: bytes,
                       patient: str) -> Answer:
        site = self._site(who)
        if site is None:
            return self._forbidden("only the site that gave the copies deletes them")
        reason = (query.get("reason") or ["withdrawn"])[0]
        deleted = self.holdings.delete_patient(site, patient, reason)
        self.metrics.deleted.labels(reason).inc(deleted)
        return _json(200, {"deleted": deleted})

    def delete_copy(self, who: Entity, query: dict[str, list[str]], body: bytes,
                    sop: str) -> Answer:
        site = self._site(who)
        if site is None:
            return self._forbidden("only the site that gave the copy deletes it")
        reason = (query.get("reason") or ["withheld"])[0]
        deleted = self.holdings.delete_instance(site, sop, reason)
        self.metrics.deleted.labels(reason).inc(deleted)
        return _json(200, {"deleted": deleted})

    def datasets(self, who: Entity, query: Any, body: bytes) -> Answer:
        return _json(200, {"datasets": self.holdings.datasets(self._site(who))})

    def _may_read(self, who: Entity, site: str) -> bool:
        return who.role is Role.HUB or who.name == site

    def list_copies(self, who: Entity, query: Any, body: bytes, site: str,
                    dataset: str) -> Answer:
        if not self._may_read(who, site):
            return self._forbidden("a site reads only its own copies")
        return _json(200, {"instances": self.holdings.instances(site, dataset)})

    def read_copy(self, who: Entity, query: Any, body: bytes, site: str, dataset: str,
                  sop: str) -> Answer:
        if not self._may_read(who, site):
            return self._forbidden("a site reads only its own copies")
        data = self.holdings.read(site, dataset, sop)
        if data is None:
            return _json(404, {"error": "no such copy"})
        return Answer(200, data, DICOM)


class PoolServer:
    def __init__(self, holdings: PoolHoldings, tls: ssl.SSLContext, *, host: str = "127.0.0.1",
                 port: int = 8443, allow_external: bool = False,
                 registry: CollectorRegistry | None = None) -> None:
        self.metrics = PoolMetrics(registry if registry is not None else CollectorRegistry())
        self.api = PoolApi(holdings, self.metrics)
        self.host = require_loopback(host, allow_external)
        handler = type("Handler", (_Handler,), {"api": self.api})
        self._httpd = ThreadingHTTPServer((self.host, port), handler)
        self._httpd.daemon_threads = True
        # The handshake happens in the request's own thread (on its first read), so a slow
        # or silent client never holds up accept().
        self._httpd.socket = tls.wrap_socket(self._httpd.socket, server_side=True,
                                             do_handshake_on_connect=False)
        self.port = self._httpd.server_address[1]
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"https://{self.host}:{self.port}"

    def start(self) -> None:
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="pool-http",
                                        daemon=True)
        self._thread.start()
        log.info("pool listening on %s (mutual TLS)", self.url)

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=10)


class _Handler(BaseHTTPRequestHandler):
    api: PoolApi
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    server_version = "incisive-pool"
    sys_version = ""
    timeout = 60  # a client that stops talking mid-request frees its thread
    _route = "-"

    def handle(self) -> None:
        try:
            super().handle()
        except (ssl.SSLError, ConnectionError, TimeoutError) as failed:
            log.info("pool connection closed: %s", type(failed).__name__)

    def _serve(self) -> None:
        path, _, raw_query = self.path.partition("?")
        if path in ("/healthz", "/metrics") and self.command == "GET":
            self._route = path
            if path == "/healthz":
                self._send(Answer(200, b"ok\n", "text/plain"))
            else:
                self._send(Answer(200, generate_latest(self.api.metrics.registry),
                                  CONTENT_TYPE_LATEST))
            return
        try:
            who = peer_entity(self.connection)  # type: ignore[arg-type]
        except (ssl.SSLError, ValueError):
            self._send(_json(403, {"error": "the client certificate names no federation entity"}))
            return
        body = b""
        if self.command == "PUT":
            length = self.headers.get("Content-Length", "")
            if not length.isdigit():
                self._send(_json(411, {"error": "Content-Length required"}), close=True)
                return
            if int(length) > MAX_COPY:
                self._send(_json(413, {"error": "copy too large"}), close=True)
                return
            body = self.rfile.read(int(length))
        self._route, answer = self.api.answer(who, self.command, path,
                                              parse_qs(raw_query), body)
        self._send(answer)

    do_GET = do_PUT = do_DELETE = _serve

    def _send(self, answer: Answer, *, close: bool = False) -> None:
        self.send_response(answer.status)
        self.send_header("Content-Type", answer.content_type)
        self.send_header("Content-Length", str(len(answer.body)))
        if close:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        self.wfile.write(answer.body)

    def log_request(self, code: Any = "-", size: Any = "-") -> None:
        log.info("%s (%s) -> %s", self.command, self._route, code)

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("pool http: (%s)", self._route)
