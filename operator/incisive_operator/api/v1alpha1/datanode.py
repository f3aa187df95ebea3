"""DataNode: a hospital appliance's desired state, on the hospital's own cluster."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import ConfigDict, Field

from .common import (
    Condition,
    DNSLabel,
    Model,
    Purpose,
    Quantity,
    Resource,
    Resources,
    SecretKeyRef,
    cel,
)

DEFAULT_IMAGE = "ghcr.io/incisive-project/incisive-node:0.1.0"
DeidOption = Literal[
    "RetainLongitudinalTemporalInformationModifiedDates",
    "RetainPatientCharacteristics",
    "RetainDeviceIdentity",
    "CleanDescriptors",
    "RetainSafePrivate",
    "CleanPixelData",
]


class Storage(Model):
    size: Quantity = "100Gi"
    storage_class_name: str | None = Field(default=None, max_length=253)


class DicomIngest(Model):
    ae_title: str = Field(
        default="INCISIVE", pattern=r"^[A-Z0-9_]{1,16}$",
        description="The appliance's AE title (DICOM: up to 16 characters).",
    )
    port: int = Field(default=11112, ge=1024, le=65535)
    allowed_calling_ae_titles: list[str] = Field(
        default_factory=list, max_length=256, alias="allowedCallingAETitles",
        description="Calling AE titles allowed to send (empty: refuse every association).",
    )


class DicomWebIngest(Model):
    enabled: bool = True
    port: int = Field(default=8080, ge=1024, le=65535)


class Ingest(Model):
    dicom: DicomIngest = Field(default_factory=DicomIngest)
    dicomweb: DicomWebIngest = Field(default_factory=DicomWebIngest)
    pacs_cidrs: list[str] = Field(
        default_factory=list, max_length=64, alias="pacsCIDRs",
        description="Networks the hospital PACS sends from; the NetworkPolicy admits only these "
        "to the ingest ports.",
    )


class VaultKeys(Model):
    """Where the project's pseudonymisation key and the re-identification transit key live."""

    address: str = Field(pattern=r"^https?://[^\s/]+(:[0-9]+)?/?$",
                         description="OpenBao/Vault URL, e.g. https://vault.hospital:8200")
    project: DNSLabel = Field(description="The project whose key pseudonymises this data.")
    token_secret_ref: SecretKeyRef = Field(
        description="Secret holding a Vault token with the incisive-deid policy.")


class Deidentification(Model):
    profile: Literal["basic"] = "basic"
    options: list[DeidOption] = Field(
        default_factory=lambda: ["RetainLongitudinalTemporalInformationModifiedDates"],
        json_schema_extra={"x-kubernetes-list-type": "set"},
    )
    vault: VaultKeys | None = Field(
        default=None, description="Without it the appliance cannot pseudonymise and stays "
        "not Ready.")


class Policy(Model):
    allowed_purposes: list[Purpose] = Field(
        default_factory=list, json_schema_extra={"x-kubernetes-list-type": "set"}
    )
    trusted_app_signing_keys: list[str] = Field(
        default_factory=list, max_length=32,
        description="Public keys (base64 Ed25519) whose signed Flower apps this site runs.",
    )
    work_approval: Literal["Automatic", "Manual"] = Field(
        default="Manual", description="Accept matching work items automatically, or wait."
    )


class HubEnrolment(Model):
    endpoint: str = Field(pattern=r"^https://[^\s/]+(:[0-9]+)?/?$",
                          description="The hub's Kubernetes API, e.g. https://hub.example:6443")
    site_name: DNSLabel = Field(description="This site's name in the federation.")
    bootstrap_secret_ref: SecretKeyRef = Field(
        description="Secret holding the bootstrap token the hub issued (key `token`) and, "
        "under `ca.crt`, the hub's CA certificate."
    )


class DataNodeSpec(Model):
    image: str = Field(default=DEFAULT_IMAGE, min_length=1, max_length=512)
    storage: Storage = Field(default_factory=Storage)
    ingest: Ingest = Field(default_factory=Ingest)
    deidentification: Deidentification = Field(default_factory=Deidentification)
    policy: Policy = Field(default_factory=Policy)
    hub: HubEnrolment | None = None
    resources: Resources = Field(default_factory=Resources)


