"""The ledger over mutual TLS: `incisive-node ledger serve` and two `incisive-node ledger
witness` processes on loopback, each with a federation certificate the federation CA
(identity/ca.py) issued from its own CSR; the appliance's recorder appends through them from
its environment; the checkpoint is cosigned by both witnesses over mTLS and verifies.

Refused at the handshake: a client with no certificate, one from another CA, an expired one;
refused by the client: a federation member's server certificate that names another service.
The store is SQLite only: what changes here is the transport, which the store never sees.
"""

from __future__ import annotations

import argparse
import http.client
import ssl
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from prometheus_client import CollectorRegistry

from incisive_node.identity.ca import FederationCA
from incisive_node.identity.csr import Entity, Role, build_csr, generate_key
from incisive_node.identity.mtls import (
    CredentialFiles,
    HTTPSConnection,
    client_context,
    write_credentials,
)
from incisive_node.ledger import settings, trust
from incisive_node.ledger.checkpoint import Checkpoint
from incisive_node.ledger.client import LogClient
from incisive_node.ledger.cosignature import CosignatureSigner
from incisive_node.ledger.entries import sign_entry, utc_now
from incisive_node.ledger.merkle import verify_inclusion
from incisive_node.ledger.note import parse, parse_vkey
from incisive_node.ledger.recorder import Recorder, RecorderError, SubmitterIdentity
from incisive_node.ledger.server import serve_witness
from incisive_node.ledger.service import read_key
from incisive_node.ledger.tls import ClientTls, ServerTls, TlsFiles
from incisive_node.ledger.witness import Witness
from incisive_operator import ledger_events, operator_cli
from tests.conftest import TEST_BLOCK

from . import services

DOMAIN = "incisive.test"
# The log, then the two witnesses (both must cosign: the trust file's quorum is 2).
HOSTS = tuple(f"127.{TEST_BLOCK}.12.{n}" for n in (1, 2, 3))
SPARE_HOST = f"127.{TEST_BLOCK}.12.9"
LOG_NAME = f"ledger.hub.{DOMAIN}"
WITNESS_DNS = tuple(f"witness.{site}.sites.{DOMAIN}" for site in ("site-a", "site-b"))


@dataclass
class Pki:
    """The federation CA, and a way to enrol a member: a key made here, a CSR, a chain."""

    folder: Path
    ca: FederationCA
    ca_file: Path

    def enrol(self, entity: Entity, folder: str, dns_names: tuple[str, ...] = (), *,
              ca: FederationCA | None = None, now: datetime | None = None) -> CredentialFiles:
        key = generate_key()
        issued = (ca or self.ca).issue(build_csr(key, entity.name, dns_names), entity, now=now)
        return write_credentials(self.folder / folder, key, issued.chain_pem)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    folder = tmp_path_factory.mktemp("pki")
    ca = FederationCA.create(DOMAIN)[0]
    (folder / "ca.pem").write_bytes(ca.trust_anchor_pem)
    return Pki(folder, ca, folder / "ca.pem")


@pytest.fixture(scope="module")
def ledger(pki: Pki, tmp_path_factory: pytest.TempPathFactory) -> Iterator[services.Ledger]:
    tls = services.Tls(
        ca=pki.ca_file,
        log=pki.enrol(Entity("ledger", Role.HUB), "log"),
        log_name=LOG_NAME,
        witnesses=tuple((pki.enrol(Entity(site, Role.SITE), f"witness-{site}", (dns,)), dns)
                        for site, dns in zip(("site-a", "site-b"), WITNESS_DNS, strict=True)),
        # The appliance of a third site: it records into the log and looks at it.
        client=pki.enrol(Entity("site-c", Role.SITE), "appliance-site-c"),
    )
    folder = tmp_path_factory.mktemp("ledger-mtls")
    running = services.start(folder, str(folder / "log.sqlite"), HOSTS, tls)
    try:
        yield running
    finally:
        running.stop_all()


@pytest.fixture
def appliance_env(ledger: services.Ledger, tmp_path: Path,
                  monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, str]]:
    """This process as an appliance configured the way `incisive-node` commands are: from
    the INCISIVE_LEDGER_* environment, TLS included."""
    key = ledger.new_submitter(f"appliance-{tmp_path.name}")
    env = ledger.env(key, tmp_path / "spool")
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    settings.reset()
    yield env
    settings.reset()


