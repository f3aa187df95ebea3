"""Consent as the appliance keeps it: one decision per patient (pseudonym), purpose and
grantee, over a period; a site default for everything nobody decided."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

FEDERATED_TRAINING = "federated-training"
CENTRAL_HPC = "central-hpc"
PROJECT_PREFIX = "project:"  # a named research project: project:<slug>
PERMIT, DENY = "permit", "deny"
ACTIVE, SUPERSEDED = "active", "superseded"
ANY_GRANTEE = "*"

_PROJECT = re.compile(r"project:[a-z0-9][a-z0-9-]{0,62}")
_GRANTEE = re.compile(r"\*|[A-Za-z0-9][A-Za-z0-9._:-]{0,127}")


class InvalidConsent(ValueError):
    """A purpose, grantee, decision or period we do not accept; the message says which."""


def check_purpose(purpose: str) -> str:
    if purpose in (FEDERATED_TRAINING, CENTRAL_HPC) or _PROJECT.fullmatch(purpose):
        return purpose
    raise InvalidConsent("purpose must be federated-training, central-hpc or project:<slug>")


def check_grantee(grantee: str) -> str:
    if _GRANTEE.fullmatch(grantee):
        return grantee
    raise InvalidConsent("grantee must be * or an organisation/project identifier")


def check_decision(decision: str) -> str:
    if decision in (PERMIT, DENY):
        return decision
    raise InvalidConsent("decision must be permit or deny")


@dataclass(frozen=True)
class ConsentRecord:
    consent_id: str
    patient: str  # pseudonym
    purpose: str
    grantee: str
    decision: str
    start: str | None  # ISO date or datetime, inclusive
    end: str | None  # exclusive
    status: str  # ACTIVE or SUPERSEDED
    recorded_at: str
    source: str  # who decided: staff, donor

    def in_force(self, at: str) -> bool:
        return (self.start is None or self.start <= at) and (self.end is None or at < self.end)


@dataclass(frozen=True)
class SitePolicy:
    """What applies where a patient has decided nothing (or nothing in force)."""

    defaults: dict[str, str] = field(default_factory=dict)  # purpose -> decision
    otherwise: str = DENY  # purposes the site has not listed, named projects included

    def decision(self, purpose: str) -> str:
        return self.defaults.get(purpose, self.otherwise)

    def purposes(self) -> list[str]:
        return sorted(self.defaults)
