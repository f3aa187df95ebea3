"""`incisive-node serve` with a pool URL syncs on its own, and the HPC side's donation
register (operator/incisive_operator/hpc/datasets.py) reads what the pool holds."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

import requests

from incisive_node.consent import CENTRAL_HPC, PERMIT
from incisive_node.deid.keys import ProjectKeys, write_key_file
from incisive_node.identity.csr import Role
from incisive_operator.api.v1alpha1.hpcworkload import Input as HpcInput
from incisive_operator.hpc.datasets import (
    AnyDonations,
    ConfigMapDonations,
    PoolDonations,
    not_donated,
)
from tests.conftest import TEST_BLOCK
from tests.ingest.ports import free_port
from tests.pool.conftest import POOL_HOST, Federation, Pool, Site

SERVE = [sys.executable, "-c", "import sys; from incisive_node.cli import main; sys.exit(main())"]
SITE_HOST = f"127.{TEST_BLOCK}.7.1"


def test_serve_syncs_periodically_when_a_pool_is_configured(
        site: Site, pool: Pool, tmp_path) -> None:
    a, b, _ = site.patients
    site.registry.decide(a, CENTRAL_HPC, PERMIT)
    site.store.close()  # the appliance process owns the store now
    key_file = tmp_path / "project.key"
    write_key_file(ProjectKeys.generate("serve-pool"), key_file)
    http_port = free_port(SITE_HOST)
    process = subprocess.Popen(
        [*SERVE, "serve", "--store", str(site.store.root), "--key-file", str(key_file),
         "--host", SITE_HOST, "--http-port", str(http_port), "--pool-dataset", "lung-ct",
         "--pool-interval", "0.5", *site.member.cli_arguments(pool.url)],
        stderr=subprocess.PIPE, text=True)
    try:
        _wait(lambda: len(pool.copies("site-a", a)) == 2, process, "the first push")
        # A withdrawal through the donor-facing path is a registry change in the store;
        # the running appliance's next pass deletes the copies.
        from incisive_node.consent import ConsentRegistry
        from incisive_node.store import Store

        with Store(site.store.root) as store:
            ConsentRegistry(store.index).withdraw(a, CENTRAL_HPC, source="donor")
        _wait(lambda: pool.copies("site-a", a) == [], process, "the deletion")
        metrics = requests.get(f"http://{SITE_HOST}:{http_port}/metrics", timeout=10).text
        assert "incisive_pool_pushed_total 2.0" in metrics
        assert 'incisive_pool_deletions_total{kind="patient"} 1.0' in metrics
        assert a not in metrics and b not in metrics
    finally:
        process.send_signal(signal.SIGTERM)
        _, err = process.communicate(timeout=60)
    assert process.returncode == 0, err
    assert "CANARYX" not in err and a not in err


def test_pool_serve_runs_the_hub_side_as_a_process(site: Site, federation: Federation,
                                                  tmp_path) -> None:
    from incisive_node.pool.sync import PoolSync

    member = federation.member("pool", Role.HUB)
    port = free_port(POOL_HOST)
    process = subprocess.Popen(
        [*SERVE, "pool", "serve", "--store", str(tmp_path / "hub-pool"), "--host", POOL_HOST,
         "--port", str(port), "--tls-cert", str(member.files.chain), "--tls-key",
         str(member.files.key), "--trust-anchor", str(member.trust_anchor)],
        stderr=subprocess.PIPE, text=True)
    url = f"https://{POOL_HOST}:{port}"
    try:
        site.registry.decide(site.patients[1], CENTRAL_HPC, PERMIT)
        sync = PoolSync(site.store, site.registry, site.member.client(url), dataset="lung-ct")
        _wait(lambda: sync.run_once().complete, process, "a complete pass")
        [listed] = federation.member("hpc", Role.HUB).client(url).datasets()
        assert (listed["site"], listed["instances"]) == ("site-a", 2)
    finally:
        process.send_signal(signal.SIGTERM)
        _, err = process.communicate(timeout=60)
    assert process.returncode == 0, err
    assert site.patients[1] not in err  # the access log names routes, not paths


def _wait(condition, process: subprocess.Popen[str], what: str) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"serve exited before {what}: {process.stderr.read()}")
        if condition():
            return
        time.sleep(0.2)
    raise AssertionError(f"no {what} within 60 s")


def test_the_hpc_donation_register_asks_the_pool(
        site: Site, pool: Pool, federation: Federation) -> None:
    from incisive_node.pool.sync import PoolSync

    a = site.patients[0]
    hub = federation.member("hpc-operator", Role.HUB).client(pool.url)
    inputs = [HpcInput(dataset="lung-ct", site="site-a")]
    assert not_donated(inputs, PoolDonations.read(hub)) == ["site-a.lung-ct"]
    site.registry.decide(a, CENTRAL_HPC, PERMIT)
    sync = PoolSync(site.store, site.registry, site.member.client(pool.url), dataset="lung-ct")
    assert sync.run_once().complete
    register = PoolDonations.read(hub)
    assert register.purposes("lung-ct", "site-a") == {CENTRAL_HPC}
    assert register.purposes("lung-ct", "site-b") == frozenset()
    assert register.purposes("lung-ct", None) == frozenset()
    assert not_donated(inputs, register) == []
    both = AnyDonations(ConfigMapDonations({"public-chest-xray": "central-hpc"}), register)
    assert not_donated([*inputs, HpcInput(dataset="public-chest-xray")], both) == []
    site.registry.withdraw(a, CENTRAL_HPC)
    assert sync.run_once().complete
    assert not_donated(inputs, PoolDonations.read(hub)) == ["site-a.lung-ct"]
