"""The donor API on the real appliance HTTP server: a donor sees and changes their own
consent with a pseudonymous token; tokens are stored hashed and can be revoked."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import requests

from incisive_node.consent import (
    FEDERATED_TRAINING,
    PERMIT,
    ConsentRegistry,
    DonorTokens,
    SitePolicy,
    permits,
)
from incisive_node.consent.donor_api import DonorApi
from incisive_node.ingest.http_server import IngestHttpServer
from incisive_node.ingest.pipeline import Pipeline
from incisive_node.store import Store
from tests.consent.helpers import patients


@pytest.fixture
def donor(store: Store, deidentifier) -> Iterator[tuple[str, ConsentRegistry, DonorTokens, list]]:
    people = patients(store, deidentifier)
    registry = ConsentRegistry(store.index, SitePolicy({FEDERATED_TRAINING: PERMIT}))
    tokens = DonorTokens(store.index)
    server = IngestHttpServer(Pipeline(store, deidentifier), port=0,
                              apps=[DonorApi(registry, tokens)])
    server.start()
    try:
        yield server.url, registry, tokens, people
    finally:
        server.stop()


def _auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_a_donor_sees_and_changes_their_consent(donor, store: Store) -> None:
    url, registry, tokens, (a, b, _) = donor
    token = tokens.issue(a)
    assert token not in str(store.index.read("SELECT * FROM donor_tokens"))
    seen = requests.get(f"{url}/donor/consent", headers=_auth(token), timeout=10)
    assert seen.status_code == 200
    assert seen.json()["decisions"] == [{"purpose": FEDERATED_TRAINING, "decision": "permit",
                                        "source": "site-default", "grantee": "*", "end": None}]
    assert a not in seen.text
    changed = requests.put(f"{url}/donor/consent/central-hpc", json={"decision": "permit"},
                           headers=_auth(token), timeout=10)
    assert changed.status_code == 200
    assert permits(registry, a, "central-hpc", "hpc")
    withdrawn = requests.delete(f"{url}/donor/consent/{FEDERATED_TRAINING}",
                                headers=_auth(token), timeout=10)
    assert withdrawn.status_code == 200
    assert not permits(registry, a, FEDERATED_TRAINING, "hub")
    assert permits(registry, b, FEDERATED_TRAINING, "hub")  # only their own
    assert registry.records(a)[-1].source == "donor"
    bad = requests.put(f"{url}/donor/consent/marketing", json={"decision": "permit"},
                       headers=_auth(token), timeout=10)
    assert bad.status_code == 400


def test_tokens_are_required_and_revocable(donor) -> None:
    url, _, tokens, (a, _, _) = donor
    assert requests.get(f"{url}/donor/consent", timeout=10).status_code == 401
    assert requests.get(f"{url}/donor/consent", headers=_auth("idt_guess"),
                        timeout=10).status_code == 401
    token = tokens.issue(a)
    assert requests.delete(f"{url}/donor/token", headers=_auth(token), timeout=10
                           ).status_code == 204
    assert requests.get(f"{url}/donor/consent", headers=_auth(token), timeout=10
                        ).status_code == 401
    other = tokens.issue(a)
    tokens.revoke_all(a)
    assert tokens.resolve(other) is None
