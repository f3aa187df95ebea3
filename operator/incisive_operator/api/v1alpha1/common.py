"""Types shared by every kind of incisive-project.eu/v1alpha1."""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

VERSION = "v1alpha1"

# A Kubernetes resource quantity ("100Gi", "500m", 2). The schema says int-or-string.
Quantity = Annotated[str | int, Field(json_schema_extra={"x-kubernetes-int-or-string": True})]
DNSLabel = Annotated[str, Field(pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", max_length=63)]
Sha256 = Annotated[str, Field(pattern=r"^sha256:[0-9a-f]{64}$")]
Purpose = Annotated[
    str,
    Field(
        pattern=r"^[a-z][a-z0-9-]{1,62}$",
        description="A consent purpose code, e.g. federated-training, central-hpc, "
        "or a named research project.",
    ),
]


class Model(BaseModel):
    """Frozen, camelCase on the wire, strict about unknown fields."""

    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, frozen=True, extra="forbid"
    )


def cel(rule: str, message: str, field_path: str | None = None) -> dict[str, str]:
    """One x-kubernetes-validations rule; field_path points the error at the field."""
    validation = {"rule": rule, "message": message}
    if field_path:
        validation["fieldPath"] = field_path
    return validation


class Condition(Model):
    """A condition per the Kubernetes API conventions."""

    type: str
    status: Literal["True", "False", "Unknown"]
    reason: str = Field(pattern=r"^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$", max_length=1024)
    message: str = Field(default="", max_length=32768)
    last_transition_time: str = Field(json_schema_extra={"format": "date-time"})
    observed_generation: int | None = Field(default=None, ge=0)


class SecretKeyRef(Model):
    name: DNSLabel
    key: str = Field(default="token", min_length=1, max_length=253)


class LabelSelectorRequirement(Model):
    key: str = Field(min_length=1, max_length=317)
    operator: Literal["In", "NotIn", "Exists", "DoesNotExist"]
    values: list[str] = Field(default_factory=list)


class LabelSelector(Model):
    match_labels: dict[str, str] = Field(default_factory=dict)
    match_expressions: list[LabelSelectorRequirement] = Field(default_factory=list)


class Resources(Model):
    requests: dict[str, Quantity] = Field(default_factory=dict)
    limits: dict[str, Quantity] = Field(default_factory=dict)


class Resource:
    """What the CRD generator needs to know about a kind besides its schema."""

    kind: ClassVar[str]
    plural: ClassVar[str]
    spec: ClassVar[type[Model]]
    status: ClassVar[type[Model]]
    spec_validations: ClassVar[tuple[dict[str, str], ...]] = ()
    short_names: ClassVar[tuple[str, ...]] = ()
    scope: ClassVar[Literal["Namespaced", "Cluster"]] = "Namespaced"
    summary_condition: ClassVar[str] = "Ready"
    printer_columns: ClassVar[tuple[dict[str, Any], ...]] = ()
    root_validations: ClassVar[tuple[dict[str, str], ...]] = ()
