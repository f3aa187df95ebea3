"""The ingest tests' fixtures (real de-identifier, store, PostgreSQL), reused here."""

from tests.ingest.conftest import deidentifier, index_target, postgres, store  # noqa: F401
