"""TrainingJob: a researcher's federated training run, on the hub."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from .common import (
    Condition,
    LabelSelector,
    Model,
    Purpose,
    Resource,
    Resources,
    Sha256,
    cel,
)


class FlowerApp(Model):
    reference: str = Field(min_length=1, max_length=512,
                           description="Name or OCI reference of the signed Flower app bundle.")
    digest: Sha256 = Field(description="Content digest the sites verify before running it.")


class Strategy(Model):
    name: Literal["FedAvg", "FedProx", "FedAdam"] = "FedAvg"
    parameters: dict[str, float] = Field(
        default_factory=dict,
        description="Strategy parameters, e.g. proximalMu for FedProx, eta for FedAdam.",
    )
    fraction_fit: float = Field(default=1.0, gt=0, le=1)


class DataQuery(Model):
    modalities: list[str] = Field(default_factory=list,
                                  json_schema_extra={"x-kubernetes-list-type": "set"})
    body_parts: list[str] = Field(default_factory=list,
                                  json_schema_extra={"x-kubernetes-list-type": "set"})
    labels: list[str] = Field(default_factory=list,
                              json_schema_extra={"x-kubernetes-list-type": "set"})


class DifferentialPrivacy(Model):
    enabled: bool = False
    clipping_norm: float = Field(default=1.0, gt=0)
    noise_multiplier: float = Field(default=1.0, ge=0)


class Privacy(Model):
    differential_privacy: DifferentialPrivacy = Field(default_factory=DifferentialPrivacy)
    secure_aggregation: bool = False


class TrainingResources(Model):
    per_site: Resources = Field(default_factory=Resources)
    aggregator: Resources = Field(default_factory=Resources)


class TrainingJobSpec(Model):
    app: FlowerApp
    strategy: Strategy = Field(default_factory=Strategy)
    rounds: int = Field(default=3, ge=1, le=1000)
    min_sites: int = Field(default=2, ge=1, le=1000)
    site_selector: LabelSelector = Field(default_factory=LabelSelector)
    data_query: DataQuery = Field(default_factory=DataQuery)
    purpose: Purpose
    privacy: Privacy = Field(default_factory=Privacy)
    resources: TrainingResources = Field(default_factory=TrainingResources)
    deadline: str | None = Field(default=None, json_schema_extra={"format": "date-time"})


class SiteDecision(Model):
    site: str
    decision: Literal["Pending", "Accepted", "Declined"]
    reason: str = ""
    message: str = ""


class ModelArtifact(Model):
    uri: str
    sha256: str


class TrainingJobStatus(Model):
    observed_generation: int | None = None
    conditions: list[Condition] = Field(default_factory=list)
    start_time: str | None = Field(default=None, json_schema_extra={"format": "date-time"})
    completion_time: str | None = Field(default=None, json_schema_extra={"format": "date-time"})
    sites: list[SiteDecision] = Field(default_factory=list)
    accepted_sites: int | None = None
    current_round: int | None = None
    model: ModelArtifact | None = None


class TrainingJob(Resource):
    kind = "TrainingJob"
    plural = "trainingjobs"
    short_names = ("tj",)
    spec = TrainingJobSpec
    status = TrainingJobStatus
    summary_condition = "Succeeded"
    printer_columns = (
        {"name": "Rounds", "type": "integer", "jsonPath": ".spec.rounds"},
        {"name": "Sites", "type": "integer", "jsonPath": ".status.acceptedSites"},
    )
    spec_validations = (
        cel("self.strategy.name != 'FedProx' || (has(self.strategy.parameters) "
            "&& 'proximalMu' in self.strategy.parameters)",
            "FedProx needs strategy.parameters.proximalMu", ".strategy.parameters"),
        cel("self.strategy.name == 'FedProx' || !has(self.strategy.parameters) "
            "|| !('proximalMu' in self.strategy.parameters)",
            "proximalMu applies to FedProx only", ".strategy.parameters"),
        cel("!self.privacy.differentialPrivacy.enabled || !self.privacy.secureAggregation "
            "|| self.minSites >= 3",
            "differential privacy with secure aggregation needs minSites >= 3", ".minSites"),
    )
    root_validations = (
        cel("!has(oldSelf.status) || !has(oldSelf.status.startTime) || self.spec == oldSelf.spec",
            "spec is immutable once the job has started; create a new TrainingJob instead"),
    )
