"""Fixtures for the ingest and store tests: real PostgreSQL, synthetic DICOM, a store."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from incisive_node.deid import Deidentifier, ProjectKeys
from incisive_node.ingest.pipeline import Pipeline
from incisive_node.store import Store
from tests.ingest import postgres_server


@pytest.fixture(scope="session")
def postgres() -> Iterator[postgres_server.PostgresServer]:
    bin_dir = postgres_server.find_bin_dir()
    if bin_dir is None:
        pytest.skip("PostgreSQL is not installed (Debian package `postgresql`; see .ci/run)")
    server = postgres_server.start(bin_dir)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(params=["sqlite", "postgresql"])
def index_target(request: pytest.FixtureRequest, tmp_path: Path) -> str | Path:
    """Where a fresh, empty index lives: an SQLite file or a new PostgreSQL database."""
    if request.param == "sqlite":
        return tmp_path / "index.sqlite3"
    import psycopg

    server: postgres_server.PostgresServer = request.getfixturevalue("postgres")
    name = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(server.dsn(), autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    return server.dsn(name)


@pytest.fixture
def deidentifier() -> Deidentifier:
    """The real de-identification engine, with a fixed test project key."""
    return Deidentifier(ProjectKeys(project="ingest-tests", secret=b"k" * 32))


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with Store(tmp_path / "store") as opened:
        yield opened


@pytest.fixture
def pipeline(store: Store, deidentifier: Deidentifier) -> Pipeline:
    return Pipeline(store, deidentifier)
