"""The appliance's small HTTP server: STOW-RS, Prometheus metrics and a health check, plus
the apps other packages mount (routes.py: FHIR, DICOMweb, the donor API).

Stdlib `http.server`, one thread per request. Request paths are not logged: a STOW URL
carries the sender's original Study Instance UID.
"""

from __future__ import annotations

import json
import logging
import re
import threading
from collections.abc import Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from incisive_node.ingest import stow
from incisive_node.ingest.loopback import require_loopback
from incisive_node.ingest.pipeline import Pipeline
from incisive_node.ingest.routes import App, Reply, Request

log = logging.getLogger(__name__)

_STUDIES = re.compile(r"/studies(?:/(?P<study>[0-9.]{1,64}))?/?")
DEFAULT_MAX_BODY = 2 * 1024**3


class IngestHttpServer:
    def __init__(
        self,
        pipeline: Pipeline,
        *,
        host: str = "127.0.0.1",
        port: int = 8080,
        max_body: int = DEFAULT_MAX_BODY,
        apps: Sequence[App] = (),
        allow_external: bool = False,
    ) -> None:
        self.pipeline = pipeline
        self.host = require_loopback(host, allow_external)
        handler = type(
            "Handler", (_Handler,),
            {"pipeline": pipeline, "max_body": max_body, "apps": tuple(apps)},
        )
        self._httpd = ThreadingHTTPServer((self.host, port), handler)
        self._httpd.daemon_threads = True
        self.port = self._httpd.server_address[1]
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> None:
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, name="ingest-http", daemon=True
        )
        self._thread.start()
        log.info("HTTP (STOW-RS, /metrics, /healthz) listening on %s", self.url)

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=10)


class _Handler(BaseHTTPRequestHandler):
    pipeline: Pipeline
    max_body: int
    apps: tuple[App, ...] = ()
    _app_name: str | None = None
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out as two writes: no 40 ms stall
    server_version = "incisive-node"
    sys_version = ""

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        if path == "/healthz":
            self._reply(200, b"ok\n", "text/plain")
        elif path == "/metrics":
            self._reply(200, generate_latest(self.pipeline.metrics.registry), CONTENT_TYPE_LATEST)
        else:
            self._dispatch(b"")

    def do_POST(self) -> None:
        match = _STUDIES.fullmatch(self.path.split("?", 1)[0])
        if match is None:
            body = self._read_body()
            if body is not None:
                self._dispatch(body)
            return
        body = self._read_body()
        if body is None:
            return
        response = stow.store_instances(
            self.pipeline, self.headers.get("Content-Type", ""), body, match["study"]
        )
        if response.body is None:
            self._reply(response.status, (response.message + "\n").encode(), "text/plain")
        else:
            payload = json.dumps(response.body).encode()
            self._reply(response.status, payload, stow.DICOM_JSON)

    def do_PUT(self) -> None:
        body = self._read_body()
        if body is not None:
            self._dispatch(body)

    def do_DELETE(self) -> None:
        self._dispatch(b"")

    def _dispatch(self, body: bytes) -> None:
        request = Request.parse(self.command, self.path, dict(self.headers.items()), body)
        for app in self.apps:
            reply: Reply | None = app.handle(request)
            if reply is not None:
                self._app_name = app.name
                self._reply(reply.status, reply.body, reply.content_type, extra=reply.headers)
                return
        self._reply(404, b"not found\n", "text/plain")

    def _read_body(self) -> bytes | None:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            return self._read_chunked()
        length_text = self.headers.get("Content-Length")
        if length_text is None or not length_text.isdigit():
            self._reply(411, b"Content-Length required\n", "text/plain")
            return None
        length = int(length_text)
        if length > self.max_body:
            self._reply(413, b"request body too large\n", "text/plain", close=True)
            return None
        return self.rfile.read(length)

    def _read_chunked(self) -> bytes | None:
        chunks: list[bytes] = []
        total = 0
        while True:
            size_line = self.rfile.readline(1024).split(b";", 1)[0].strip()
            try:
                size = int(size_line, 16)
            except ValueError:
                self._reply(400, b"bad chunk size\n", "text/plain", close=True)
                return None
            if size == 0:
                while self.rfile.readline(1024) not in (b"\r\n", b"\n", b""):
                    pass  # trailers carry nothing we need
                return b"".join(chunks)
            total += size
            if total > self.max_body:
                self._reply(413, b"request body too large\n", "text/plain", close=True)
                return None
            chunks.append(self.rfile.read(size))
            self.rfile.readline(1024)

    def _reply(
        self, status: int, body: bytes, content_type: str, *, close: bool = False,
        extra: tuple[tuple[str, str], ...] = (),
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        for name, value in extra:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        if close:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        self.wfile.write(body)

    def log_request(self, code: Any = "-", size: Any = "-") -> None:
        route = f"({self._app_name})" if self._app_name else _route(self.path)
        log.info("%s %s -> %s", self.command, route, code)

    def log_message(self, format: str, *args: Any) -> None:
        # http.server's own messages may quote the request line; keep only the route.
        log.debug("http: %s", _route(self.path) if hasattr(self, "path") else "-")


def _route(path: str) -> str:
    path = path.split("?", 1)[0]
    if _STUDIES.fullmatch(path):
        return "/studies/…" if path.rstrip("/") != "/studies" else "/studies"
    return path if path in ("/metrics", "/healthz") else "(other)"

