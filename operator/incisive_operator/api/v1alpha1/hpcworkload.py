"""HPCWorkload: a job for the consortium's central GPU cluster, on donated data only."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from .common import Condition, DNSLabel, Model, Quantity, Resource, Sha256, cel


class Gpus(Model):
    count: int = Field(default=0, ge=0, le=64)
    model: str | None = Field(default=None, max_length=128,
                              description="GPU product label, e.g. NVIDIA-H100-80GB-HBM3.")


class Input(Model):
    dataset: DNSLabel
    site: DNSLabel | None = None


class HPCWorkloadSpec(Model):
    image: str | None = Field(default=None, max_length=512)
    command: list[str] = Field(default_factory=list, max_length=256)
    pipeline: DNSLabel | None = Field(default=None, description="A registered pipeline name.")
    gpus: Gpus = Field(default_factory=Gpus)
    cpu: Quantity = "4"
    memory: Quantity = "16Gi"
    time_limit: str = Field(default="1h", pattern=r"^([0-9]+h)?([0-9]+m)?([0-9]+s)?$",
                            description="Wall-clock limit, e.g. 90m or 2h30m.")
    queue: DNSLabel = "default"
    priority: int = Field(default=0, ge=-1000, le=1000)
    backend: Literal["kubernetes", "slurm"] = "kubernetes"
    inputs: list[Input] = Field(default_factory=list, max_length=256)
    tenant: DNSLabel


class LineageInput(Model):
    dataset: DNSLabel
    site: DNSLabel | None = None
    purpose: str = Field(description="The consent purpose the donation was checked for.")


class LineageOutput(Model):
    path: str = Field(max_length=1024)
    sha256: Sha256


class Lineage(Model):
    """What ran on what: the record the ledger will take over once it exists."""

    inputs: list[LineageInput] = Field(default_factory=list)
    image: str | None = None
    image_digest: str | None = Field(default=None, description="Digest the runtime reported, "
                                     "when it reported one.")
    command_sha256: Sha256 | None = None
    pipeline: str | None = None
    outputs: list[LineageOutput] = Field(default_factory=list)


class HPCWorkloadStatus(Model):
    observed_generation: int | None = None
    conditions: list[Condition] = Field(default_factory=list)
    queue_position: int | None = Field(default=None, description="1 is next in the tenant's "
                                       "queue; absent when admitted or not queued by quota.")
    start_time: str | None = Field(default=None, json_schema_extra={"format": "date-time"})
    end_time: str | None = Field(default=None, json_schema_extra={"format": "date-time"})
    gpu_hours: float | None = None
    estimated_cost: float | None = Field(default=None, description="gpuHours times the price "
                                         "of the GPU model, in currency.")
    currency: str | None = None
    reason: str | None = None
    job_name: str | None = Field(default=None, description="The Kubernetes Job, when the "
                                 "backend is kubernetes.")
    backend_job_id: str | None = Field(default=None, description="The job id in the backend's "
                                       "own scheduler (Slurm).")
    lineage: Lineage | None = None


class HPCWorkload(Resource):
    kind = "HPCWorkload"
    plural = "hpcworkloads"
    short_names = ("hpc",)
    spec = HPCWorkloadSpec
    status = HPCWorkloadStatus
    summary_condition = "Succeeded"
    printer_columns = (
        {"name": "Tenant", "type": "string", "jsonPath": ".spec.tenant"},
        {"name": "GPUs", "type": "integer", "jsonPath": ".spec.gpus.count"},
        {"name": "Backend", "type": "string", "jsonPath": ".spec.backend"},
    )
    spec_validations = (
        cel("has(self.image) != has(self.pipeline)",
            "set exactly one of image and pipeline"),
        cel("!has(self.gpus.model) || self.gpus.count > 0",
            "gpus.model needs gpus.count > 0", ".gpus.model"),
        cel("self.timeLimit != ''", "timeLimit must not be empty", ".timeLimit"),
        cel("!has(self.pipeline) || size(self.command) == 0",
            "command applies to image workloads only", ".command"),
    )
    root_validations = (
        cel("!has(oldSelf.status) || !has(oldSelf.status.startTime) || self.spec == oldSelf.spec",
            "spec is immutable once the workload has started; create a new one instead"),
    )
