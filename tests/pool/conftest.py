"""A federation CA, a real pool server (mutual TLS) on this session's loopback block, and a
site store filled through the real pipeline and curator.

What stands in for what: the hub's pool runs in this process on 127.<block>.5.1 (in a
deployment it is the hub's appliance pod); a site is a store on disk plus its federation
certificate (in a deployment, the site appliance's volume and its enrolment credentials).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from incisive_node.consent import ConsentRegistry
from incisive_node.curation import Curator
from incisive_node.identity.ca import FederationCA
from incisive_node.identity.csr import Entity, Role, build_csr, generate_key
from incisive_node.identity.mtls import CredentialFiles, server_context, write_credentials
from incisive_node.ingest.pipeline import Pipeline
from incisive_node.pool.client import PoolClient, tls_context
from incisive_node.pool.holdings import PoolHoldings
from incisive_node.pool.server import PoolServer
from incisive_node.store import Store
from tests.conftest import TEST_BLOCK
from tests.curation import samples
from tests.ingest.conftest import deidentifier  # noqa: F401
from tests.ingest.ports import free_port

DOMAIN = "incisive.test"
POOL_HOST = f"127.{TEST_BLOCK}.5.1"
POOL_NAME = f"pool.hub.{DOMAIN}"


@dataclass(frozen=True)
class Member:
    entity: Entity
    files: CredentialFiles
    trust_anchor: Path

    def client(self, url: str) -> PoolClient:
        return PoolClient(url, tls_context(self.files.chain, self.files.key, self.trust_anchor),
                          server_name=POOL_NAME)

    def cli_arguments(self, url: str) -> list[str]:
        return ["--pool-url", url, "--pool-cert", str(self.files.chain), "--pool-key",
                str(self.files.key), "--pool-trust-anchor", str(self.trust_anchor),
                "--pool-server-name", POOL_NAME]


class Federation:
    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.ca = FederationCA.create(DOMAIN)[0]
        self.trust_anchor = folder / "root.pem"
        self.trust_anchor.write_bytes(self.ca.trust_anchor_pem)

    def member(self, name: str, role: Role, ca: FederationCA | None = None) -> Member:
        key = generate_key()
        entity = Entity(name, role)
        issued = (ca or self.ca).issue(build_csr(key, name), entity)
        files = write_credentials(self.folder / f"{name}-{role.value}", key, issued.chain_pem)
        return Member(entity, files, self.trust_anchor)


@pytest.fixture(scope="module")
def federation(tmp_path_factory: pytest.TempPathFactory) -> Federation:
    return Federation(tmp_path_factory.mktemp("federation"))


class Pool:
    """The hub's pool: a store, its holdings and the server; stop() and start() again on the
    same port stand in for the hub going down and coming back."""

    def __init__(self, root: Path, member: Member) -> None:
        self.store = Store(root)
        self.holdings = PoolHoldings(self.store)
        self.tls = server_context(member.files, member.trust_anchor.read_bytes())
        self.port = free_port(POOL_HOST)
        self.server: PoolServer | None = None

    @property
    def url(self) -> str:
        return f"https://{POOL_HOST}:{self.port}"

    def start(self) -> None:
        self.server = PoolServer(self.holdings, self.tls, host=POOL_HOST, port=self.port)
        self.server.start()

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop()
            self.server = None

    def copies(self, site: str, patient: str | None = None) -> list[tuple[str, str]]:
        """(patient, sha256) of every copy `site` gave, straight from the pool's index."""
        sql = "SELECT patient, sha256 FROM pool_copies WHERE site = ?"
        params: tuple[str, ...] = (site,)
        if patient is not None:
            sql, params = sql + " AND patient = ?", (site, patient)
        return [tuple(row) for row in self.store.index.read(sql + " ORDER BY 1, 2", params)]


@pytest.fixture
def pool(tmp_path: Path, federation: Federation) -> Iterator[Pool]:
    running = Pool(tmp_path / "hub-pool", federation.member("pool", Role.HUB))
    running.start()
    try:
        yield running
    finally:
        running.stop()
        running.store.close()


@dataclass
class Site:
    store: Store
    registry: ConsentRegistry
    curator: Curator
    pipeline: Pipeline
    member: Member
    patients: list[str]

    def add_series(self, spec: samples.SeriesSpec, defect: str | None = None) -> None:
        for data in samples.series(spec, defect):
            assert self.pipeline.ingest(data, "test").stored
        self.curator.curate_pending(0)

    def instances_of(self, patient: str) -> list[str]:
        return [r.sha256 for r in self.store.index.instances() if r.patient_pseudonym == patient]


@pytest.fixture
def site(tmp_path: Path, federation: Federation, deidentifier) -> Iterator[Site]:  # noqa: F811
    """site-a with three patients (one CT series of two slices each), curated; consent
    undecided (the site default denies central-hpc)."""
    with Store(tmp_path / "site-a") as store:
        curator = Curator(store)
        made = Site(store, ConsentRegistry(store.index), curator,
                    Pipeline(store, deidentifier, curator=curator),
                    federation.member("site-a", Role.SITE), [])
        for n in range(3):
            made.add_series(samples.spec(slices=2, patient_id=f"CANARYX-P{n}"))
        made.patients = [row[0] for row in
                         store.index.read("SELECT pseudonym FROM patients ORDER BY 1")]
        yield made
