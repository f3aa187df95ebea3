"""The demo's hospital appliances, run for real beside each site cluster.

What stands in for what: the site operator creates the appliance's StatefulSet, whose pod
runs on a kwok node and so starts nothing. The same `incisive-node serve` runs here as a
process on the site's own loopback address (127.<block>.<n>.2), with an OpenBao dev server
beside it holding the project key and the re-identification mapping key, the way the
hospital's Vault would. Both are testbed processes (pidfiles in the cluster's folder), so
`incisive testbed down` stops them.
"""

from __future__ import annotations

import re
import secrets
import sys
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ..testbed import Cluster, TestbedError
from ..testbed.processes import Managed

PROJECT = "chest-xray"
AE_TITLE = "INCISIVE"
DICOM_PORT = 11112
HTTP_PORT = 8080
VAULT_PORT = 8200


@dataclass(frozen=True)
class Appliance:
    site: str
    host: str
    store: Path
    log: Path

    @property
    def metrics_url(self) -> str:
        return f"http://{self.host}:{HTTP_PORT}/metrics"

    def metrics(self) -> dict[str, float]:
        """Sums of the appliance's counters and gauges by name and labels, as text keys."""
        with urllib.request.urlopen(self.metrics_url, timeout=5) as reply:  # noqa: S310
            text = reply.read().decode()
        values: dict[str, float] = {}
        for line in text.splitlines():
            match = re.match(r"^([a-z_]+)(\{[^}]*\})?\s+([0-9.e+-]+)$", line)
            if match:
                values[match.group(1) + (match.group(2) or "")] = float(match.group(3))
        return values

    def total(self, name: str, **labels: str) -> float:
        wanted = [f'{k}="{v}"' for k, v in labels.items()]
        return sum(v for k, v in self.metrics().items()
                   if k.split("{")[0] == name and all(w in k for w in wanted))


def host_of(cluster: Cluster) -> str:
    return cluster.address.rsplit(".", 1)[0] + ".2"


def ensure(cluster: Cluster, bao: Path, extra_env: dict[str, str] | None = None) -> Appliance:
    """OpenBao and the appliance for the site `cluster`, started unless already running."""
    host = host_of(cluster)
    folder = cluster.folder / "appliance"
    folder.mkdir(parents=True, exist_ok=True)
    vault = Managed("openbao", cluster.folder)
    token_file = folder / "openbao-root-token"
    if vault.pid() is None:
        # A dev server keeps everything in memory: a new one gets a new root token and key.
        token_file.write_text(secrets.token_hex(16))
        token_file.chmod(0o600)
        vault.start([str(bao), "server", "-dev", f"-dev-root-token-id={token_file.read_text()}",
                     f"-dev-listen-address={host}:{VAULT_PORT}"],
                    env={"PATH": "/usr/bin:/bin", "HOME": str(folder)})
    deid_token = _provision_vault(f"http://{host}:{VAULT_PORT}", token_file.read_text(),
                                  vault.log)
    appliance = Managed("appliance", cluster.folder)
    if appliance.pid() is None:
        appliance.start(
            [sys.executable, "-m", "incisive_node.cli", "serve", "--store", str(folder / "store"),
             "--host", host, "--dicom-port", str(DICOM_PORT), "--http-port", str(HTTP_PORT),
             "--ae-title", AE_TITLE, "--allow-aet", "PACS_MAIN", "--series-quiet-seconds", "2",
             "--vault-addr", f"http://{host}:{VAULT_PORT}", "--project", PROJECT],
            env={"PATH": str(Path(sys.executable).parent) + ":/usr/bin:/bin",
                 "HOME": str(folder), "VAULT_TOKEN": deid_token, **(extra_env or {})})
    result = Appliance(cluster.name, host, folder / "store", appliance.log)
    wait_alive(f"the appliance of {cluster.name}", lambda: result.metrics() is not None,
               appliance)
    return result


def _provision_vault(addr: str, root_token: str, log: Path) -> str:
    """Transit, policies and the project key (idempotent); a token for de-identification."""
    import hvac

    from incisive_node.deid import ProjectKeys
    from incisive_node.deid.keys import load_from_vault, store_in_vault
    from incisive_node.deid.mapping import DEID_POLICY_NAME, setup_vault

    root = hvac.Client(url=addr, token=root_token)
    deadline = time.monotonic() + 30
    while True:
        try:
            if root.sys.is_initialized() and not root.sys.is_sealed():
                break
        except Exception:  # noqa: S110 - not listening yet; the deadline decides
            pass
        if time.monotonic() > deadline:
            raise TestbedError(f"OpenBao at {addr} did not start", f"see its log: {log}")
        time.sleep(0.2)
    setup_vault(root)
    try:
        load_from_vault(root, PROJECT)
    except Exception:
        store_in_vault(root, ProjectKeys.generate(PROJECT))
    made = root.auth.token.create(policies=[DEID_POLICY_NAME], display_name="appliance",
                                  ttl="48h")
    return made["auth"]["client_token"]


def wait_alive(what: str, probe: Callable[[], object], process: Managed,
               timeout: float = 60) -> None:
    """Until `probe()` is true; a clear error naming the log if `process` dies or times out."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if probe():
                return
        except OSError:
            pass
        if process.pid() is None:
            raise TestbedError(f"{what} exited", f"see its log: {process.log}")
        if time.monotonic() > deadline:
            raise TestbedError(f"timed out waiting for {what}", f"see its log: {process.log}")
        time.sleep(0.3)
