"""Keys and entries for the ledger tests: real Ed25519 keys, schema-valid commitments; and
where a log keeps its rows: an SQLite file, or a database on a real PostgreSQL server.

Servers the tests start listen on this session's loopback block (127.<block>.*).
"""

from __future__ import annotations

import hashlib
import itertools
import sqlite3
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from incisive_node.ledger.cosignature import CosignatureSigner
from incisive_node.ledger.entries import SignedEntry, Submitters, keyed_object_id, sign_entry
from incisive_node.ledger.note import Ed25519Signer
from incisive_node.ledger.postgres import is_postgres_target
from tests.conftest import TEST_BLOCK
from tests.ingest import postgres_server

ORIGIN = "hub.incisive.test/ledger"
OBJECT_KEY = hashlib.sha256(b"site-a object id key (test only)").digest()
# Where this session's ledger servers listen: the log, three witnesses, PostgreSQL.
LOG_HOST = f"127.{TEST_BLOCK}.7.1"
WITNESS_HOSTS = tuple(f"127.{TEST_BLOCK}.7.{n}" for n in (2, 3, 4))
POSTGRES_HOST = f"127.{TEST_BLOCK}.7.10"


@pytest.fixture(scope="session")
def postgres() -> Iterator[postgres_server.PostgresServer]:
    bin_dir = postgres_server.find_bin_dir()
    if bin_dir is None:
        pytest.skip("PostgreSQL is not installed (Debian package `postgresql`; see .ci/run)")
    server = postgres_server.start(bin_dir, host=POSTGRES_HOST)
    try:
        yield server
    finally:
        server.stop()


def new_database(server: postgres_server.PostgresServer) -> str:
    import psycopg

    name = f"ledger_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(server.dsn(), autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    return server.dsn(name)


@pytest.fixture(params=["sqlite", "postgresql"])
def store_target(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Where a fresh, empty log store lives: an SQLite file or a new PostgreSQL database."""
    if request.param == "sqlite":
        return str(tmp_path / "ledger.sqlite")
    return new_database(request.getfixturevalue("postgres"))


def run_sql(target: str, statement: str, *params: object) -> list[tuple]:
    """Run one statement (written with `?` placeholders) behind the log's back, as an
    insider with database access would."""
    if is_postgres_target(target):
        import psycopg

        with psycopg.connect(target, autocommit=True) as db:
            cursor = db.execute(statement.replace("?", "%s"), params)
            return cursor.fetchall() if cursor.description else []
    with sqlite3.connect(target) as db:
        return db.execute(statement, params).fetchall()


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
