"""Mutual TLS for the ledger's log and witnesses and for their clients, or plain HTTP on
loopback.

A service given its federation certificate, its key and the CA bundle serves HTTPS and
requires a client certificate chaining to that CA (identity/mtls.py: TLS 1.3, the
federation root only, never the system store). Without them it serves plain HTTP, and only
on a loopback address: that is for testbeds and the demo, where every process runs on one
machine. A client of an https:// URL presents its own federation certificate and checks the
server's against the CA and a DNS name: the URL's host, or `server_name` when the URL names
an address (federation certificates carry DNS names only).

TLS decides who may connect: any member of the federation. What a member may do is still
decided by signatures (a submitter's entry, the log's checkpoint), as over plain HTTP.
"""

from __future__ import annotations

import socket
import ssl
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from incisive_node.identity.mtls import (
    CredentialFiles,
    CredentialReloader,
    HTTPSConnection,
    client_context,
    server_context,
)
from incisive_node.ingest.loopback import require_loopback

# How each setting is named to the person who must fix it; callers pass their own names.
SERVICE_FLAGS = {"cert": "--tls-cert", "key": "--tls-key", "ca": "--tls-ca"}


class TlsConfigError(ValueError):
    """TLS settings that cannot work; the message names the setting to fix."""


@dataclass(frozen=True)
class TlsFiles:
    """A federation certificate chain and its key (PEM files), and the CA bundle (PEM) the
    other side's certificate must chain to."""

    cert: Path
    key: Path
    ca: Path

    @property
    def credentials(self) -> CredentialFiles:
        return CredentialFiles(self.cert, self.key)


def tls_files(cert: str | Path | None, key: str | Path | None, ca: str | Path | None,
              names: Mapping[str, str] = SERVICE_FLAGS) -> TlsFiles | None:
    """None when no TLS setting is given; all three, or an error naming the missing ones
    (the services require client certificates, so there is no one-sided TLS)."""
    given = {"cert": cert, "key": key, "ca": ca}
    if not any(given.values()):
        return None
    missing = [names[field] for field, value in given.items() if not value]
    if missing:
        raise TlsConfigError(f"mutual TLS needs a certificate, its key and the CA bundle: "
                             f"{', '.join(missing)} missing")
    return TlsFiles(Path(cert), Path(key), Path(ca))  # type: ignore[arg-type]


def _load(build: Callable[[CredentialFiles, bytes], ssl.SSLContext],
          files: TlsFiles) -> CredentialReloader:
    try:
        context = build(files.credentials, files.ca.read_bytes())
    except (OSError, ssl.SSLError) as exc:
        raise TlsConfigError(f"cannot load the TLS certificate {files.cert}, key {files.key} "
                             f"or CA bundle {files.ca}: {exc}") from exc
    return CredentialReloader(context, files.credentials)


class ServerTls:
    """A service's side: present its chain, require a client certificate from the CA."""

    def __init__(self, files: TlsFiles) -> None:
        self.files = files
        self._context = _load(server_context, files)

    def wrap(self, listener: socket.socket) -> ssl.SSLSocket:
        # The handshake happens in the request's own thread (on its first read), so a slow
        # or silent client never holds up accept().
        return self._context.current().wrap_socket(listener, server_side=True,
                                                   do_handshake_on_connect=False)

    def refresh(self) -> None:
        """Before accepting: a renewed certificate is presented from the next connection."""
        self._context.current()


class ClientTls:
    """A client's side: present its chain, check the server's chain and name."""

    def __init__(self, files: TlsFiles, server_name: str | None = None) -> None:
        self.files = files
        self.server_name = server_name
        self._context = _load(client_context, files)

    def connection(self, host: str, port: int, timeout: float) -> HTTPSConnection:
        return HTTPSConnection(host, port, self._context.current(),
                               self.server_name or host, timeout)


def client_for(url: str, files: TlsFiles | None, server_name: str | None = None,
               names: Mapping[str, str] = SERVICE_FLAGS) -> ClientTls | None:
    """The TLS a client of `url` needs: None unless it is https://; then the files are
    required, since a client that cannot check the server could be told anything (a log
    impostor answering "appended" would make a recorder drop an event)."""
    if urlsplit(url).scheme != "https":
        return None
    if files is None:
        raise TlsConfigError(
            f"{url} is https: give {names['ca']} (the CA bundle the server's certificate must "
            f"chain to) and {names['cert']}, {names['key']} (this client's federation "
            "certificate and key; the ledger requires mutual TLS)")
    return ClientTls(files, server_name)


def check_listen(host: str, tls: ServerTls | None) -> str:
    """Plain HTTP is for loopback testbeds only: anywhere else, the log's answers and the
    witnesses' cosignatures must come from the federation members they claim to be."""
    try:
        return require_loopback(host, allow_external=tls is not None)
    except ValueError as exc:
        raise TlsConfigError(f"{exc}; plain HTTP is for loopback testbeds only, listening "
                             f"elsewhere needs {SERVICE_FLAGS['cert']}, {SERVICE_FLAGS['key']} "
                             f"and {SERVICE_FLAGS['ca']} (mutual TLS)") from None
