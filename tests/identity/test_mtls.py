"""Real TLS 1.3 handshakes over 127.0.0.1 between a hub service and a site, and refusals.

The "ledger" server and the "site-a" client are two ssl contexts in this process talking
over a loopback TCP socket; the server runs in a thread.
"""

from __future__ import annotations

import socket
import ssl
import threading
from datetime import UTC, datetime, timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from incisive_node.identity.ca import FederationCA
from incisive_node.identity.csr import Entity, Role, build_csr, generate_key
from incisive_node.identity.mtls import (
    client_context,
    peer_entity,
    reload_credentials,
    server_context,
    write_credentials,
)
from incisive_node.identity.renewal import SiteCredentials, renew

DOMAIN = "incisive.test"
LEDGER_HOST = "ledger.hub.incisive.test"
LEDGER = Entity("ledger", Role.HUB)
SITE_A = Entity("site-a", Role.SITE)


def credentials(ca: FederationCA, entity: Entity, directory):
    key = generate_key()
    issued = ca.issue(build_csr(key, entity.name), entity)
    return write_credentials(directory, key, issued.chain_pem), SiteCredentials(
        key, issued.chain_pem
    )


@pytest.fixture(scope="module")
def ca() -> FederationCA:
    return FederationCA.create(DOMAIN)[0]


@pytest.fixture(scope="module")
def other_ca() -> FederationCA:
    return FederationCA.create(DOMAIN)[0]


@pytest.fixture
def ledger_files(ca, tmp_path):
    return credentials(ca, LEDGER, tmp_path / "ledger")[0]


@pytest.fixture
def site_files(ca, tmp_path):
    return credentials(ca, SITE_A, tmp_path / "site-a")[0]


def exchange(server_ctx: ssl.SSLContext, client_ctx: ssl.SSLContext, hostname=LEDGER_HOST):
    """One connection: client sends b'hello', server answers; each side's outcome."""
    outcome: dict[str, object] = {}
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(5)

    def serve() -> None:
        try:
            conn, _ = listener.accept()
            conn.settimeout(5)
            with server_ctx.wrap_socket(conn, server_side=True) as tls:
                peer = peer_entity(tls)
                tls.sendall(b"echo:" + tls.recv(64))
                outcome["server"] = peer
        except (ssl.SSLError, OSError) as exc:
            outcome["server"] = exc

    thread = threading.Thread(target=serve)
    thread.start()
    try:
        with (
            socket.create_connection(listener.getsockname(), timeout=5) as raw,
            client_ctx.wrap_socket(raw, server_hostname=hostname) as tls,
        ):
            tls.sendall(b"hello")
            # In TLS 1.3 the client learns that its certificate was refused only here.
            reply = tls.recv(64)
            outcome["client"] = (peer_entity(tls), reply, tls.getpeercert(binary_form=True))
    except (ssl.SSLError, OSError) as exc:
        outcome["client"] = exc
    finally:
        thread.join(10)
        listener.close()
    return outcome["server"], outcome["client"]


def test_handshake_between_federation_members(ca, ledger_files, site_files):
    server, client = exchange(
        server_context(ledger_files, ca.trust_anchor_pem),
        client_context(site_files, ca.trust_anchor_pem),
    )
    assert server == SITE_A
    peer, reply, _ = client
    assert peer == LEDGER and reply == b"echo:hello"


def test_client_certificate_from_another_ca_is_refused(ca, other_ca, ledger_files, tmp_path):
    intruder_files = credentials(other_ca, SITE_A, tmp_path / "intruder")[0]
    server, client = exchange(
        server_context(ledger_files, ca.trust_anchor_pem),
        # The intruder trusts our root, so it gets as far as presenting its certificate.
        client_context(intruder_files, ca.trust_anchor_pem),
    )
    assert isinstance(server, ssl.SSLError)
    assert "certificate verify failed" in str(server) or "unknown ca" in str(server).lower()
    assert isinstance(client, ssl.SSLError | OSError) or client[1] == b""


def test_server_certificate_from_another_ca_is_refused(ca, other_ca, site_files, tmp_path):
    impostor_files = credentials(other_ca, LEDGER, tmp_path / "impostor")[0]
    server, client = exchange(
        server_context(impostor_files, other_ca.trust_anchor_pem),
        client_context(site_files, ca.trust_anchor_pem),
    )
    assert isinstance(client, ssl.SSLCertVerificationError)
    assert isinstance(server, ssl.SSLError | OSError)


def test_client_without_a_certificate_is_refused(ca, ledger_files):
    anonymous = ssl.create_default_context(cadata=ca.trust_anchor_pem.decode())
    server, client = exchange(server_context(ledger_files, ca.trust_anchor_pem), anonymous)
    assert isinstance(server, ssl.SSLError)
    assert "certificate" in str(server)
    assert isinstance(client, ssl.SSLError | OSError) or client[1] == b""


def test_server_name_must_match(ca, ledger_files, site_files):
    _, client = exchange(
        server_context(ledger_files, ca.trust_anchor_pem),
        client_context(site_files, ca.trust_anchor_pem),
        hostname="site-b.sites.incisive.test",
    )
    assert isinstance(client, ssl.SSLCertVerificationError)
    assert "mismatch" in client.verify_message or "match" in str(client)


def test_issuing_ca_name_constraints_hold_even_against_its_own_key(ca, site_files, tmp_path):
    # A certificate for a name outside the federation domain, signed with the issuing key
    # directly (as a thief would): the name constraint in the issuing CA makes TLS refuse it.
    key = generate_key()
    now = datetime.now(UTC)
    rogue = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "bank")]))
        .issuer_name(ca.issuing.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=1))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("bank.example")]), False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca.issuing.public_key()), False
        )
        .sign(ca._key, hashes.SHA256())
    )
    chain = rogue.public_bytes(Encoding.PEM) + ca.issuing.public_bytes(Encoding.PEM)
    rogue_files = write_credentials(tmp_path / "rogue", key, chain)
    _, client = exchange(
        server_context(rogue_files, ca.trust_anchor_pem),
        client_context(site_files, ca.trust_anchor_pem),
        hostname="bank.example",
    )
    assert isinstance(client, ssl.SSLCertVerificationError)
    assert client.verify_message == "permitted subtree violation"


def test_renewed_certificate_is_presented_after_reload(ca, tmp_path, site_files):
    ledger_files, current = credentials(ca, LEDGER, tmp_path / "ledger2")
    server_ctx = server_context(ledger_files, ca.trust_anchor_pem)
    client_ctx = client_context(site_files, ca.trust_anchor_pem)
    before = exchange(server_ctx, client_ctx)[1][2]

    renewed = renew(current, lambda csr: ca.renew(csr, current.certificate).chain_pem)
    renewed_files = write_credentials(tmp_path / "ledger2", renewed.key, renewed.chain_pem)
    reload_credentials(server_ctx, renewed_files)
    server, client = exchange(server_ctx, client_ctx)

    assert server == SITE_A
    after = x509.load_der_x509_certificate(client[2])
    assert client[2] != before
    assert after.serial_number == renewed.certificate.serial_number
