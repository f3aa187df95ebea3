"""Appending the product's events to the ledger: build a commitment, sign it, spool it, send it.

One interface for the appliance and the operator: `Recorder.record(event, kind=...,
identifier=..., purpose=..., content=...)`. The identifier (a pseudonym, a series UID, a
site name) never leaves this function: the leaf carries only its keyed hash
(`keyed_object_id`) and the SHA-256 of the content, so nothing a caller passes in can put
PHI or a raw pseudonym into the ledger.

An event is written to a spool folder (one file per entry, fsynced, renamed into place)
before anything is sent, so an unreachable log, a refused append or a crash loses nothing:
the spool is sent in order when the log answers again, by this process's sender thread or
by the next process that records into the same spool. A file is renamed `.tried` before
its first send; a `.tried` file is looked up in the log by leaf hash before it is sent
again, so an append whose answer was lost is not appended twice.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import hashlib
import http.client
import itertools
import json
import logging
import os
import ssl
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from prometheus_client import CollectorRegistry, Counter, Gauge

from .client import LogClient, LogClientError
from .entries import (
    SCHEMA_VERSION,
    EntryError,
    Event,
    Purpose,
    canonical_json,
    fingerprint,
    keyed_object_id,
    sign_entry,
    utc_now,
)
from .merkle import leaf_hash
from .note import raw_public
from .tls import ClientTls

log = logging.getLogger(__name__)

FRESH, TRIED = ".leaf", ".tried"
REJECTED_FOLDER = "rejected"
_OBJECT_KEY_INFO = b"incisive-ledger/object-id-key/v1"
_HEX64 = frozenset("0123456789abcdef")
_sequence = itertools.count()


class RecorderError(ValueError):
    """A recorder cannot be built from this configuration (a missing or unreadable key)."""


def digest(content: bytes | Mapping[str, Any]) -> str:
    """SHA-256 of content bytes, or of a mapping's canonical JSON."""
    data = content if isinstance(content, bytes) else canonical_json(dict(content))
    return hashlib.sha256(data).hexdigest()


@dataclass(frozen=True)
class SubmitterIdentity:
    """Who signs: an Ed25519 key, the certificate fingerprint it signs for, and the key that
    turns identifiers into object IDs."""

    key: Ed25519PrivateKey
    actor: str
    object_key: bytes

    @classmethod
    def load(cls, key_path: str | Path, certificate_path: str | Path | None = None,
             object_key_path: str | Path | None = None) -> SubmitterIdentity:
        try:
            key = serialization.load_pem_private_key(Path(key_path).read_bytes(), None)
        except (OSError, ValueError, TypeError) as exc:
            raise RecorderError(f"cannot read the ledger signing key {key_path}: "
                                f"{type(exc).__name__}") from exc
        if not isinstance(key, Ed25519PrivateKey):
            raise RecorderError(f"the ledger signing key {key_path} is not an Ed25519 key")
        if certificate_path:
            try:
                certificate = x509.load_pem_x509_certificate(Path(certificate_path).read_bytes())
            except (OSError, ValueError) as exc:
                raise RecorderError(f"cannot read the certificate {certificate_path}: "
                                    f"{type(exc).__name__}") from exc
            actor = certificate.fingerprint(hashes.SHA256()).hex()
        else:
            # No certificate yet: the key's own fingerprint, as Submitters.add_key registers.
            actor = fingerprint(raw_public(key.public_key()))
        if object_key_path:
            object_key = Path(object_key_path).read_bytes().strip()
            if len(object_key) < 32:
                raise RecorderError(f"the object ID key {object_key_path} has fewer than "
                                    "32 bytes")
        else:
            object_key = derive_object_key(key)
        return cls(key, actor, object_key)

    @property
    def public_key_b64(self) -> str:
        return base64.b64encode(raw_public(self.key.public_key())).decode()


def derive_object_key(key: Ed25519PrivateKey) -> bytes:
    """An object ID key bound to the signing key (HKDF-SHA256), for deployments that keep no
    separate one. Rotating the signing key then changes every object ID it makes."""
    raw = key.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw,
                            serialization.NoEncryption())
    return HKDF(hashes.SHA256(), 32, salt=None, info=_OBJECT_KEY_INFO).derive(raw)


class RecorderMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.events = Counter(
            "incisive_ledger_events", "Ledger events by type and what became of them "
            "(spooled, appended, rejected by the log's schema, lost: not even spooled)",
            ["event", "outcome"], registry=registry)
        self.failures = Counter(
            "incisive_ledger_append_failures", "Sends to the ledger that did not land, by "
            "reason (unreachable, tls: a handshake failed, refused: 403, server-error); the "
            "entry stays spooled",
            ["reason"], registry=registry)
        self.pending = Gauge(
            "incisive_ledger_spool_pending", "Entries spooled and not yet in the ledger",
            registry=registry)


class Recorder:
    def __init__(self, url: str, identity: SubmitterIdentity, spool: str | Path, *,
                 registry: CollectorRegistry | None = None,
                 metrics: RecorderMetrics | None = None, retry_seconds: float = 10.0,
                 timeout: float = 5.0, tls: ClientTls | None = None) -> None:
        """Metrics go to `metrics` when given (a process that builds several recorders over
        its life, into one registry), else into `registry`, else into a private one. An
        https:// URL needs `tls` (this process's federation certificate and the CA)."""
        self.url = url
        self.identity = identity
        self.client = LogClient(url, timeout=timeout, tls=tls)
        self.spool = Path(spool)
        self.spool.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.metrics = metrics or RecorderMetrics(
            registry if registry is not None else CollectorRegistry())
        self.retry_seconds = retry_seconds
        self._flush_lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.metrics.pending.set(self.pending())

    @property
    def actor(self) -> str:
        return self.identity.actor

    # -- recording ---------------------------------------------------------------------------
    def object_id(self, kind: str, identifier: str) -> str:
        return keyed_object_id(self.identity.object_key, kind, identifier)

    def record(self, event: Event | str, *, kind: str, identifier: str, purpose: Purpose | str,
               content: bytes | Mapping[str, Any] | None = None,
               content_sha256: str | None = None) -> str:
        """Append an event; returns its leaf hash (hex). Give the content itself (hashed
        here) or its SHA-256 (`content_sha256`, 64 hex, e.g. a model's weights digest).

        Never raises because the log is away: the entry is spooled first and sent now (or by
        the sender thread, when started). Raises EntryError for a call that cannot make a
        valid entry (unknown event or purpose, a content hash that is not 64 hex)."""
        if (content is None) == (content_sha256 is None):
            raise EntryError("give exactly one of content and content_sha256")
        if content_sha256 is not None:
            content_sha256 = content_sha256.removeprefix("sha256:").lower()
            if len(content_sha256) != 64 or not set(content_sha256) <= _HEX64:
                raise EntryError("content_sha256 must be 64 hex digits")
        entry = {
            "v": SCHEMA_VERSION,
            "event": str(Event(event)),
            "actor": self.identity.actor,
            "object": self.object_id(kind, identifier),
            "content": content_sha256 if content is None else digest(content),
            "purpose": str(Purpose(purpose)),
            "time": utc_now(),
        }
        leaf = sign_entry(entry, self.identity.key).leaf()
        try:
            self._spool(leaf)
        except OSError as exc:
            # The local disk refused: the one case where an event is lost. Loud, and counted.
            self.metrics.events.labels(entry["event"], "lost").inc()
            log.critical("ledger event %s NOT recorded: the spool %s refused it (%s)",
                         entry["event"], self.spool, type(exc).__name__)
            return leaf_hash(leaf).hex()
        self.metrics.events.labels(entry["event"], "spooled").inc()
        self.metrics.pending.inc()
        if self._thread is not None:
            self._wake.set()
        else:
            self.flush()
        return leaf_hash(leaf).hex()

    def _spool(self, leaf: bytes) -> None:
        name = f"{time.time_ns():020d}-{os.getpid()}-{next(_sequence):06d}"
        temporary = self.spool / f".{name}.tmp"
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.write(fd, leaf)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.rename(temporary, self.spool / f"{name}{FRESH}")
        _fsync_folder(self.spool)

    # -- sending -----------------------------------------------------------------------------
    def pending(self) -> int:
        return len(self._queued())

    def _queued(self) -> list[Path]:
        found = [p for p in self.spool.iterdir() if p.suffix in (FRESH, TRIED)]
        return sorted(found, key=lambda p: p.stem)

    def flush(self) -> int:
        """Send what is spooled, oldest first; stop at the first failure (the log is away, or
        refuses this submitter: the rest would fare the same). Returns how many landed."""
        with self._flush_lock, _folder_lock(self.spool):
            sent = 0
            for path in self._queued():
                try:
                    outcome = self._send(path)
                except FileNotFoundError:
                    continue  # another process sent it between our listing and now
                if outcome is None:
                    break
                sent += outcome
            self.metrics.pending.set(self.pending())
            return sent

    def _send(self, path: Path) -> int | None:
        """1 when the entry is in the log, 0 when it was set aside, None to stop for now."""
        leaf = path.read_bytes()
        try:
            if path.suffix == TRIED and self.client.find(leaf_hash(leaf)) is not None:
                path.unlink()
                return 1
            if path.suffix == FRESH:
                tried = path.with_suffix(TRIED)
                os.rename(path, tried)
                path = tried
            self.client.add_entry(leaf)
        except ssl.SSLError as exc:
            # Not the network: a certificate (ours expired, or the server is not the log).
            # Retried like an outage, since renewal may fix it; said, since a person may.
            self.metrics.failures.labels("tls").inc()
            log.warning("TLS with the ledger failed (%s); the entry stays spooled",
                        getattr(exc, "verify_message", None) or exc.reason
                        or type(exc).__name__)
            return None
        except (OSError, http.client.HTTPException):
            self.metrics.failures.labels("unreachable").inc()
            return None
        except LogClientError as exc:
            return self._refused(path, leaf, exc)
        path.unlink()
        self.metrics.events.labels(_event_of(leaf), "appended").inc()
        return 1

    def _refused(self, path: Path, leaf: bytes, exc: LogClientError) -> int | None:
        if exc.status == 400:
            # The log's schema refuses the entry itself: no retry can help. Kept aside for a
            # person to look at, never dropped.
            aside = self.spool / REJECTED_FOLDER
            aside.mkdir(exist_ok=True, mode=0o700)
            os.rename(path, aside / path.with_suffix(FRESH).name)
            self.metrics.events.labels(_event_of(leaf), "rejected").inc()
            log.error("the ledger refused an entry (%s); kept in %s", exc, aside)
            return 0
        reason = "refused" if exc.status == 403 else "server-error"
        self.metrics.failures.labels(reason).inc()
        log.warning("the ledger did not take an entry (%s); it stays spooled", exc)
        return None

    # -- the sender thread -------------------------------------------------------------------
    def start(self) -> Recorder:
        """Send in the background from now on (long-running processes)."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="ledger-recorder",
                                            daemon=True)
            self._thread.start()
        return self

    def _run(self) -> None:
        self._wake.set()  # whatever an earlier process left in the spool goes first
        while not self._stop.is_set():
            self._wake.wait(self.retry_seconds)
            self._wake.clear()
            if self._stop.is_set():
                break
            try:
                self.flush()
            except Exception as failure:  # the thread must outlive any one bad round
                log.error("ledger spool flush failed (%s)", type(failure).__name__)

    def close(self, flush: bool = True) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
            self._thread = None
        if flush:
            self.flush()


def _event_of(leaf: bytes) -> str:
    # Our own leaves: parsed only to label a metric with the event type (an enum value).
    try:
        value = json.loads(leaf)["entry"]["event"]
    except (ValueError, KeyError, TypeError):
        return "unknown"
    return value if value in Event._value2member_map_ else "unknown"


def _fsync_folder(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def _folder_lock(folder: Path):  # type: ignore[no-untyped-def]
    """One sender per spool across processes (a CLI command and the serve process)."""
    fd = os.open(folder / ".lock", os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)
