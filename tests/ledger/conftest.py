"""Keys and entries for the ledger tests: real Ed25519 keys, schema-valid commitments."""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Callable

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from incisive_node.ledger.cosignature import CosignatureSigner
from incisive_node.ledger.entries import SignedEntry, Submitters, keyed_object_id, sign_entry
from incisive_node.ledger.note import Ed25519Signer

ORIGIN = "hub.incisive.test/ledger"
OBJECT_KEY = hashlib.sha256(b"site-a object id key (test only)").digest()


@pytest.fixture
def submitter_key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


@pytest.fixture
def submitters(submitter_key: Ed25519PrivateKey) -> Submitters:
    registry = Submitters()
    registry.add_key(submitter_key.public_key())
    return registry


@pytest.fixture
def make_entry(submitter_key: Ed25519PrivateKey,
               submitters: Submitters) -> Callable[..., SignedEntry]:
    actor = submitters.items()[0][0]
    counter = itertools.count()

    def make(**override: object) -> SignedEntry:
        n = next(counter)
        entry = {
            "v": 1,
            "event": "dataset-registered",
            "actor": actor,
            "object": keyed_object_id(OBJECT_KEY, "dataset", f"dataset-{n}"),
            "content": hashlib.sha256(f"manifest {n}".encode()).hexdigest(),
            "purpose": "research",
            "time": f"2025-03-01T12:{n // 60 % 60:02d}:{n % 60:02d}Z",
        }
        entry.update(override)
        return sign_entry(entry, submitter_key)

    return make


@pytest.fixture
def log_signer() -> Ed25519Signer:
    return Ed25519Signer.generate(ORIGIN)


@pytest.fixture
def witness_signers() -> list[CosignatureSigner]:
    return [CosignatureSigner.generate(f"site-{name}.incisive.test/witness")
            for name in ("a", "b", "c")]
