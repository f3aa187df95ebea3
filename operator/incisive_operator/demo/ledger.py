"""The demo's ledger: the log at the hub, a witness at each site, and the submitters' keys.

All real processes (`incisive-node ledger serve|witness`), run as testbed processes beside
their clusters (pidfiles in the cluster folders, so `incisive testbed down` stops them), on
each simulated host's loopback address 127.<block>.<n>.5. Keys are made once per testbed by
`incisive-node ledger keygen`; the trust file lists the log, both witnesses (a checkpoint
needs both cosignatures) and the submitters: the hub operator and each site's appliance.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from ..testbed import Cluster, TestbedError
from ..testbed.processes import Managed
from .appliances import wait_alive

LOG_PORT = 8700
WITNESS_PORT = 8701
NODE_CLI = [sys.executable, "-m", "incisive_node.cli"]


@dataclass(frozen=True)
class DemoLedger:
    folder: Path
    url: str

    @property
    def trust(self) -> Path:
        return self.folder / "trust.json"

    @property
    def store(self) -> Path:
        return self.folder / "ledger.sqlite"

    def submitter_key(self, name: str) -> Path:
        return self.folder / f"submitter-{name}.pem"

    def spool(self, name: str) -> Path:
        return self.folder / "spool" / name

    def env(self, name: str) -> dict[str, str]:
        """What an appliance needs to record into this ledger."""
        return {"INCISIVE_LEDGER_URL": self.url,
                "INCISIVE_LEDGER_KEY": str(self.submitter_key(name)),
                "INCISIVE_LEDGER_SPOOL": str(self.spool(name))}

    def operator_flags(self, name: str) -> list[str]:
        return [f"--ledger-url={self.url}", f"--ledger-key={self.submitter_key(name)}",
                f"--ledger-spool={self.spool(name)}"]

    def size(self) -> int:
        with urllib.request.urlopen(f"{self.url}/metrics", timeout=5) as reply:  # noqa: S310
            for line in reply.read().decode().splitlines():
                if line.startswith("incisive_ledger_log_entries "):
                    return int(float(line.split()[1]))
        return 0

    def checkpoint(self) -> tuple[int, str]:
        """The latest published checkpoint's tree size and root hash (base64)."""
        with urllib.request.urlopen(f"{self.url}/checkpoint", timeout=5) as reply:  # noqa: S310
            lines = reply.read().decode().split("\n")
        return int(lines[1]), lines[2]

    def verify(self) -> str:
        """`incisive ledger verify`: recompute the tree, check every signature and quorum."""
        done = subprocess.run(
            [sys.executable, "-m", "incisive_operator.cli", "ledger", "verify",
             "--db", str(self.store), "--trust", str(self.trust)],
            capture_output=True, text=True, check=False, timeout=300)
        if done.returncode != 0:
            raise TestbedError(f"the ledger did not verify: {done.stdout}{done.stderr}",
                               f"inspect it with `incisive ledger tail --db {self.store}`")
        return done.stdout.strip()


def _host(cluster: Cluster) -> str:
    return cluster.address.rsplit(".", 1)[0] + ".5"


def _keygen(role: str, out: Path, name: str | None = None) -> dict[str, str]:
    """Make a key once; its public description is kept beside it for later runs."""
    described = out.with_suffix(".json")
    if not out.exists():
        argv = [*NODE_CLI, "ledger", "keygen", "--role", role, "--out", str(out)]
        done = subprocess.run([*argv, *(["--name", name] if name else [])],
                              capture_output=True, text=True, check=True)
        described.write_text(done.stdout)
    return json.loads(described.read_text())


def ensure(folder: Path, hub: Cluster, sites: list[Cluster], submitters: list[str]) -> DemoLedger:
    folder.mkdir(parents=True, exist_ok=True)
    origin = "hub.incisive.demo/ledger"
    log_vkey = _keygen("log", folder / "log.pem", origin)["vkey"]
    witnesses = {site.name: f"{site.name}.incisive.demo/witness" for site in sites}
    vkeys = [_keygen("witness", folder / f"witness-{s}.pem", name)["vkey"]
             for s, name in witnesses.items()]
    keys = {}
    for name in submitters:
        described = _keygen("submitter", folder / f"submitter-{name}.pem")
        keys[described["actor"]] = described["key"]
    trust = {"log": log_vkey, "witnesses": vkeys, "quorum": len(vkeys), "submitters": keys}
    (folder / "trust.json").write_text(json.dumps(trust, indent=2))

    urls = {}
    for site in sites:
        url = f"http://{_host(site)}:{WITNESS_PORT}"
        urls[witnesses[site.name]] = url
        _start(Managed("ledger-witness", site.folder), url, [
            "ledger", "witness", "--key", str(folder / f"witness-{site.name}.pem"),
            "--name", witnesses[site.name], "--log", log_vkey,
            "--db", str(site.folder / "witness.sqlite"),
            "--host", _host(site), "--port", str(WITNESS_PORT)])
    url = f"http://{_host(hub)}:{LOG_PORT}"
    ledger = DemoLedger(folder, url)
    _start(Managed("ledger-log", hub.folder), url, [
        "ledger", "serve", "--store", str(ledger.store), "--key", str(folder / "log.pem"),
        "--trust", str(ledger.trust),
        *[arg for name, u in urls.items() for arg in ("--witness-url", f"{name}={u}")],
        "--interval", "2", "--host", _host(hub), "--port", str(LOG_PORT)])
    return ledger


def _start(process: Managed, url: str, argv: list[str]) -> None:
    if process.pid() is None:
        process.start([*NODE_CLI, *argv])
    wait_alive(f"{process.name} at {url}", lambda: _healthy(url), process, timeout=30)


def _healthy(url: str) -> bool:
    with urllib.request.urlopen(f"{url}/healthz", timeout=2) as reply:  # noqa: S310
        return reply.status == 200


def settle(ledger: DemoLedger, timeout: float = 90) -> tuple[int, str]:
    """Wait until the spooled entries have arrived and a cosigned checkpoint covers them."""
    deadline = time.monotonic() + timeout
    last, stable_since = -1, time.monotonic()
    while True:
        size = ledger.size()
        if size != last:
            last, stable_since = size, time.monotonic()
        try:
            covered, root = ledger.checkpoint()
        except OSError:
            covered, root = 0, ""
        if size and covered == size and time.monotonic() - stable_since > 3:
            return covered, root
        if time.monotonic() > deadline:
            raise TestbedError(f"the ledger has {size} entries but its checkpoint covers "
                               f"{covered}", f"see the log's output in {ledger.folder}")
        time.sleep(0.5)
