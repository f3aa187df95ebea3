"""A log and three witnesses, each a real HTTP server on loopback (threads of this process);
the log's store is an SQLite file or a real PostgreSQL database (every test runs on both).

The witnesses are the federation's sites; the policy is 2 of 3. The log's checkpoints
travel over HTTP exactly as c2sp.org/tlog-witness describes, including the 409 and 422
refusals, and a log that shows two histories (a split view) is refused and recorded.
"""

from __future__ import annotations

import base64
import http.client
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from incisive_node.ledger.checkpoint import Checkpoint
from incisive_node.ledger.client import HttpWitness, LogClient, LogClientError
from incisive_node.ledger.cosignature import CosignatureSigner
from incisive_node.ledger.entries import Submitters
from incisive_node.ledger.log import Log
from incisive_node.ledger.merkle import leaf_hash, verify_consistency, verify_inclusion
from incisive_node.ledger.note import Ed25519Signer, parse, sign
from incisive_node.ledger.policy import PolicyError, WitnessPolicy
from incisive_node.ledger.server import Server, serve_log, serve_witness
from incisive_node.ledger.store import MemoryStore, open_store
from incisive_node.ledger.witness import SIZE_CONTENT_TYPE, Witness, encode_request

from .conftest import LOG_HOST, WITNESS_HOSTS


@dataclass
class Federation:
    log: Log
    log_server: Server
    witnesses: list[Witness]
    witness_servers: list[Server]
    policy: WitnessPolicy
    endpoints: list[HttpWitness]


def post(url: str, path: str, body: bytes) -> tuple[int, str, bytes]:
    parts = urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=5)
    try:
        connection.request("POST", path, body=body)
        reply = connection.getresponse()
        return reply.status, reply.getheader("Content-Type", ""), reply.read()
    finally:
        connection.close()


@pytest.fixture
def federation(tmp_path: Path, store_target: str, log_signer: Ed25519Signer,
               submitters: Submitters,
               witness_signers: list[CosignatureSigner]) -> Iterator[Federation]:
    witnesses = [Witness(signer, [log_signer.verifier], tmp_path / f"witness-{i}.sqlite")
                 for i, signer in enumerate(witness_signers)]
    servers = [serve_witness(w, host).start()
               for w, host in zip(witnesses, WITNESS_HOSTS, strict=True)]
    endpoints = [HttpWitness(w.signer.name, s.url) for w, s in zip(witnesses, servers,
                                                                    strict=True)]
    policy = WitnessPolicy(log_signer.verifier, tuple(w.verifier for w in witnesses), 2)
    log = Log(open_store(store_target), log_signer, submitters,
              witnesses=endpoints, policy=policy)
    log_server = serve_log(log, LOG_HOST).start()
    try:
        yield Federation(log, log_server, witnesses, servers, policy, endpoints)
    finally:
        log_server.stop()
        for server in servers:
            server.stop()
        for witness in witnesses:
            witness.close()
        log.store.close()


def test_entries_over_http_checkpoint_cosigned_by_every_witness(
        federation: Federation, make_entry: Callable) -> None:
    client = LogClient(federation.log_server.url)
    added = [client.add_entry(make_entry()) for _ in range(5)]
    assert [a["index"] for a in added] == [0, 1, 2, 3, 4]
    first = federation.log.publish()
    checkpoint, cosigners = federation.policy.accept(first)
    assert checkpoint.size == 5
    assert cosigners == sorted(w.signer.name for w in federation.witnesses)
    assert client.checkpoint() == first
    for witness in federation.witnesses:
        assert witness.latest(checkpoint.origin) == (5, checkpoint.root)

    for _ in range(4):
        client.add_entry(make_entry())
    second, _ = federation.policy.accept(federation.log.publish())
    assert second.size == 9
    proof = client.consistency_proof(5, 9)
    assert verify_consistency(5, 9, checkpoint.root, second.root, proof)
    size, inclusion = client.inclusion_proof(3, 9)
    assert size == 9
    assert verify_inclusion(3, 9, bytes.fromhex(added[3]["leaf_hash"]), inclusion, second.root)


def test_add_entry_rejections_over_http(federation: Federation, make_entry: Callable,
                                        submitters: Submitters) -> None:
    client = LogClient(federation.log_server.url)
    leaf = make_entry().leaf()
    with pytest.raises(LogClientError) as caught:
        client.add_entry(leaf.replace(b'"purpose":"research"',
                                      b'"patient":"Maria Rossi","purpose":"research"'))
    assert caught.value.status == 400
    assert "Maria" not in str(caught.value)
    stranger = make_entry(actor="cd" * 32)
    with pytest.raises(LogClientError) as caught:
        client.add_entry(stranger)
    assert caught.value.status == 403
    tampered = leaf.replace(b'"purpose":"research"', b'"purpose":"ai-training"')
    with pytest.raises(LogClientError) as caught:
        client.add_entry(tampered)
    assert caught.value.status == 403
    assert federation.log.size == 0


def _request_for(log: Log, old: int) -> bytes:
    _, note = log.sign_checkpoint()
    return encode_request(old, log.consistency_proof(old, log.size), note.encode())


def test_409_when_the_old_size_is_not_the_witness_latest(
        federation: Federation, make_entry: Callable, log_signer: Ed25519Signer,
        submitters: Submitters) -> None:
    log = federation.log
    log.append_batch([make_entry() for _ in range(5)])
    log.publish()
    log.append_batch([make_entry() for _ in range(3)])
    url = federation.witness_servers[0].url
    status, content_type, body = post(url, "/add-checkpoint", _request_for(log, 0))
    assert (status, content_type, body) == (409, SIZE_CONTENT_TYPE, b"5\n")
    status, _, body = post(url, "/add-checkpoint", _request_for(log, 2))
    assert (status, body) == (409, b"5\n")
    # A log that lost track of the witnesses learns their size from the 409 and succeeds.
    restarted = Log(log.store, log_signer, submitters, witnesses=federation.endpoints,
                    policy=federation.policy)
    checkpoint, cosigners = federation.policy.accept(restarted.publish())
    assert checkpoint.size == 8 and len(cosigners) == 3


