"""The review API, and a small loopback HTTP server for it.

    GET  /annotation/queue[?task=&limit=]          pending proposals, most uncertain first
    GET  /annotation/proposals/{id}                 one proposal
    GET  /annotation/proposals/{id}/seg             its SEG (application/dicom); after a
                                                    correction, ?reviewed=1 gives the
                                                    reviewer's masks
    GET  /annotation/proposals/{id}/observation     its FHIR Observation
    POST /annotation/proposals/{id}/accept
    POST /annotation/proposals/{id}/reject
    POST /annotation/proposals/{id}/correct         classification: {"label": n} as JSON;
                                                    segmentation: a DICOM SEG of the series
                                                    (application/dicom)

`ReviewApi` is an app in the sense of ingest/routes.py, so the appliance's main HTTP server
can mount it beside FHIR and DICOMweb; `ReviewServer` serves it alone (with /metrics and
/healthz) for `incisive-node annotate serve`. Both listen on loopback unless told
otherwise: who may review is the site's proxy's decision. Replies never carry the patient
pseudonym, and paths (which carry proposal ids) are never logged.
"""

from __future__ import annotations

import json
import logging
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from incisive_node.annotation.metrics import AnnotationCollector
from incisive_node.annotation.observations import observation
from incisive_node.annotation.records import CORRECTED, AnnotationRecords, Proposal
from incisive_node.annotation.review import ProposalNotFound, ReviewRefused, Reviews
from incisive_node.fl.config import TASKS
from incisive_node.ingest.loopback import require_loopback
from incisive_node.ingest.routes import Reply, Request
from incisive_node.store import Store

log = logging.getLogger(__name__)

JSON = "application/json"
DICOM = "application/dicom"
FHIR_JSON = "application/fhir+json"
MAX_BODY = 256 * 1024**2  # a SEG of a long series, with room to spare
_PROPOSAL = re.compile(
    r"/annotation/proposals/(?P<id>[0-9a-f]{32})(?:/(?P<part>seg|observation|accept|reject|correct))?"
)
_ACTIONS = ("accept", "reject", "correct")


class ReviewApi:
    name = "annotation"

    def __init__(self, store: Store, records: AnnotationRecords | None = None) -> None:
        self.store = store
        self.records = records or AnnotationRecords(store.index)
        self.reviews = Reviews(store, self.records)

    def handle(self, request: Request) -> Reply | None:
        if not request.path.startswith("/annotation/"):
            return None
        try:
            return self._route(request)
        except ReviewRefused as refused:
            return _json(refused.status, {"error": str(refused)})

    def _route(self, request: Request) -> Reply:
        if request.path == "/annotation/queue":
            if request.method != "GET":
                return _json(405, {"error": "method not allowed"})
            return self._queue(request)
        match = _PROPOSAL.fullmatch(request.path)
        if match is None:
            return _json(404, {"error": "not found"})
        proposal_id, part = match["id"], match["part"]
        if part in _ACTIONS:
            if request.method != "POST":
                return _json(405, {"error": "method not allowed"})
            return _json(200, self._act(proposal_id, part, request).summary())
        if request.method != "GET":
            return _json(405, {"error": "method not allowed"})
        proposal = self.records.get(proposal_id)
        if proposal is None:
            raise ProposalNotFound("no such proposal")
        if part is None:
            return _json(200, proposal.summary())
        if part == "observation":
            return Reply(200, json.dumps(observation(proposal)).encode(), FHIR_JSON)
        return self._seg(proposal, request.first("reviewed") in ("1", "true"))

    def _queue(self, request: Request) -> Reply:
        task = request.first("task")
        if task is not None and task not in TASKS:
            return _json(400, {"error": f"task must be one of {', '.join(TASKS)}"})
        limit_text = request.first("limit") or "100"
        if not limit_text.isdigit() or not 0 < int(limit_text) <= 10000:
            return _json(400, {"error": "limit must be a whole number from 1 to 10000"})
        queue = self.records.queue(task, int(limit_text))
        return _json(200, {"proposals": [p.summary() for p in queue]})

    def _act(self, proposal_id: str, action: str, request: Request) -> Proposal:
        if action == "accept":
            return self.reviews.accept(proposal_id)
        if action == "reject":
            return self.reviews.reject(proposal_id)
        kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if kind == DICOM:
            return self.reviews.correct_masks(proposal_id, request.body)
        if kind == JSON:
            try:
                body = json.loads(request.body or b"{}")
            except ValueError:
                raise ReviewRefused("body must be JSON") from None
            if not isinstance(body, dict) or "label" not in body:
                raise ReviewRefused('body must be {"label": <class number>}')
            return self.reviews.correct_label(proposal_id, body["label"])
        raise ReviewRefused(f"a correction is {JSON} (a label) or {DICOM} (a SEG)")

    def _seg(self, proposal: Proposal, reviewed: bool) -> Reply:
        digest = proposal.seg_sha256
        if reviewed:
            if proposal.status != CORRECTED:
                return _json(404, {"error": "the proposal has no reviewer's masks"})
            digest = proposal.final_seg_sha256
        if digest is None:
            return _json(404, {"error": "a classification proposal has no SEG"})
        return Reply(200, self.store.objects.get(digest), DICOM)