Count = Annotated[int, Field(ge=0)]


class LabelCounts(Model):
    with_label: Count | None = Field(default=None, alias="with")
    without: Count | None = None


class ConsentCounts(Model):
    permit: Count | None = None
    deny: Count | None = None


def _total_at_least_k(path: str) -> dict[str, str]:
    return cel(f"!has(self.{path}) || self.{path} >= self.k",
               f"{path} is below k: hide it instead", f".{path}")


def _counts_at_least_k(path: str, cells: tuple[str, ...] = ()) -> dict[str, str]:
    """Every count in a map, of counts or (with `cells`) of objects with those counts."""
    each = " && ".join(f"(!has(self.{path}[c].{cell}) || self.{path}[c].{cell} >= self.k)"
                       for cell in cells) or f"self.{path}[c] >= self.k"
    return cel(f"!has(self.{path}) || self.{path}.all(c, {each})",
               f"a count in {path} is below k: hide it instead", f".{path}")


class DataNodeAggregates(Model):
    """What the appliance publishes (GET /aggregates): counts with small cells hidden."""

    # The apiserver itself refuses a count below k, whoever writes the status.
    model_config = ConfigDict(json_schema_extra={"x-kubernetes-validations": [
        _total_at_least_k("series"), _total_at_least_k("patients"),
        _counts_at_least_k("modality"), _counts_at_least_k("bodyPart"),
        _counts_at_least_k("label", ("with", "without")),
        _counts_at_least_k("consent", ("permit", "deny")),
    ]})

    k: int = Field(ge=2, description="No count shown here is below k.")
    generated_at: str = Field(
        json_schema_extra={"format": "date-time"},
        description="When the appliance computed these counts; the operator reads them "
        "periodically and writes them only when they change.")
    series: Count | None = Field(default=None, description="All series (absent: below k).")
    patients: Count | None = Field(default=None, description="All patients (absent: below k).")
    # Bounded maps: the apiserver refuses CEL rules over maps it cannot bound.
    modality: dict[str, Count] = Field(default_factory=dict, max_length=64,
                                       description="Series by modality.")
    body_part: dict[str, Count] = Field(default_factory=dict, max_length=256,
                                        description="Series by body part examined.")
    label: dict[str, LabelCounts] = Field(
        default_factory=dict, max_length=256,
        description="Per reviewed label (task:class): series with and without it.")
    consent: dict[str, ConsentCounts] = Field(
        default_factory=dict, max_length=64,
        description="Per consent purpose: patients who permit and deny it, for any grantee.")
    suppressed: list[str] = Field(
        default_factory=list, max_length=2048,
        description="The hidden cells, as partition/cell, e.g. modality/US or "
        "consent/federated-training/deny.")


class DataNodeStatus(Model):
    observed_generation: int | None = None
    conditions: list[Condition] = Field(default_factory=list)
    ready_replicas: int | None = None
    enrolment: str | None = Field(default=None, description="Pending, Enrolled or Disabled.")
    hub_namespace: str | None = None
    aggregates: DataNodeAggregates | None = None


class DataNode(Resource):
    kind = "DataNode"
    plural = "datanodes"
    short_names = ("dn",)
    spec = DataNodeSpec
    status = DataNodeStatus
    printer_columns = (
        {"name": "AE Title", "type": "string", "jsonPath": ".spec.ingest.dicom.aeTitle"},
        {"name": "Enrolment", "type": "string", "jsonPath": ".status.enrolment"},
    )
    spec_validations = (
        cel(
            "!self.ingest.dicomweb.enabled || self.ingest.dicom.port != self.ingest.dicomweb.port",
            "ingest.dicom.port and ingest.dicomweb.port must differ",
            ".ingest.dicomweb.port",
        ),
        cel(
            "!has(oldSelf.hub) || !has(self.hub) || self.hub.siteName == oldSelf.hub.siteName",
            "hub.siteName cannot change once set: enrol a new DataNode instead",
            ".hub.siteName",
        ),
    )