def test_422_when_the_consistency_proof_does_not_verify(
        federation: Federation, make_entry: Callable) -> None:
    log = federation.log
    log.append_batch([make_entry() for _ in range(6)])
    log.publish()
    log.append_batch([make_entry() for _ in range(5)])
    _, note = log.sign_checkpoint()
    proof = log.consistency_proof(6, 11)
    for bad in ([proof[0][:-1] + bytes([proof[0][-1] ^ 1]), *proof[1:]], proof[:-1],
                [*proof, proof[0]], proof[::-1]):
        status, _, _ = post(federation.witness_servers[1].url, "/add-checkpoint",
                            encode_request(6, bad, note.encode()))
        assert status == 422
    witness = federation.witnesses[1]
    assert witness.latest(log.origin)[0] == 6
    assert len(witness.conflicts()) == 4
    assert all("no consistency from 6 to 11" in c.reason for c in witness.conflicts())
    status, _, _ = post(federation.witness_servers[1].url, "/add-checkpoint",
                        encode_request(6, proof, note.encode()))
    assert status == 200


def test_split_view_is_caught_by_the_witnesses(
        federation: Federation, make_entry: Callable, log_signer: Ed25519Signer,
        submitters: Submitters) -> None:
    honest = federation.log
    honest.append_batch([make_entry() for _ in range(4)])
    published, _ = federation.policy.accept(honest.publish())
    # The same log key signs a second history of the same size: a split view.
    fork = Log(MemoryStore(), log_signer, submitters, witnesses=federation.endpoints,
               policy=federation.policy)
    fork.append_batch([make_entry(purpose="audit") for _ in range(4)])
    forked, note = fork.sign_checkpoint()
    assert forked.size == published.size and forked.root != published.root
    for server, witness in zip(federation.witness_servers, federation.witnesses, strict=True):
        status, content_type, body = post(server.url, "/add-checkpoint",
                                          encode_request(4, [], note.encode()))
        assert (status, content_type, body) == (409, SIZE_CONTENT_TYPE, b"4\n")
        assert witness.latest(published.origin) == (4, published.root)
        assert "split view" in witness.conflicts()[-1].reason
        assert Checkpoint.parse(parse(witness.conflicts()[-1].note).text) == forked
    with pytest.raises(PolicyError, match="0 of the required 2"):
        fork.publish()
    # A longer fork cannot be proven consistent with what the witnesses hold: 422.
    fork.append_batch([make_entry() for _ in range(3)])
    _, longer = fork.sign_checkpoint()
    status, _, _ = post(federation.witness_servers[0].url, "/add-checkpoint",
                        encode_request(4, fork.consistency_proof(4, 7), longer.encode()))
    assert status == 422
    with pytest.raises(PolicyError):
        fork.publish()
    assert fork.store.latest_checkpoint() is None


def test_unknown_log_forged_signature_and_bad_requests(
        federation: Federation, make_entry: Callable, log_signer: Ed25519Signer) -> None:
    log = federation.log
    log.append_batch([make_entry() for _ in range(2)])
    checkpoint, _ = log.sign_checkpoint()
    url = federation.witness_servers[2].url
    other_log = Ed25519Signer.generate("elsewhere.example/log")
    foreign = Checkpoint("elsewhere.example/log", 2, checkpoint.root)
    assert post(url, "/add-checkpoint",
                encode_request(0, [], sign(foreign.body(), other_log).encode()))[0] == 404
    impostor = Ed25519Signer.generate(log_signer.name)
    assert post(url, "/add-checkpoint",
                encode_request(0, [], sign(checkpoint.body(), impostor).encode()))[0] == 403
    honest = sign(checkpoint.body(), log_signer).encode()
    assert post(url, "/add-checkpoint", encode_request(3, [], honest))[0] == 400
    assert post(url, "/add-checkpoint", b"old 01\n\n" + honest)[0] == 400
    assert post(url, "/add-checkpoint", b"garbage")[0] == 400
    assert post(url, "/add-checkpoint",
                encode_request(0, [leaf_hash(b"x")], honest))[0] == 422
    assert federation.witnesses[2].latest(log.origin) is None
    status, _, body = post(url, "/add-checkpoint", encode_request(0, [], honest))
    assert status == 200
    line = body.decode()
    assert line.startswith(f"\u2014 {federation.witnesses[2].signer.name} ")
    assert len(base64.b64decode(line.split(" ")[-1])) == 4 + 8 + 64


def test_quorum_survives_one_witness_down_but_not_two(
        federation: Federation, make_entry: Callable) -> None:
    log = federation.log
    log.append_batch([make_entry() for _ in range(3)])
    log.publish()
    federation.witness_servers[0].stop()
    log.append(make_entry())
    checkpoint, cosigners = federation.policy.accept(log.publish())
    assert checkpoint.size == 4 and len(cosigners) == 2
    federation.witness_servers[1].stop()
    log.append(make_entry())
    with pytest.raises(PolicyError, match="1 of the required 2"):
        log.publish()
    assert log.store.latest_checkpoint()[0] == 4
    # Stopped servers must not be stopped twice by the fixture.
    federation.witness_servers = federation.witness_servers[2:]
