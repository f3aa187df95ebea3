"""The ledger as processes: the hub's log service and a site's witness service, and their keys.

    incisive-node ledger keygen --role log --name hub.example/ledger --out log.pem
    incisive-node ledger serve --store ledger.sqlite --key log.pem --trust trust.json \\
        --witness-url site-a.example/witness=http://witness.site-a.example:8701 ...
    incisive-node ledger witness --key witness.pem --name site-a.example/witness \\
        --log 'hub.example/ledger+1a2b3c4d+AQ...' --db witness.sqlite

Both take --tls-cert, --tls-key and --tls-ca (tls.py): then they serve HTTPS and require a
client certificate from the federation CA, and the log presents the same certificate to
https:// witnesses. Without them, plain HTTP on loopback (testbeds, the demo).

The log serves the endpoints of server.py and publishes a checkpoint every `interval`
seconds when it has grown, stored only once the trust file's quorum of witnesses cosigned
it. The trust file is the one verifiers use (trust.py); its submitters are re-read when it
changes. Both services also answer GET /healthz and GET /metrics (Prometheus).
"""

from __future__ import annotations

import base64
import json
import os
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    generate_latest,
)

from .checkpoint import Checkpoint
from .client import HttpWitness
from .cosignature import CosignatureSigner
from .entries import fingerprint
from .log import Log
from .note import Ed25519Signer, NoteError, parse, parse_vkey, raw_public
from .server import Publisher, Server, log_routes, witness_routes
from .store import LedgerStore, open_store
from .tls import ServerTls, TlsFiles, check_listen, client_for
from .trust import SubmittersFile, load
from .witness import Response, Witness

ROLES = ("log", "witness", "submitter")


class ServiceError(ValueError):
    """The service cannot start with this configuration; the message says what to fix."""


# -- keys ------------------------------------------------------------------------------------
def write_key(path: Path) -> Ed25519PrivateKey:
    """A new Ed25519 key in a PEM file only its owner may read; never over an existing one."""
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError as exc:
        raise ServiceError(f"{path} exists; a key file is never overwritten") from exc
    try:
        os.write(fd, pem)
    finally:
        os.close(fd)
    return key


def read_key(path: Path) -> Ed25519PrivateKey:
    try:
        key = serialization.load_pem_private_key(Path(path).read_bytes(), None)
    except (OSError, ValueError, TypeError) as exc:
        raise ServiceError(f"cannot read the key {path}: {type(exc).__name__}") from exc
    if not isinstance(key, Ed25519PrivateKey):
        raise ServiceError(f"{path} is not an Ed25519 key")
    return key


def certificate_fingerprint(path: Path) -> str:
    """SHA-256 of the certificate's DER: the actor its holder's entries name."""
    try:
        certificate = x509.load_pem_x509_certificate(Path(path).read_bytes())
    except (OSError, ValueError) as exc:
        raise ServiceError(f"cannot read the certificate {path}: {type(exc).__name__}") from exc
    return certificate.fingerprint(hashes.SHA256()).hex()


def describe_key(role: str, key: Ed25519PrivateKey, name: str | None = None,
                 actor: str | None = None) -> dict[str, str]:
    """What others need to trust this key: a vkey for a log or witness; for a submitter,
    the `submitters` entry of a trust file (actor fingerprint -> raw public key). A
    submitter with no certificate yet is named by its key's own fingerprint."""
    if role == "log":
        return {"vkey": Ed25519Signer(_named(name), key).verifier.vkey()}
    if role == "witness":
        return {"vkey": CosignatureSigner(_named(name), key).verifier.vkey()}
    public = raw_public(key.public_key())
    return {"actor": actor or fingerprint(public), "key": base64.b64encode(public).decode()}


def _named(name: str | None) -> str:
    if not name:
        raise ServiceError("a log or witness key needs --name (the log's origin, or the "
                           "witness's name)")
    return name


# -- the log ---------------------------------------------------------------------------------
@dataclass
class LogService:
    log: Log
    server: Server
    publisher: Publisher

    @property
    def url(self) -> str:
        return self.server.url

    def stop(self) -> None:
        self.publisher.stop()
        self.server.stop()
        self.log.store.close()


def parse_witness_urls(values: Sequence[str]) -> dict[str, str]:
    urls = {}
    for value in values:
        name, sep, url = value.partition("=")
        if not sep or not name or not url.startswith(("http://", "https://")):
            raise ServiceError(f"--witness-url takes NAME=http(s)://host:port, not {value!r}")
        urls[name] = url
    return urls


def parse_witness_server_names(values: Sequence[str], urls: dict[str, str]) -> dict[str, str]:
    """NAME=DNS: the name on a witness's certificate when its URL names an address."""
    names = {}
    for value in values:
        name, sep, server_name = value.partition("=")
        if not sep or not server_name or name not in urls:
            raise ServiceError(f"--witness-server-name takes NAME=DNS-NAME for a witness "
                               f"given by --witness-url, not {value!r}")
        names[name] = server_name
    return names


