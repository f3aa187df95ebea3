"""HTTP front ends for a log and a witness (stdlib http.server, one thread per request), over
mutual TLS with federation certificates, or plain HTTP on loopback only (tls.py).

Log:     POST /add-entry               body: the signed leaf (canonical JSON)
         GET  /checkpoint              the latest accepted checkpoint note
         GET  /proof/inclusion?index=I[&size=N]   or   ?hash=<leaf hash hex>[&size=N]
         GET  /proof/consistency?old=M[&new=N]
         GET  /entries?start=I[&count=K]
Witness: POST /add-checkpoint          c2sp.org/tlog-witness

Error bodies name the rule that failed and never echo request content.
"""

from __future__ import annotations

import base64
import json
import logging
import ssl
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from .checkpoint import Checkpoint
from .entries import EntryError, SubmitterError
from .log import Log
from .merkle import ProofError
from .note import parse
from .policy import PolicyError
from .store import StoreError
from .tls import ServerTls, check_listen
from .witness import Response, Witness

MAX_BODY = 64 * 1024
MAX_ENTRIES_PAGE = 1000
_log = logging.getLogger(__name__)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    routes: dict[tuple[str, str], Callable[[_Handler, dict[str, list[str]], bytes], Response]]

    def log_message(self, format: str, *args: Any) -> None:
        _log.debug("%s %s", self.command, urlsplit(self.path).path)

    def handle(self) -> None:
        try:
            super().handle()
        except ssl.SSLError as refused:
            # A refused handshake (no client certificate, another CA, expired) surfaces on the
            # first read, in this thread; the reason is OpenSSL's, never request content.
            _log.info("TLS connection refused: %s",
                      getattr(refused, "verify_message", None) or refused.reason
                      or type(refused).__name__)
        except (ConnectionError, TimeoutError) as failed:
            _log.info("connection closed: %s", type(failed).__name__)

    def _body(self) -> bytes | None:
        try:
            length = int(self.headers.get("Content-Length", "0"))
        except ValueError:
            length = -1
        if not 0 <= length <= MAX_BODY:
            return None
        return self.rfile.read(length)

    def _dispatch(self) -> None:
        url = urlsplit(self.path)
        route = self.routes.get((self.command, url.path))
        body = b""
        if self.command == "POST":
            read = self._body()
            if read is None:
                self._send(Response(413, b"request body too large or unsized\n"))
                return
            body = read
        if route is None:
            self._send(Response(404, b"no such endpoint\n"))
            return
        try:
            response = route(self, parse_qs(url.query), body)
        except (ValueError, KeyError) as exc:
            response = Response(400, f"bad request: {type(exc).__name__}\n".encode())
        self._send(response)

    def _send(self, response: Response) -> None:
        self.send_response(response.status)
        self.send_header("Content-Type", response.content_type)
        self.send_header("Content-Length", str(len(response.body)))
        self.end_headers()
        self.wfile.write(response.body)

    do_GET = _dispatch
    do_POST = _dispatch


def _json(status: int, value: Any) -> Response:
    return Response(status, json.dumps(value, sort_keys=True).encode() + b"\n",
                    "application/json")


def _b64(hashes: list[bytes]) -> list[str]:
    return [base64.b64encode(h).decode() for h in hashes]


def _int(query: dict[str, list[str]], name: str, default: int | None = None) -> int | None:
    values = query.get(name)
    if not values:
        return default
    return int(values[0])


