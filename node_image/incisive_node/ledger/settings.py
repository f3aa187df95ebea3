"""Where a process's recorder comes from: flags (the operator) or the environment (the
appliance's commands), and the one shared recorder each process uses.

    INCISIVE_LEDGER_URL          the log, e.g. http://ledger.hub.example:8700
    INCISIVE_LEDGER_KEY          PEM file: the submitter's Ed25519 signing key
    INCISIVE_LEDGER_CERT         PEM file: the certificate whose fingerprint is the actor
                                 (optional; without it, the key's own fingerprint)
    INCISIVE_LEDGER_OBJECT_KEY   file: the object ID key, at least 32 bytes (optional;
                                 without it, derived from the signing key)
    INCISIVE_LEDGER_SPOOL        folder for entries not yet in the log
                                 (default $XDG_STATE_HOME/incisive/ledger-spool)

Without a URL and a key, recording is off: said once in the log, and every hook is a no-op.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Mapping
from pathlib import Path

from prometheus_client import CollectorRegistry

from .recorder import Recorder, RecorderMetrics, SubmitterIdentity

log = logging.getLogger(__name__)

URL, KEY, CERT, OBJECT_KEY, SPOOL = (
    "INCISIVE_LEDGER_URL", "INCISIVE_LEDGER_KEY", "INCISIVE_LEDGER_CERT",
    "INCISIVE_LEDGER_OBJECT_KEY", "INCISIVE_LEDGER_SPOOL")

_lock = threading.Lock()
_shared: Recorder | None = None
_configured = False


def default_spool(environ: Mapping[str, str] = os.environ) -> Path:
    state = environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(state) / "incisive" / "ledger-spool"


def build(url: str | None, key: str | Path | None, *, certificate: str | Path | None = None,
          object_key: str | Path | None = None, spool: str | Path | None = None,
          registry: CollectorRegistry | None = None, metrics: RecorderMetrics | None = None,
          who: str = "this process") -> Recorder | None:
    """A recorder, or None (said once, at INFO) when the URL or the key is missing."""
    if not url or not key:
        log.info("ledger recording is off for %s: no ledger URL and signing key configured",
                 who)
        return None
    identity = SubmitterIdentity.load(key, certificate, object_key)
    recorder = Recorder(url, identity, spool or default_spool(), registry=registry,
                        metrics=metrics)
    log.info("ledger recording on for %s: %s as actor %s", who, url, identity.actor[:16])
    return recorder


def from_environment(environ: Mapping[str, str] = os.environ,
                     registry: CollectorRegistry | None = None) -> Recorder | None:
    return build(environ.get(URL), environ.get(KEY), certificate=environ.get(CERT),
                 object_key=environ.get(OBJECT_KEY), spool=environ.get(SPOOL) or None,
                 registry=registry, who="the appliance")


def shared() -> Recorder | None:
    """The process's recorder, built from the environment on first use unless `install`ed."""
    global _shared, _configured
    with _lock:
        if not _configured:
            _shared, _configured = from_environment(), True
        return _shared


def install(recorder: Recorder | None) -> Recorder | None:
    """Make `recorder` the process's (a long-running command builds it with its metrics
    registry and starts its sender thread); None turns recording off."""
    global _shared, _configured
    with _lock:
        _shared, _configured = recorder, True
    return recorder


def reset() -> None:
    """Forget the shared recorder (tests; the next `shared()` reads the environment again)."""
    global _shared, _configured
    with _lock:
        _shared, _configured = None, False