def _json(status: int, body: dict[str, Any]) -> Reply:
    return Reply(status, json.dumps(body).encode(), JSON)


class ReviewServer:
    """The review API alone, with /metrics and /healthz, one thread per request."""

    def __init__(self, store: Store, *, host: str = "127.0.0.1", port: int = 8082,
                 allow_external: bool = False, registry: CollectorRegistry | None = None) -> None:
        self.host = require_loopback(host, allow_external)
        self.api = ReviewApi(store)
        self.registry = registry or CollectorRegistry()
        self.registry.register(AnnotationCollector(self.api.records))
        handler = type("Handler", (_Handler,), {"api": self.api, "registry": self.registry})
        self._httpd = ThreadingHTTPServer((self.host, port), handler)
        self._httpd.daemon_threads = True
        self.port = self._httpd.server_address[1]
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> ReviewServer:
        self._thread = threading.Thread(target=self._httpd.serve_forever,
                                        name="annotation-http", daemon=True)
        self._thread.start()
        log.info("review API listening on %s", self.url)
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def __enter__(self) -> ReviewServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class _Handler(BaseHTTPRequestHandler):
    api: ReviewApi
    registry: CollectorRegistry
    protocol_version = "HTTP/1.1"
    server_version = "incisive-node"
    sys_version = ""

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        if path == "/healthz":
            self._reply(Reply(200, b"ok\n", "text/plain"))
        elif path == "/metrics":
            self._reply(Reply(200, generate_latest(self.registry), CONTENT_TYPE_LATEST))
        else:
            self._dispatch(b"")

    def do_POST(self) -> None:
        length = self.headers.get("Content-Length", "")
        if not length.isdigit():
            self._reply(Reply(411, b"Content-Length required\n", "text/plain"), close=True)
        elif int(length) > MAX_BODY:
            self._reply(Reply(413, b"request body too large\n", "text/plain"), close=True)
        else:
            self._dispatch(self.rfile.read(int(length)))

    def do_PUT(self) -> None:
        self.do_POST()

    def do_DELETE(self) -> None:
        self._dispatch(b"")

    def _dispatch(self, body: bytes) -> None:
        request = Request.parse(self.command, self.path, dict(self.headers.items()), body)
        try:
            reply = self.api.handle(request) or Reply(404, b"not found\n", "text/plain")
        except Exception as error:  # a bug costs one request, and its text stays here
            log.error("review API failed: %s", type(error).__name__)
            reply = _json(500, {"error": "internal error"})
        self._reply(reply)

    def _reply(self, reply: Reply, *, close: bool = False) -> None:
        self.send_response(reply.status)
        self.send_header("Content-Type", reply.content_type)
        for name, value in reply.headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(reply.body)))
        if close:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        self.wfile.write(reply.body)

    def log_request(self, code: Any = "-", size: Any = "-") -> None:
        log.info("%s (annotation) -> %s", self.command, code)

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("http: (annotation)")