def log_routes(log: Log) -> dict:
    def add_entry(_: _Handler, __: dict, body: bytes) -> Response:
        try:
            index = log.append(body)
        except SubmitterError as exc:
            return Response(403, f"{exc}\n".encode())
        except EntryError as exc:
            return Response(400, f"{exc}\n".encode())
        return _json(200, {"index": index, "leaf_hash": log.leaf_hash(index).hex()})

    def checkpoint(_: _Handler, __: dict, ___: bytes) -> Response:
        note = log.checkpoint()
        if note is None:
            return Response(404, b"no checkpoint published yet\n")
        return Response(200, note)

    def inclusion(_: _Handler, query: dict, __: bytes) -> Response:
        size = _int(query, "size", log.size)
        if "hash" in query:
            index = log.find(bytes.fromhex(query["hash"][0]))
            if index is None:
                return Response(404, b"no such leaf\n")
        else:
            index = _int(query, "index")
        try:
            proof = log.inclusion_proof(index, size)
        except ProofError as exc:
            return Response(400, f"{exc}\n".encode())
        return _json(200, {"index": index, "size": size, "leaf_hash": log.leaf_hash(index).hex(),
                           "proof": _b64(proof)})

    def consistency(_: _Handler, query: dict, __: bytes) -> Response:
        old, new = _int(query, "old"), _int(query, "new", log.size)
        try:
            proof = log.consistency_proof(old, new)
        except ProofError as exc:
            return Response(400, f"{exc}\n".encode())
        return _json(200, {"old": old, "new": new, "proof": _b64(proof)})

    def entries(_: _Handler, query: dict, __: bytes) -> Response:
        start = _int(query, "start", 0)
        count = min(_int(query, "count", 100), MAX_ENTRIES_PAGE)
        end = min(start + count, log.size)
        try:
            rows = [{"index": i, "leaf": json.loads(log.leaf(i))} for i in range(start, end)]
        except StoreError as exc:
            return Response(500, f"{exc}\n".encode())
        return _json(200, rows)

    return {("POST", "/add-entry"): add_entry, ("GET", "/checkpoint"): checkpoint,
            ("GET", "/proof/inclusion"): inclusion, ("GET", "/proof/consistency"): consistency,
            ("GET", "/entries"): entries}


def witness_routes(witness: Witness) -> dict:
    def add_checkpoint(_: _Handler, __: dict, body: bytes) -> Response:
        return witness.add_checkpoint(body)

    return {("POST", "/add-checkpoint"): add_checkpoint}


class _TlsHTTPServer(ThreadingHTTPServer):
    tls: ServerTls

    def get_request(self) -> tuple[Any, Any]:
        self.tls.refresh()
        return super().get_request()


class Server:
    """A running server on a background thread; `url` is where to reach it. With `tls`,
    HTTPS requiring a federation client certificate; without, plain HTTP on loopback."""

    def __init__(self, routes: dict, host: str = "127.0.0.1", port: int = 0,
                 tls: ServerTls | None = None) -> None:
        check_listen(host, tls)
        attributes: dict[str, Any] = {"routes": routes}
        if tls is not None:
            attributes["timeout"] = 60  # a client that stops mid-handshake frees its thread
        handler = type("Handler", (_Handler,), attributes)
        if tls is None:
            self._http = ThreadingHTTPServer((host, port), handler)
        else:
            self._http = _TlsHTTPServer((host, port), handler)
            self._http.tls = tls
            self._http.socket = tls.wrap(self._http.socket)
        self._http.daemon_threads = True
        self.host, self.port = self._http.server_address[:2]
        self.url = f"{'http' if tls is None else 'https'}://{self.host}:{self.port}"
        # A short poll interval makes stop() prompt; idle cost is negligible.
        self._thread = threading.Thread(target=self._http.serve_forever, args=(0.05,),
                                        daemon=True, name=f"ledger-http-{self.port}")

    def start(self) -> Server:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._http.shutdown()
        self._http.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> Server:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()


def serve_log(log: Log, host: str = "127.0.0.1", port: int = 0,
              tls: ServerTls | None = None) -> Server:
    return Server(log_routes(log), host, port, tls)


def serve_witness(witness: Witness, host: str = "127.0.0.1", port: int = 0,
                  tls: ServerTls | None = None) -> Server:
    return Server(witness_routes(witness), host, port, tls)


class Publisher:
    """Publishes a checkpoint every `interval` seconds when the log has grown."""

    def __init__(self, log: Log, interval: float) -> None:
        self.log = log
        self.interval = interval
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="ledger-publisher")
        self._published = -1

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.publish_if_grown()

    def publish_if_grown(self) -> bool:
        """Publish when the log grew since the last checkpoint; False when the witness policy
        (or a store or network failure) kept it from being accepted."""
        if self.log.size == self._published:
            return True
        try:
            note = self.log.publish()
            # The size the checkpoint covers, not the log's size now: entries appended while
            # the witnesses were asked still need a checkpoint of their own.
            self._published = Checkpoint.parse(parse(note).text).size
            return True
        except PolicyError as exc:
            self.errors.append(str(exc))
            _log.warning("checkpoint not accepted: %s", exc)
        except Exception as failure:  # the publisher outlives a store or network hiccup
            self.errors.append(type(failure).__name__)
            _log.error("checkpoint not published (%s)", type(failure).__name__)
        return False

    def start(self) -> Publisher:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