def test_events_appended_over_mtls_are_cosigned_by_both_witnesses_and_verify(
        ledger: services.Ledger, appliance_env: dict[str, str]) -> None:
    recorder = settings.shared()
    assert recorder is not None and recorder.url.startswith("https://")
    hashes = [recorder.record("consent-changed", kind="pseudonym", identifier=f"patient-{n}",
                              purpose="consent-management", content={"decision": n})
              for n in range(3)]
    assert recorder.pending() == 0  # sent at once, over mTLS
    client = ledger.client()
    size = client.find(bytes.fromhex(hashes[-1])) + 1
    note = ledger.wait_for_checkpoint(size)

    policy = trust.load(ledger.trust).policy
    policy.accept(note)  # the log's signature and a quorum of 2: both witnesses cosigned
    cosigners = {s.name for s in parse(note).signatures} - {services.ORIGIN}
    assert cosigners == set(ledger.witness_names)
    checkpoint = Checkpoint.parse(parse(note).text)
    for digest in hashes:
        index = client.find(bytes.fromhex(digest))
        proof_size, proof = client.inclusion_proof(index, checkpoint.size)
        assert verify_inclusion(index, proof_size, bytes.fromhex(digest), proof,
                                checkpoint.root)
    verified = ledger.verify()
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert verified.stdout.startswith("OK")


def failures(registry: CollectorRegistry) -> dict[str, float]:
    """The recorder's append failures by reason (those that happened)."""
    counts = {reason: registry.get_sample_value("incisive_ledger_append_failures_total",
                                                {"reason": reason})
              for reason in ("unreachable", "tls", "refused", "server-error")}
    return {reason: count for reason, count in counts.items() if count}


