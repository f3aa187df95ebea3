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
    signature: str | None = Field(
        default=None, max_length=4096,
        description="The publisher's signature of the bundle (the JSON `incisive fl publish` "
        "prints). Sites run only bundles signed by a key their policy trusts.")


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
    local_epochs: int = Field(default=1, ge=1, le=1000,
                              description="Passes over its data each site makes per round.")
    round_timeout_seconds: int = Field(
        default=600, ge=5, le=86400,
        description="A site that sends no good reply this long into a round is dropped for "
        "the rest of the run; fewer than minSites left fails the job.")
    site_wait_seconds: int = Field(
        default=120, ge=5, le=86400,
        description="How long a round waits for minSites SuperNodes to be connected.")


class SiteDecision(Model):
    site: str
    decision: Literal["Pending", "Accepted", "Declined"]
    reason: str = ""
    message: str = ""
    state: str | None = Field(
        default=None, description="The site's part in the run: AwaitingKey, Registered, "
        "Connected, Training, Dropped, Completed, Stopped, SiteError.")
    state_message: str | None = None


class RoundMetrics(Model):
    """The global model after a round, as the sites scored it on their validation data
    (round 0 is the initial model)."""

    round: int = Field(ge=0)
    loss: float | None = None
    accuracy: float | None = None
    examples: int | None = None
    train_loss: float | None = None
    sites: list[str] = Field(default_factory=list)


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
    current_round: int | None = Field(
        default=None, description="The last round whose metrics are in `rounds`.")
    rounds: list[RoundMetrics] = Field(default_factory=list)
    participating_sites: list[str] = Field(default_factory=list)
    run_id: str | None = Field(
        default=None, max_length=20,
        description="The Flower run at the job's SuperLink (an unsigned 64-bit number, which "
        "JSON integers in Kubernetes cannot hold).")
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
        {"name": "Round", "type": "integer", "jsonPath": ".status.currentRound"},
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
