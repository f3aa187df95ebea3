"""The data rule: an HPC workload may read only data donated for central processing.

The consent and donorship system does not exist yet, so the register of donations is, for
now, one ConfigMap that the consortium's data stewards keep in a namespace tenants cannot
write to (by default `incisive-system/donated-datasets`). Each key names a dataset, as
`<site>.<dataset>` or just `<dataset>` for a dataset held centrally; each value lists the
purposes it was donated for, separated by commas or spaces:

    data:
      hospital-a.lung-ct: central-hpc, federated-training
      public-chest-xray: central-hpc

`DonationRegister` is the interface; `ConfigMapDonations` is the stewards' register. A
missing ConfigMap means nothing is donated. `PoolDonations` asks the hub's central pool
(incisive_node.pool, docs/pool.md) instead: a site's dataset is donated for central-hpc
while the pool holds copies of it, which after each site's sync pass means while at least
one patient in it permits central-hpc. `AnyDonations` joins registers (a purpose counts if
any of them lists it), e.g. the ConfigMap for central public datasets plus the pool.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any, Protocol

from ..api.v1alpha1.hpcworkload import Input

CENTRAL_HPC = "central-hpc"


class DonationRegister(Protocol):
    def purposes(self, dataset: str, site: str | None) -> frozenset[str]:
        """The purposes `dataset` (held by `site`, or centrally) is donated for."""
        ...


def donation_key(dataset: str, site: str | None) -> str:
    return f"{site}.{dataset}" if site else dataset


class ConfigMapDonations:
    def __init__(self, data: dict[str, str] | None) -> None:
        self._data = data or {}

    @classmethod
    def read(cls, api: Any, namespace: str, name: str) -> ConfigMapDonations:
        from kubernetes import client

        try:
            found = client.CoreV1Api(api).read_namespaced_config_map(name, namespace)
        except client.ApiException as exc:
            if exc.status == 404:
                return cls({})
            raise
        return cls(found.data or {})

    def purposes(self, dataset: str, site: str | None) -> frozenset[str]:
        value = self._data.get(donation_key(dataset, site), "")
        return frozenset(p for p in re.split(r"[\s,]+", value) if p)


def not_donated(inputs: Iterable[Input], register: DonationRegister,
                purpose: str = CENTRAL_HPC) -> list[str]:
    """The inputs (as `site.dataset` keys) not donated for `purpose`; empty when all are."""
    return [donation_key(i.dataset, i.site) for i in inputs
            if purpose not in register.purposes(i.dataset, i.site)]


class PoolDonations:
    """What the hub's pool holds, read once (one reconcile) through its API with a hub
    service's federation certificate: `incisive_node.pool.client.PoolClient`."""

    def __init__(self, datasets: Iterable[dict[str, Any]]) -> None:
        self._held = {(d["site"], d["dataset"]): frozenset(d.get("purposes", ()))
                      for d in datasets if d.get("instances", 0) > 0}

    @classmethod
    def read(cls, client: Any) -> PoolDonations:
        return cls(client.datasets())

    def purposes(self, dataset: str, site: str | None) -> frozenset[str]:
        if site is None:  # the pool holds site donations only
            return frozenset()
        return self._held.get((site, dataset), frozenset())


class AnyDonations:
    def __init__(self, *registers: DonationRegister) -> None:
        self._registers = registers

    def purposes(self, dataset: str, site: str | None) -> frozenset[str]:
        return frozenset().union(*(r.purposes(dataset, site) for r in self._registers))
