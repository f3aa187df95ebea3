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
    INCISIVE_LEDGER_TLS_CERT     PEM: this process's federation certificate chain, and
    INCISIVE_LEDGER_TLS_KEY      its key, presented to an https:// log (mutual TLS)
    INCISIVE_LEDGER_TLS_CA       PEM: the CA bundle the log's certificate must chain to
    INCISIVE_LEDGER_TLS_SERVER_NAME  the name on the log's certificate, when the URL names
                                 an address (optional; default the URL's host)

Without a URL and a key, recording is off: said once in the log, and every hook is a no-op.
An https:// URL needs the three TLS files; an http:// one (loopback testbeds) refuses them,
so that a forgotten "s" is an error rather than plain HTTP.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Mapping
from pathlib import Path

from prometheus_client import CollectorRegistry

from .recorder import Recorder, RecorderError, RecorderMetrics, SubmitterIdentity
from .tls import TlsConfigError, client_for, tls_files

log = logging.getLogger(__name__)

URL, KEY, CERT, OBJECT_KEY, SPOOL = (
    "INCISIVE_LEDGER_URL", "INCISIVE_LEDGER_KEY", "INCISIVE_LEDGER_CERT",
    "INCISIVE_LEDGER_OBJECT_KEY", "INCISIVE_LEDGER_SPOOL")
TLS_CERT, TLS_KEY, TLS_CA, TLS_SERVER_NAME = (
    "INCISIVE_LEDGER_TLS_CERT", "INCISIVE_LEDGER_TLS_KEY", "INCISIVE_LEDGER_TLS_CA",
    "INCISIVE_LEDGER_TLS_SERVER_NAME")
# How the TLS settings are named in errors: the operator's flag, and the variable it
# defaults to (which is also what every incisive-node command reads).
TLS_NAMES = {"cert": f"--ledger-tls-cert / {TLS_CERT}", "key": f"--ledger-tls-key / {TLS_KEY}",
             "ca": f"--ledger-tls-ca / {TLS_CA}"}

_lock = threading.Lock()
_shared: Recorder | None = None
_configured = False


def default_spool(environ: Mapping[str, str] = os.environ) -> Path:
    state = environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(state) / "incisive" / "ledger-spool"


def build(url: str | None, key: str | Path | None, *, certificate: str | Path | None = None,
          object_key: str | Path | None = None, spool: str | Path | None = None,
          tls_cert: str | Path | None = None, tls_key: str | Path | None = None,
          tls_ca: str | Path | None = None, tls_server_name: str | None = None,
          registry: CollectorRegistry | None = None, metrics: RecorderMetrics | None = None,
          who: str = "this process") -> Recorder | None:
    """A recorder, or None (said once, at INFO) when the URL or the key is missing.
    RecorderError when the configuration cannot work (a key, or the TLS settings)."""
    if not url or not key:
        log.info("ledger recording is off for %s: no ledger URL and signing key configured",
                 who)
        return None
    identity = SubmitterIdentity.load(key, certificate, object_key)
    try:
        files = tls_files(tls_cert, tls_key, tls_ca, TLS_NAMES)
        if files is not None and not url.startswith("https://"):
            raise TlsConfigError(f"the ledger URL {url} is not https:// but TLS settings are "
                                 "given; plain HTTP is for loopback testbeds only")
        tls = client_for(url, files, tls_server_name, TLS_NAMES)
    except TlsConfigError as exc:
        raise RecorderError(f"ledger TLS: {exc}") from exc
    recorder = Recorder(url, identity, spool or default_spool(), registry=registry,
                        metrics=metrics, tls=tls)
    log.info("ledger recording on for %s: %s as actor %s", who, url, identity.actor[:16])
    return recorder


def from_environment(environ: Mapping[str, str] = os.environ,
                     registry: CollectorRegistry | None = None) -> Recorder | None:
    return build(environ.get(URL), environ.get(KEY), certificate=environ.get(CERT),
                 object_key=environ.get(OBJECT_KEY), spool=environ.get(SPOOL) or None,
                 tls_cert=environ.get(TLS_CERT) or None, tls_key=environ.get(TLS_KEY) or None,
                 tls_ca=environ.get(TLS_CA) or None,
                 tls_server_name=environ.get(TLS_SERVER_NAME) or None,
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