def start_log(store: str | LedgerStore, key: Ed25519PrivateKey, trust_path: Path,
              witness_urls: dict[str, str], *, host: str = "127.0.0.1", port: int = 0,
              interval: float = 10.0, tls: TlsFiles | None = None,
              witness_server_names: dict[str, str] | None = None) -> LogService:
    """With `tls`, the log serves mutual TLS and presents the same federation certificate
    to https:// witnesses (its extended key usage allows both)."""
    try:
        trust = load(trust_path)
    except (OSError, ValueError, KeyError, NoteError) as exc:
        raise ServiceError(f"cannot read the trust file {trust_path}: {exc}") from exc
    signer = Ed25519Signer(trust.policy.log.name, key)
    if signer.verifier.vkey() != trust.policy.log.vkey():
        raise ServiceError(f"the key does not match the log key in {trust_path}")
    known = {w.name for w in trust.policy.witnesses}
    unknown = sorted(set(witness_urls) - known)
    if unknown:
        raise ServiceError(f"witnesses not in the trust file: {', '.join(unknown)}")
    if len(witness_urls) < trust.policy.quorum:
        raise ServiceError(f"a quorum of {trust.policy.quorum} needs at least that many "
                           f"--witness-url (got {len(witness_urls)})")
    server_tls = ServerTls(tls) if tls is not None else None
    check_listen(host, server_tls)  # before the store is opened
    names = witness_server_names or {}
    witnesses = [HttpWitness(name, url, client_for(url, tls, names.get(name)))
                 for name, url in witness_urls.items()]
    opened = open_store(store) if isinstance(store, str) else store
    log = Log(opened, signer, SubmittersFile(trust_path), witnesses=witnesses,
              policy=trust.policy)
    registry = CollectorRegistry()
    publisher = _MeteredPublisher(log, interval, registry)
    routes = {**log_routes(log), **_health_and_metrics(registry)}
    server = Server(routes, host, port, server_tls).start()
    publisher.start()
    return LogService(log, server, publisher)


class _MeteredPublisher(Publisher):
    def __init__(self, log: Log, interval: float, registry: CollectorRegistry) -> None:
        super().__init__(log, interval)
        Gauge("incisive_ledger_log_entries", "Entries in the log",
              registry=registry).set_function(lambda: log.size)
        Gauge("incisive_ledger_checkpoint_size", "Size of the latest accepted checkpoint",
              registry=registry).set_function(self._checkpoint_size)
        self.refused = Counter("incisive_ledger_checkpoints_refused",
                               "Checkpoints not published: too few cosignatures, or the "
                               "store or network failed", registry=registry)

    def _checkpoint_size(self) -> int:
        note = self.log.checkpoint()
        return 0 if note is None else Checkpoint.parse(parse(note).text).size

    def publish_if_grown(self) -> bool:
        published = super().publish_if_grown()
        if not published:
            self.refused.inc()
        return published


# -- the witness -----------------------------------------------------------------------------
@dataclass
class WitnessService:
    witness: Witness
    server: Server

    @property
    def url(self) -> str:
        return self.server.url

    def stop(self) -> None:
        self.server.stop()
        self.witness.close()


def start_witness(key: Ed25519PrivateKey, name: str, logs: Sequence[str], db: str | Path, *,
                  host: str = "127.0.0.1", port: int = 0,
                  tls: TlsFiles | None = None) -> WitnessService:
    server_tls = ServerTls(tls) if tls is not None else None
    check_listen(host, server_tls)  # before the witness's database is opened
    try:
        verifiers = [parse_vkey(v) for v in logs]
    except NoteError as exc:
        raise ServiceError(f"--log takes the log's vkey: {exc}") from exc
    if not verifiers:
        raise ServiceError("a witness needs at least one --log vkey to witness")
    witness = Witness(CosignatureSigner(name, key), verifiers, db)
    registry = CollectorRegistry()
    Gauge("incisive_ledger_witness_conflicts", "Checkpoints refused as evidence of a split "
          "view or an inconsistent log", registry=registry).set_function(
              lambda: len(witness.conflicts()))
    routes = {**witness_routes(witness), **_health_and_metrics(registry)}
    return WitnessService(witness, Server(routes, host, port, server_tls).start())


def _health_and_metrics(registry: CollectorRegistry) -> dict:
    def healthz(*_: object) -> Response:
        return Response(200, b"ok\n")

    def metrics(*_: object) -> Response:
        return Response(200, generate_latest(registry), CONTENT_TYPE_LATEST)

    return {("GET", "/healthz"): healthz, ("GET", "/metrics"): metrics}


def run_until(stop: threading.Event, service: LogService | WitnessService) -> None:
    try:
        stop.wait()
    finally:
        if isinstance(service, LogService):
            service.publisher.publish_if_grown()  # what arrived since the last tick
        service.stop()


def summary(service: LogService | WitnessService) -> str:
    if isinstance(service, LogService):
        log = service.log
        witnesses = ", ".join(w.name for w in log.witnesses) or "none"
        return json.dumps({"role": "log", "origin": log.origin, "url": service.url,
                           "entries": log.size, "witnesses": witnesses,
                           "vkey": log.signer.verifier.vkey()})
    return json.dumps({"role": "witness", "url": service.url,
                       "vkey": service.witness.verifier.vkey()})
