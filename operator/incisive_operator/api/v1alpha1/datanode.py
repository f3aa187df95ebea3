"""DataNode: a hospital appliance's desired state, on the hospital's own cluster."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

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


class DataNodeStatus(Model):
    observed_generation: int | None = None
    conditions: list[Condition] = Field(default_factory=list)
    ready_replicas: int | None = None
    enrolment: str | None = Field(default=None, description="Pending, Enrolled or Disabled.")
    hub_namespace: str | None = None


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
