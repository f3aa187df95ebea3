"""The ingest tests' fixtures (real de-identifier, store), reused here."""

from tests.ingest.conftest import deidentifier, store  # noqa: F401
