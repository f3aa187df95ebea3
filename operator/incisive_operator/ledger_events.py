"""The operator's ledger events: site enrolment, HPC runs, federated training.

The operator submits through the appliance's recorder (incisive_node.ledger.recorder), so
its entries are built, signed, spooled and retried exactly like the appliance's. It is
configured once per process from `incisive operator run --ledger-url --ledger-key ...`
(`configure`); without a URL and a key, recording is off, said once in the log, and every
function here does nothing. Handlers call these functions only after the change they record
has been written to the cluster, and never wait for the log: an unreachable log costs a
spooled entry, not a reconcile.

* `site_enrolled`: site-enrolled; object `site` (the FederatedSite name); content: the DER
  of the approved certificate request; purpose federation-operations.
* `hpc_run`: hpc-run; object `hpcworkload` (namespace/name/uid); content: canonical JSON
  `{"phase": "started" | "finished", "lineage": ..., "outcome": ...}`; purpose research.
* `training_started`: training-started; object `trainingjob` (namespace/name/uid);
  content: canonical JSON `{"spec": the job's spec}`; purpose ai-training.
* `training_finished`: training-finished; same object; content: the model, whose SHA-256
  is given; purpose ai-training.
"""

from __future__ import annotations

import base64
import logging
import threading
from collections import OrderedDict
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from prometheus_client import REGISTRY

from incisive_node.ledger import settings
from incisive_node.ledger.entries import Event, Purpose
from incisive_node.ledger.recorder import Recorder, RecorderMetrics

log = logging.getLogger(__name__)

SITE, HPC_WORKLOAD, TRAINING_JOB = "site", "hpcworkload", "trainingjob"

_lock = threading.Lock()
_recorder: Recorder | None = None
_metrics: RecorderMetrics | None = None


def configure(url: str | None, key: str | Path | None, *,
              certificate: str | Path | None = None, object_key: str | Path | None = None,
              spool: str | Path | None = None, tls_cert: str | Path | None = None,
              tls_key: str | Path | None = None, tls_ca: str | Path | None = None,
              tls_server_name: str | None = None, start: bool = True) -> Recorder | None:
    """Build (or, with no URL or key, switch off) the operator's recorder; its metrics go to
    the operator's /metrics. Replaces any recorder configured before. An https:// log needs
    the TLS certificate, key and CA (mutual TLS; settings.py)."""
    global _recorder, _metrics
    with _lock:
        if _metrics is None:
            _metrics = RecorderMetrics(REGISTRY)
        previous, _recorder = _recorder, settings.build(
            url, key, certificate=certificate, object_key=object_key, spool=spool,
            tls_cert=tls_cert, tls_key=tls_key, tls_ca=tls_ca,
            tls_server_name=tls_server_name, metrics=_metrics, who="the operator")
        if _recorder is not None and start:
            _recorder.start()
    if previous is not None:
        previous.close()
    return _recorder


def recorder() -> Recorder | None:
    return _recorder


def close() -> None:
    """Stop the sender thread after one last attempt to send what is spooled."""
    global _recorder
    with _lock:
        current, _recorder = _recorder, None
    if current is not None:
        current.close()


def record(event: Event | str, *, kind: str, identifier: str, purpose: Purpose | str,
           content: bytes | Mapping[str, Any] | None = None,
           content_sha256: str | None = None) -> str | None:
    """Any event, for handlers that have no function of their own here; returns the leaf
    hash, or None when recording is off."""
    current = _recorder
    if current is None:
        return None
    return current.record(event, kind=kind, identifier=identifier, purpose=purpose,
                          content=content, content_sha256=content_sha256)


_seen: OrderedDict[tuple[str, str], None] = OrderedDict()
_SEEN_LIMIT = 10_000


def _first_time(uid: str, phase: str) -> bool:
    with _lock:
        if (uid, phase) in _seen:
            return False
        _seen[(uid, phase)] = None
        while len(_seen) > _SEEN_LIMIT:
            _seen.popitem(last=False)
        return True


def _object_name(body: Mapping[str, Any]) -> str:
    meta = body["metadata"]
    return f"{meta.get('namespace', '')}/{meta['name']}/{meta['uid']}"


# -- enrolment -------------------------------------------------------------------------------
def site_enrolled(site: str, csr: Mapping[str, Any]) -> str | None:
    """The hub approved `site`'s certificate request (a CertificateSigningRequest object)."""
    if _recorder is None:
        return None
    request = x509.load_pem_x509_csr(base64.b64decode(csr["spec"]["request"]))
    der = request.public_bytes(serialization.Encoding.DER)
    return record(Event.SITE_ENROLLED, kind=SITE, identifier=site,
                  purpose=Purpose.FEDERATION_OPERATIONS, content=der)


# -- HPC -------------------------------------------------------------------------------------
def hpc_run(workload: Mapping[str, Any], phase: str, lineage: Mapping[str, Any] | None,
            outcome: str | None = None) -> str | None:
    """An HPCWorkload's backend job started (`phase="started"`) or ended ("finished", with
    the reason it ended as `outcome`). The lineage names inputs, image and command hash.

    A workload's status is refreshed both by its reconcile and by its Job's events, which
    can see the same transition at once: each (workload, phase) is recorded once per
    process."""
    if _recorder is None or not _first_time(workload["metadata"]["uid"], phase):
        return None
    content: dict[str, Any] = {"phase": phase, "lineage": dict(lineage or {})}
    if outcome is not None:
        content["outcome"] = outcome
    return record(Event.HPC_RUN, kind=HPC_WORKLOAD, identifier=_object_name(workload),
                  purpose=Purpose.RESEARCH, content=content)


# -- federated training (called by the TrainingJob handler) ----------------------------------
def training_started(job: Mapping[str, Any]) -> str | None:
    return record(Event.TRAINING_STARTED, kind=TRAINING_JOB, identifier=_object_name(job),
                  purpose=Purpose.AI_TRAINING, content={"spec": dict(job.get("spec") or {})})


def training_finished(job: Mapping[str, Any], model_sha256: str) -> str | None:
    """`model_sha256`: the SHA-256 of the final model (64 hex, `sha256:` prefix allowed)."""
    return record(Event.TRAINING_FINISHED, kind=TRAINING_JOB, identifier=_object_name(job),
                  purpose=Purpose.AI_TRAINING, content_sha256=model_sha256)