def _anonymous(ca_file: Path) -> ssl.SSLContext:
    """Trusts the federation CA, presents no certificate."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.minimum_version = ssl.TLSVersion.TLSv1_3
    context.load_verify_locations(cafile=ca_file)
    return context


def _ask(url: str, context: ssl.SSLContext, server_name: str,
         method: str = "GET", path: str = "/checkpoint", body: bytes | None = None) -> int:
    host, port = url.removeprefix("https://").rsplit(":", 1)
    connection = HTTPSConnection(host, int(port), context, server_name, timeout=10)
    try:
        connection.request(method, path, body=body)
        return connection.getresponse().status
    finally:
        connection.close()


@pytest.mark.parametrize(("who", "reason"), [
    ("no-certificate", "PEER_DID_NOT_RETURN_A_CERTIFICATE"),
    ("another-ca", "unable to get local issuer certificate"),
    ("expired", "certificate has expired")])
def test_a_client_without_a_valid_federation_certificate_is_refused_at_the_handshake(
        who: str, reason: str, ledger: services.Ledger, pki: Pki) -> None:
    if who == "no-certificate":
        context = _anonymous(pki.ca_file)
    else:
        # The intruder trusts our CA, so it gets as far as presenting its certificate.
        files = (pki.enrol(Entity("site-c", Role.SITE), "intruder",
                           ca=FederationCA.create(DOMAIN)[0]) if who == "another-ca"
                 else pki.enrol(Entity("site-c", Role.SITE), "lapsed",
                                now=datetime.now(UTC) - timedelta(days=8)))
        context = client_context(files, pki.ca_file.read_bytes())
    key = ledger.new_submitter(f"submitter-{who}")  # trusted: only TLS stands in the way
    leaf = _signed_leaf(key)
    before = len(ledger.leaves())
    logged = (ledger.folder / "log.log").read_text().count(f"TLS connection refused: {reason}")
    targets = [(ledger.log_url, LOG_NAME, "POST", "/add-entry", leaf),
               *[(url, dns, "GET", "/healthz", None)
                 for url, dns in zip(ledger.witness_urls.values(), WITNESS_DNS, strict=True)]]
    for url, name, method, path, body in targets:
        # TLS 1.3: the client finishes first and learns of the refusal on its first read.
        with pytest.raises((ssl.SSLError, ConnectionError)):
            _ask(url, context, name, method, path, body)
    assert len(ledger.leaves()) == before
    # The log says why, in OpenSSL's words (the handshake ends in the request's thread).
    deadline = time.monotonic() + 10
    while (ledger.folder / "log.log").read_text().count(
            f"TLS connection refused: {reason}") == logged:
        assert time.monotonic() < deadline, (ledger.folder / "log.log").read_text()[-2000:]
        time.sleep(0.05)


def _signed_leaf(key: Path) -> bytes:
    identity = SubmitterIdentity.load(key)
    entry = {"v": 1, "event": "hpc-run", "actor": identity.actor, "object": "a" * 64,
             "content": "b" * 64, "purpose": "research", "time": utc_now()}
    return sign_entry(entry, identity.key).leaf()


def test_a_server_certificate_for_another_service_is_refused_by_the_client(
        ledger: services.Ledger, pki: Pki, tmp_path: Path) -> None:
    """A witness is a federation member with a valid certificate, but it is not the log: a
    recorder pointed at it (a wrong address, or an impostor) must not hand it entries."""
    assert ledger.tls is not None
    witness_url = next(iter(ledger.witness_urls.values()))
    impostor = LogClient(witness_url, tls=ledger.tls.client_tls(LOG_NAME))
    with pytest.raises(ssl.SSLCertVerificationError) as refused:
        impostor.checkpoint()
    assert "Hostname mismatch" in refused.value.verify_message

    key = ledger.new_submitter("misdirected")
    files = TlsFiles(ledger.tls.client.chain, ledger.tls.client.key, pki.ca_file)
    registry = CollectorRegistry()
    recorder = Recorder(witness_url, SubmitterIdentity.load(key), tmp_path / "spool",
                        registry=registry, tls=ClientTls(files, LOG_NAME))
    recorder.record("hpc-run", kind="hpcworkload", identifier="ns/run/1", purpose="research",
                    content=b"started")
    assert recorder.pending() == 1  # kept for the real log
    assert failures(registry) == {"tls": 1.0}


def test_a_renewed_client_certificate_is_presented_without_a_restart(
        ledger: services.Ledger, pki: Pki, tmp_path: Path) -> None:
    """Certificates live 7 days: a long-running recorder whose certificate lapsed keeps its
    entries, and sends them once renewal rewrote the files in place."""
    lapsed = pki.enrol(Entity("site-c", Role.SITE), f"renewing-{tmp_path.name}",
                       now=datetime.now(UTC) - timedelta(days=8))
    key = ledger.new_submitter("renewing")
    registry = CollectorRegistry()
    recorder = Recorder(ledger.log_url, SubmitterIdentity.load(key), tmp_path / "spool",
                        registry=registry,
                        tls=ClientTls(TlsFiles(lapsed.chain, lapsed.key, pki.ca_file),
                                      LOG_NAME))
    digest = recorder.record("hpc-run", kind="hpcworkload", identifier="ns/run/2",
                             purpose="research", content=b"started")
    assert recorder.pending() == 1
    # The server's refusal reaches a TLS 1.3 client as an alert on its first read, or as a
    # reset when the connection closes first: either way not a 403, and nothing is lost.
    assert set(failures(registry)) <= {"tls", "unreachable"}
    assert sum(failures(registry).values()) == 1
    time.sleep(0.01)  # a distinct modification time, whatever the file system's resolution
    renewed = pki.enrol(Entity("site-c", Role.SITE), f"renewing-{tmp_path.name}")
    assert renewed == lapsed  # the same files, rewritten
    assert recorder.flush() == 1
    assert ledger.client().find(bytes.fromhex(digest)) is not None


def test_a_service_presents_its_renewed_certificate_without_a_restart(
        pki: Pki, tmp_path: Path) -> None:
    files = pki.enrol(Entity("site-a", Role.SITE), "reloading", (WITNESS_DNS[0],))
    ca = pki.ca_file
    witness_key = tmp_path / "witness.pem"
    services.keygen("witness", witness_key, services.WITNESS_NAMES[0])
    log_vkey = services.keygen("log", tmp_path / "log.pem", services.ORIGIN)["vkey"]
    witness = Witness(CosignatureSigner(services.WITNESS_NAMES[0], read_key(witness_key)),
                      [parse_vkey(log_vkey)], tmp_path / "witness.sqlite")
    server = serve_witness(witness, SPARE_HOST, tls=ServerTls(TlsFiles(files.chain,
                                                                       files.key, ca))).start()
    client = pki.enrol(Entity("site-c", Role.SITE), "reloading-client")
    context = client_context(client, ca.read_bytes())

    def served_serial() -> int:
        host, port = server.url.removeprefix("https://").rsplit(":", 1)
        connection = HTTPSConnection(host, int(port), context, WITNESS_DNS[0], timeout=10)
        try:
            connection.request("GET", "/checkpoint")  # any answer: a witness has no such page
            assert connection.getresponse().status == 404
            der = connection.sock.getpeercert(binary_form=True)
        finally:
            connection.close()
        return x509.load_der_x509_certificate(der).serial_number

    try:
        first = served_serial()
        time.sleep(0.01)
        pki.enrol(Entity("site-a", Role.SITE), "reloading", (WITNESS_DNS[0],))
        renewed = x509.load_pem_x509_certificate(files.chain.read_bytes()).serial_number
        assert renewed != first
        assert served_serial() == renewed
    finally:
        server.stop()
        witness.close()


# -- configuration that cannot work is refused before anything starts ------------------------
def test_an_https_ledger_url_without_tls_settings_is_an_error(tmp_path: Path,
                                                              pki: Pki) -> None:
    key = tmp_path / "submitter.pem"
    services.keygen("submitter", key)
    spool = tmp_path / "spool"
    with pytest.raises(RecorderError) as missing:
        settings.build("https://ledger.hub.incisive.test:8700", key, spool=spool)
    assert "INCISIVE_LEDGER_TLS_CA" in str(missing.value)
    assert "--ledger-tls-ca" in str(missing.value)
    files = pki.enrol(Entity("site-c", Role.SITE), "config")
    with pytest.raises(RecorderError) as no_ca:
        settings.build("https://ledger.hub.incisive.test:8700", key, spool=spool,
                       tls_cert=files.chain, tls_key=files.key)
    assert "INCISIVE_LEDGER_TLS_CA missing" in str(no_ca.value)
    with pytest.raises(RecorderError) as plain:
        settings.build("http://127.0.0.1:8700", key, spool=spool, tls_cert=files.chain,
                       tls_key=files.key, tls_ca=pki.ca_file)
    assert "not https://" in str(plain.value)
    # The operator's flags default to the same variables, and configure() builds the same way.
    with pytest.raises(RecorderError):
        ledger_events.configure("https://ledger.hub.incisive.test:8700", key, spool=spool,
                                tls_ca=pki.ca_file, start=False)
    parser = argparse.ArgumentParser()
    operator_cli.register(parser.add_subparsers())
    args = parser.parse_args(["operator", "run", "--mode", "hub", "--ledger-tls-ca", "ca.pem",
                              "--ledger-tls-server-name", LOG_NAME])
    assert (args.ledger_tls_ca, args.ledger_tls_server_name) == ("ca.pem", LOG_NAME)
    recorder = settings.build("https://127.0.0.1:8700", key, spool=spool,
                              tls_cert=files.chain, tls_key=files.key, tls_ca=pki.ca_file,
                              tls_server_name=LOG_NAME)
    assert recorder is not None and recorder.client.tls is not None


def test_the_services_refuse_plain_http_off_loopback_and_half_tls(
        ledger: services.Ledger, tmp_path: Path) -> None:
    witness = [*services.NODE_CLI, "ledger", "witness", "--key",
               str(ledger.folder / "witness-0.pem"), "--name", ledger.witness_names[0],
               "--log", ledger.log_vkey, "--db", str(tmp_path / "w.sqlite"), "--port", "0"]
    off_loopback = subprocess.run([*witness, "--host", "0.0.0.0"], capture_output=True,  # noqa: S104 - refused
                                  text=True, timeout=60)
    assert off_loopback.returncode == 2
    assert "plain HTTP is for loopback testbeds only" in off_loopback.stderr
    assert ledger.tls is not None
    half = subprocess.run([*witness, "--host", SPARE_HOST, "--tls-cert",
                           str(ledger.tls.log.chain)], capture_output=True, text=True,
                          timeout=60)
    assert half.returncode == 2 and "--tls-key, --tls-ca missing" in half.stderr
    serve = subprocess.run([*services.NODE_CLI, "ledger", "serve", "--store",
                            str(tmp_path / "x.sqlite"), "--key", str(ledger.folder / "log.pem"),
                            "--trust", str(ledger.trust), "--host", SPARE_HOST, "--port", "0",
                            *[arg for name in ledger.witness_names for arg in (
                                "--witness-url", f"{name}=https://{SPARE_HOST}:1")]],
                           capture_output=True, text=True, timeout=60)
    assert serve.returncode == 2 and "is https: give --tls-ca" in serve.stderr


def test_plain_http_clients_cannot_talk_to_an_mtls_log(ledger: services.Ledger) -> None:
    plain_url = ledger.log_url.replace("https://", "http://")
    host, port = plain_url.removeprefix("http://").rsplit(":", 1)
    connection = http.client.HTTPConnection(host, int(port), timeout=10)
    try:
        with pytest.raises((http.client.HTTPException, ConnectionError)):
            connection.request("GET", "/checkpoint")
            connection.getresponse()
    finally:
        connection.close()
