"""A whole federation on one machine: a SuperLink and N synthetic sites on loopback.

What stands in for what: 127.0.40.100 (by default) is the hub, 127.0.40.1, .2, ... are the
hospitals; each site's SuperNode dials out to the hub's port with TLS and its own key, and
trains on a synthetic, non-IID share of images (synthetic.py). The app bundle is signed
with a publisher key made here, and each site verifies it before its SuperNode starts, just
as a site with a real policy would. Tests, the benchmark and the demo use this; the
operator calls the same pieces (processes, control, signing) itself.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from incisive_node.fl.bundle import AppBundle, build_bundle
from incisive_node.fl.config import TrainingConfig
from incisive_node.fl.control import Control, RunResult
from incisive_node.fl.node_keys import ensure_node_keys
from incisive_node.fl.processes import SuperLink, SuperNode
from incisive_node.fl.signing import AppSignature, sign_app, verify_app
from incisive_node.fl.tls import write_superlink_tls


@dataclass
class LoopbackFederation:
    root: Path
    site_count: int = 2
    block: str = "127.0.40"  # hub at .100, sites at .1, .2, ...
    samples: int = 200
    torch_threads: int = 1
    # Where SuperNodes dial (default: the SuperLink itself); the benchmark puts a
    # byte-counting proxy there, and the certificate then names both addresses.
    fleet_host: str | None = None
    fleet_port: int | None = None
    warm: bool = True  # app tasks forked from warm servers (warm.py); False: cold processes
    superlink: SuperLink | None = None
    control: Control | None = None
    bundle: AppBundle | None = None
    signature: AppSignature | None = None
    sites: dict[str, SuperNode] = field(default_factory=dict)
    _publisher_key: Ed25519PrivateKey = field(default_factory=Ed25519PrivateKey.generate)

    @property
    def hub_host(self) -> str:
        return f"{self.block}.100"

    @property
    def fleet_address(self) -> str:
        if self.superlink is None:
            raise RuntimeError("start the federation first")
        if self.fleet_host is None:
            return self.superlink.address
        return f"{self.fleet_host}:{self.fleet_port or self.superlink.port}"

    def start(self) -> LoopbackFederation:
        self.bundle = build_bundle(self.root / "app")
        self.signature = sign_app(
            self.bundle.fab, self.bundle.fab_id, self.bundle.version, self._publisher_key
        )
        try:
            hosts = [self.hub_host] + ([self.fleet_host] if self.fleet_host else [])
            tls = write_superlink_tls(self.root / "hub" / "tls", hosts)
            self.superlink = SuperLink.start(self.root / "hub", host=self.hub_host, tls=tls,
                                             warm=self.warm)
            self.control = Control(
                self.superlink.address, self.superlink.tls.ca_cert, self.root / "hub-cli"
            )
            for index in range(self.site_count):
                self.start_site(index)
            self.control.wait_for_supernodes(self.site_count)
        except BaseException:
            self.stop()
            raise
        return self

    def start_site(self, index: int, **node_config: Any) -> SuperNode:
        """Start site number `index` (0-based): keys, registration, verification, SuperNode."""
        if self.superlink is None or self.control is None or self.bundle is None:
            raise RuntimeError("start the federation first")
        name = f"site-{index + 1}"
        site_dir = self.root / name
        keys = ensure_node_keys(site_dir / "keys")
        self.control.register_supernode(keys.public_openssh(), self.root / "hub-cli" / "keys")
        # What the site's policy does on accepting the job: verify the signed bundle.
        pinned = verify_app(
            self.bundle.fab, self.signature, [self._publisher_key.public_key()]
        )
        config = {
            "data": "synthetic",
            "site-index": index,
            "site-count": self.site_count,
            "samples": self.samples,
            "torch-threads": self.torch_threads,
            **node_config,
        }
        node = SuperNode.start(
            site_dir,
            site=name,
            superlink_address=self.fleet_address,
            ca_cert=self.superlink.tls.ca_cert,
            private_key=keys.private_key,
            allowed_fabs=[pinned],
            node_config=config,
            host=f"{self.block}.{index + 1}",
            warm=self.warm,
        )
        self.sites[name] = node
        return node

    def run(self, config: TrainingConfig, name: str, timeout_s: float = 600.0) -> RunResult:
        if self.control is None or self.bundle is None:
            raise RuntimeError("start the federation first")
        handle = self.control.start_run(self.bundle.app_dir, config, self.root / "runs" / name)
        return self.control.wait(handle, timeout_s=timeout_s)

    def stop(self) -> None:
        for node in self.sites.values():
            node.stop()
        self.sites.clear()
        if self.superlink is not None:
            self.superlink.stop()
        if self.control is not None:
            self.control.close()

    def __enter__(self) -> LoopbackFederation:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
