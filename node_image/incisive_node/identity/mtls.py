"""ssl.SSLContext factories for mutual TLS between federation services.

Only the federation root is trusted (never the system store): a certificate from any
public CA, however valid, is not a federation member. TLS 1.3 only, since every endpoint
is our own code on a current OpenSSL.
"""

from __future__ import annotations

import http.client
import logging
import os
import socket
import ssl
import threading
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from .csr import Entity, Role, write_private_key

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CredentialFiles:
    chain: Path
    key: Path


def write_credentials(
    directory: Path, key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey, chain_pem: bytes
) -> CredentialFiles:
    """Put a key (mode 0600) and its chain where ``load_cert_chain`` can read them."""
    directory.mkdir(parents=True, exist_ok=True)
    files = CredentialFiles(directory / "tls.crt", directory / "tls.key")
    write_private_key(files.key, key)
    files.chain.write_bytes(chain_pem)
    return files


def server_context(credentials: CredentialFiles, trust_anchor_pem: bytes) -> ssl.SSLContext:
    """A server that presents its chain and requires a client certificate from the federation."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    _harden(context, trust_anchor_pem)
    context.verify_mode = ssl.CERT_REQUIRED
    context.load_cert_chain(credentials.chain, credentials.key)
    return context


def client_context(credentials: CredentialFiles, trust_anchor_pem: bytes) -> ssl.SSLContext:
    """A client that checks the server's name and chain, and presents its own chain."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    _harden(context, trust_anchor_pem)
    context.check_hostname = True
    context.verify_mode = ssl.CERT_REQUIRED
    context.load_cert_chain(credentials.chain, credentials.key)
    return context


def reload_credentials(context: ssl.SSLContext, credentials: CredentialFiles) -> None:
    """Swap in a renewed chain; connections made from now on present it."""
    context.load_cert_chain(credentials.chain, credentials.key)


class CredentialReloader:
    """A context whose chain and key are reloaded when their files change.

    Certificates live 7 days and renewal rewrites the files in place (the layout of a
    Kubernetes TLS Secret), so a long-running service or client must present the new chain
    without a restart. Call `current()` before each new connection: it costs two stat calls.
    A half-written pair (the chain renewed, the key not yet) fails to load; the previous
    credentials stay in use and the load is tried again on the next call."""

    def __init__(self, context: ssl.SSLContext, credentials: CredentialFiles) -> None:
        self.context = context
        self.credentials = credentials
        self._stamp = self._stat()
        self._lock = threading.Lock()

    def _stat(self) -> tuple[tuple[int, int], ...] | None:
        try:
            stats = [os.stat(p) for p in (self.credentials.chain, self.credentials.key)]
        except OSError:
            return None
        return tuple((s.st_mtime_ns, s.st_size) for s in stats)

    def current(self) -> ssl.SSLContext:
        stamp = self._stat()
        if stamp is not None and stamp != self._stamp:
            with self._lock:
                if stamp != self._stamp:
                    try:
                        reload_credentials(self.context, self.credentials)
                        self._stamp = stamp
                        log.info("reloaded the TLS certificate %s", self.credentials.chain)
                    except (OSError, ssl.SSLError) as failed:
                        log.warning("the TLS certificate %s changed but does not load (%s); "
                                    "keeping the previous one", self.credentials.chain,
                                    type(failed).__name__)
        return self.context


class HTTPSConnection(http.client.HTTPSConnection):
    """http.client over a federation context, checking the server's certificate against
    `server_name` rather than the host dialled: federation certificates name services (DNS
    names only, csr.py), so a URL that names an address still needs the service's name."""

    def __init__(self, host: str, port: int, context: ssl.SSLContext, server_name: str,
                 timeout: float) -> None:
        super().__init__(host, port, context=context, timeout=timeout)
        self._server_name = server_name

    def connect(self) -> None:
        sock = socket.create_connection((self.host, self.port), self.timeout)
        self.sock = self._context.wrap_socket(sock, server_hostname=self._server_name)  # type: ignore[attr-defined]


def peer_entity(connection: ssl.SSLSocket | ssl.SSLObject) -> Entity:
    """Who is on the other side; authenticated, since only the federation root is trusted."""
    der = connection.getpeercert(binary_form=True)
    if der is None:
        raise ssl.SSLError("the peer presented no certificate")
    subject = x509.load_der_x509_certificate(der).subject
    names = subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)
    units = subject.get_attributes_for_oid(x509.NameOID.ORGANIZATIONAL_UNIT_NAME)
    if len(names) != 1 or len(units) != 1:
        raise ssl.SSLError("the peer certificate does not name a federation entity")
    return Entity(str(names[0].value), Role(str(units[0].value)))


def _harden(context: ssl.SSLContext, trust_anchor_pem: bytes) -> None:
    context.minimum_version = ssl.TLSVersion.TLSv1_3
    # RFC 5280 strictness (Python 3.13 turns it on by default; 3.11 does not).
    context.verify_flags |= ssl.VERIFY_X509_STRICT
    context.load_verify_locations(cadata=trust_anchor_pem.decode())
