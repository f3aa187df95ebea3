"""The log over its stores (SQLite, PostgreSQL, memory): restarts, all-or-nothing batches,
the HTTP read endpoints."""

from __future__ import annotations

import http.client
import json
import time
from collections.abc import Callable
from urllib.parse import urlsplit

import pytest

from incisive_node.ledger.entries import EntryError, Submitters
from incisive_node.ledger.log import Log
from incisive_node.ledger.merkle import Tree
from incisive_node.ledger.note import Ed25519Signer
from incisive_node.ledger.policy import WitnessPolicy
from incisive_node.ledger.server import Publisher, serve_log
from incisive_node.ledger.store import MemoryStore, StoreError, open_store
from incisive_node.ledger.witness import Response

from .conftest import LOG_HOST


def test_a_reopened_log_continues_the_same_tree(store_target: str, log_signer: Ed25519Signer,
                                                submitters: Submitters,
                                                make_entry: Callable) -> None:
    entries = [make_entry() for _ in range(23)]
    log = Log(open_store(store_target), log_signer, submitters)
    log.append_batch(entries[:13])
    root13 = log.root()
    log.store.close()
    again = Log(open_store(store_target), log_signer, submitters)
    assert again.size == 13 and again.root() == root13
    again.append_batch(entries[13:])
    expected = Tree.from_leaf_hashes([e.leaf_hash() for e in entries])
    assert again.root() == expected.root()
    assert again.consistency_proof(13) == expected.consistency_proof(13)
    assert again.leaf(5) == entries[5].leaf()
    again.store.close()


def test_one_bad_entry_rejects_the_whole_batch(log_signer: Ed25519Signer,
                                               submitters: Submitters,
                                               make_entry: Callable) -> None:
    log = Log(MemoryStore(), log_signer, submitters)
    log.append(make_entry())
    good, bad = make_entry().leaf(), make_entry().leaf().replace(b'"v":1', b'"v":2')
    with pytest.raises(EntryError):
        log.append_batch([good, bad])
    assert log.size == 1 and log.store.size() == 1


@pytest.mark.parametrize("kind", ["memory", "file-or-server"])
def test_a_failed_store_write_leaves_the_tree_as_it_was(
        kind: str, store_target: str, log_signer: Ed25519Signer, submitters: Submitters,
        make_entry: Callable) -> None:
    store = MemoryStore() if kind == "memory" else open_store(store_target)
    log = Log(store, log_signer, submitters)
    log.append_batch([make_entry() for _ in range(3)])
    before = log.root()
    # Someone else wrote to the store behind the log's back (another log process on the same
    # database): the append must not go ahead.
    other = open_store(store_target) if kind != "memory" else store
    other.append(3, [make_entry().leaf()], [])
    with pytest.raises(StoreError, match="append at 3 but the store holds 4"):
        log.append(make_entry())
    assert log.size == 3 and log.root() == before
    assert store.size() == 4
    store.close()
    other.close()


def get(url: str, path: str) -> tuple[int, bytes]:
    parts = urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=5)
    try:
        connection.request("GET", path)
        reply = connection.getresponse()
        return reply.status, reply.read()
    finally:
        connection.close()


def test_read_endpoints_and_the_publisher(log_signer: Ed25519Signer, submitters: Submitters,
                                          make_entry: Callable) -> None:
    log = Log(MemoryStore(), log_signer, submitters,
              policy=WitnessPolicy(log_signer.verifier))
    publisher = Publisher(log, interval=0.02)
    try:
        with serve_log(log, LOG_HOST) as server:
            # Before the publisher's first tick (it checkpoints even the empty tree).
            assert get(server.url, "/checkpoint")[0] == 404
            publisher.start()
            leaves = [make_entry().leaf() for _ in range(3)]
            log.append_batch(leaves)
            deadline = time.monotonic() + 5
            while log.store.latest_checkpoint() is None and time.monotonic() < deadline:
                time.sleep(0.02)
            status, note = get(server.url, "/checkpoint")
            assert status == 200 and b"\n3\n" in note
            status, body = get(server.url, "/entries?start=1&count=5")
            rows = json.loads(body)
            assert [r["index"] for r in rows] == [1, 2]
            assert rows[0]["leaf"] == json.loads(leaves[1])
            digest = log.leaf_hash(2).hex()
            status, body = get(server.url, f"/proof/inclusion?hash={digest}")
            assert status == 200 and json.loads(body)["index"] == 2
            for bad in ("/proof/inclusion?index=9", "/proof/consistency?old=5",
                        "/proof/inclusion?index=x"):
                assert get(server.url, bad)[0] == 400
            assert get(server.url, "/nowhere")[0] == 404
    finally:
        publisher.stop()
    assert not publisher.errors


def test_the_publisher_does_not_skip_entries_that_arrive_while_it_publishes(
        log_signer: Ed25519Signer, submitters: Submitters, make_entry: Callable) -> None:
    log = Log(MemoryStore(), log_signer, submitters, policy=WitnessPolicy(log_signer.verifier))
    late = [make_entry()]

    class SlowWitness:
        """Answers (with an error) only after another entry reached the log."""

        name = "slow.incisive.test/witness"

        def submit(self, body: bytes) -> Response:
            if late:
                log.append(late.pop())
            return Response(503, b"busy\n")

    log.witnesses = [SlowWitness()]
    publisher = Publisher(log, interval=60)
    log.append(make_entry())
    assert publisher.publish_if_grown()
    assert log.store.latest_checkpoint()[0] == 1 and log.size == 2
    assert publisher.publish_if_grown()
    assert log.store.latest_checkpoint()[0] == 2
