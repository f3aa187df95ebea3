"""Hub-side kinds of the pull model: the site registry and per-site work items.

FederatedSite: one per hospital, cluster-scoped on the hub. It is the hub's record that a
site may enrol (and under which bootstrap token), and carries the site's heartbeat state.
WorkItem: the hub never pushes to a hospital; it writes a WorkItem into the site's own
namespace (`site-<name>`) on the hub, and the site pulls it, decides, and writes its
decision into the WorkItem's status.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from .common import Condition, DNSLabel, Model, Purpose, Resource, Sha256, cel
from .trainingjob import DataQuery


class FederatedSiteSpec(Model):
    display_name: str = Field(default="", max_length=256)
    country: str = Field(pattern=r"^[A-Z]{2}$", description="ISO 3166-1 alpha-2.")
    auto_approve: bool = Field(
        default=False,
        description="Approve this site's certificate request without a human "
        "(`incisive site approve NAME` otherwise).",
    )
    bootstrap_token_id: str = Field(
        pattern=r"^[a-z0-9]{6}$",
        description="The id of the bootstrap token issued to this site; a request made with "
        "any other token is refused.",
    )


class FederatedSiteStatus(Model):
    observed_generation: int | None = None
    conditions: list[Condition] = Field(default_factory=list)
    namespace: str | None = None
    last_heartbeat_time: str | None = Field(default=None,
                                            json_schema_extra={"format": "date-time"})
    certificate_expiry: str | None = Field(default=None,
                                           json_schema_extra={"format": "date-time"})


class FederatedSite(Resource):
    kind = "FederatedSite"
    plural = "federatedsites"
    short_names = ("fsite",)
    scope = "Cluster"
    spec = FederatedSiteSpec
    status = FederatedSiteStatus
    printer_columns = (
        {"name": "Country", "type": "string", "jsonPath": ".spec.country"},
        {"name": "Namespace", "type": "string", "jsonPath": ".status.namespace"},
    )
    spec_validations = (
        cel("self.bootstrapTokenId == oldSelf.bootstrapTokenId",
            "bootstrapTokenId cannot change; delete and re-register the site",
            ".bootstrapTokenId"),
    )


class JobRef(Model):
    kind: Literal["TrainingJob", "HPCWorkload"]
    namespace: DNSLabel
    name: DNSLabel
    uid: str = Field(min_length=1, max_length=64)


class WorkItemSpec(Model):
    job_ref: JobRef
    purpose: Purpose
    app_digest: Sha256 | None = None
    app_reference: str | None = Field(default=None, max_length=512)
    app_signature: str | None = Field(
        default=None, max_length=4096,
        description="The publisher's signature the site verifies against its trusted keys.")
    data_query: DataQuery = Field(default_factory=DataQuery)


class WorkItemStatus(Model):
    observed_generation: int | None = None
    conditions: list[Condition] = Field(default_factory=list)
    decision: Literal["Pending", "Accepted", "Declined"] | None = None
    reason: str | None = None
    message: str | None = None
    supernode_public_key: str | None = Field(
        default=None, max_length=2048,
        description="The site's SuperNode public key (OpenSSH); the private key stays at the "
        "site. The hub registers it at the job's SuperLink.")
    training: Literal["AwaitingRegistration", "Running", "Stopped", "Failed"] | None = None
    training_message: str | None = None


class WorkItem(Resource):
    kind = "WorkItem"
    plural = "workitems"
    short_names = ("wi",)
    spec = WorkItemSpec
    status = WorkItemStatus
    summary_condition = "Decided"
    printer_columns = (
        {"name": "Job", "type": "string", "jsonPath": ".spec.jobRef.name"},
        {"name": "Decision", "type": "string", "jsonPath": ".status.decision"},
        {"name": "Training", "type": "string", "jsonPath": ".status.training"},
    )
    spec_validations = (
        cel("self == oldSelf", "a WorkItem's spec is immutable; the hub replaces it instead"),
    )
