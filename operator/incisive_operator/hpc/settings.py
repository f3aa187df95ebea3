"""How the consortium runs its HPC service: quotas, prices, backends. One frozen object,
built by whoever starts the operator and handed to `handlers.hpcworkload.register`."""

from __future__ import annotations

from dataclasses import dataclass, field

from .slurm import SlurmSettings

DEFAULT_CURRENCY = "EUR"


@dataclass(frozen=True)
class Pipeline:
    """A registered pipeline: the consortium-vetted image and command behind a name."""

    image: str
    command: tuple[str, ...] = ()


@dataclass(frozen=True)
class HPCSettings:
    # Built-in admission: GPUs a tenant may hold at once. Ignored when Kueue admits.
    tenant_gpu_quota: dict[str, int] = field(default_factory=dict)
    default_gpu_quota: int = 8
    # Kueue mode: Jobs are created suspended with the queue-name label and Kueue admits them.
    kueue: bool = False
    # Estimated price of one GPU-hour by GPU product label; `default_gpu_hour_price` otherwise.
    gpu_hour_price: dict[str, float] = field(default_factory=dict)
    default_gpu_hour_price: float = 2.5
    currency: str = DEFAULT_CURRENCY
    # (minimum spec.priority, PriorityClass name), any order: the highest threshold not above
    # the workload's priority wins. Empty: Jobs get no priorityClassName.
    priority_classes: tuple[tuple[int, str], ...] = ()
    # Where the donation register lives: a namespace tenants cannot write to (see datasets.py).
    donations_namespace: str = "incisive-system"
    donations_configmap: str = "donated-datasets"
    pipelines: dict[str, Pipeline] = field(default_factory=dict)
    slurm: SlurmSettings | None = None
    # How often an unfinished workload is looked at again (queue moves, Slurm polling).
    requeue_seconds: float = 15.0

    def quota_for(self, tenant: str) -> int:
        return self.tenant_gpu_quota.get(tenant, self.default_gpu_quota)

    def price_for(self, gpu_model: str | None) -> float:
        if gpu_model and gpu_model in self.gpu_hour_price:
            return self.gpu_hour_price[gpu_model]
        return self.default_gpu_hour_price

    def priority_class_for(self, priority: int) -> str | None:
        eligible = [(threshold, name) for threshold, name in self.priority_classes
                    if threshold <= priority]
        return max(eligible)[1] if eligible else None
