"""DataAccessRequest: a researcher's signed request for datasets, on the hub; and
AccessReview, the per-site question the hub asks about it.

The part a researcher signs is `spec.request`. Its canonical form (:func:`signed_content`)
is what the detached CMS signature in `spec.signature` covers, made with the researcher's
qualified electronic-signature certificate (eIDAS esign). The hub verifies it, checks its
own policy, writes an AccessReview into each named site's namespace for the site to answer
(pull-only), and when every site approved, grants scoped access that expires.
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated, Any, Literal

from pydantic import Field

from .common import Condition, DNSLabel, Model, Purpose, Resource, cel
from .trainingjob import DataQuery

# "30d", "12h", "90m", "1h30m", "45s": the same spelling as an HPC time limit, plus days.
DURATION_PATTERN = r"^([0-9]+d)?([0-9]+h)?([0-9]+m)?([0-9]+s)?$"
_DURATION_PART = re.compile(r"([0-9]+)([dhms])")
_UNIT_SECONDS = {"d": 86400, "h": 3600, "m": 60, "s": 1}
# A Kubernetes user name as an authenticator reports it (OIDC subject or e-mail, a client
# certificate's CN): printable, no spaces; never a system: identity (CEL below).
USER_NAME_PATTERN = r"^[A-Za-z0-9._@:+-]{1,253}$"


def parse_duration(text: str) -> timedelta:
    if not text or not re.fullmatch(DURATION_PATTERN, text):
        raise ValueError(f"{text!r} is not a duration like 30d, 12h or 1h30m")
    return timedelta(seconds=sum(int(n) * _UNIT_SECONDS[u]
                                 for n, u in _DURATION_PART.findall(text)))


class Requester(Model):
    user_name: str = Field(
        pattern=USER_NAME_PATTERN,
        description="The researcher's user name on the hub (as the hub's authenticator "
        "reports it); the grant is bound to it.")
    organization_identifier: str | None = Field(
        default=None, max_length=64,
        description="The organisation the researcher acts for (ETSI EN 319 412-1 "
        "organizationIdentifier); the signature certificate must name the same.")


class RequestedDataset(Model):
    site: DNSLabel = Field(description="The FederatedSite that holds the dataset.")
    name: DNSLabel = Field(description="The dataset's name in that site's catalogue.")
    query: DataQuery = Field(default_factory=DataQuery,
                             description="Narrows the dataset (empty: all of it).")


class AccessRequest(Model):
    """What the researcher signs."""

    requester: Requester
    purpose: Purpose
    datasets: list[RequestedDataset] = Field(min_length=1, max_length=64)
    duration: str = Field(pattern=DURATION_PATTERN, max_length=32,
                          description="How long the access lasts once granted, e.g. 30d.")


class DataAccessRequestSpec(Model):
    request: AccessRequest
    signature: str = Field(
        min_length=1, max_length=65536, pattern=r"^[A-Za-z0-9+/=\s]+$",
        description="Base64 detached CMS (CAdES-B-B) signature over the canonical JSON of "
        "spec.request (`incisive access sign` makes it).")
    certificate_chain: list[Annotated[str, Field(max_length=16384)]] = Field(
        default_factory=list, max_length=8,
        description="PEM certificates between the signer and the trusted-list service, when "
        "the signature does not carry them itself.")


class SiteAnswer(Model):
    site: str
    decision: Literal["Pending", "Approved", "Declined"]
    reason: str = ""
    message: str = ""


class Signer(Model):
    fingerprint: str = Field(description="SHA-256 of the signer certificate (hex).")
    organization_identifier: str | None = None
    signing_time: str | None = Field(default=None, json_schema_extra={"format": "date-time"})
    trust_service: str | None = Field(default=None,
                                      description="The trusted-list service the chain ends at.")


class Grant(Model):
    granted_at: str = Field(json_schema_extra={"format": "date-time"})
    expires_at: str = Field(json_schema_extra={"format": "date-time"})
    user_name: str
    roles: list[str] = Field(default_factory=list,
                             description="The Roles (namespace/name) that carry the access.")
    ledger_entry: str | None = Field(default=None,
                                     description="Leaf hash of the ledger's access-granted entry.")


class DataAccessRequestStatus(Model):
    observed_generation: int | None = None
    conditions: list[Condition] = Field(default_factory=list)
    signer: Signer | None = None
    sites: list[SiteAnswer] = Field(default_factory=list)
    grant: Grant | None = None


class DataAccessRequest(Resource):
    kind = "DataAccessRequest"
    plural = "dataaccessrequests"
    short_names = ("dar",)
    spec = DataAccessRequestSpec
    status = DataAccessRequestStatus
    printer_columns = (
        {"name": "Purpose", "type": "string", "jsonPath": ".spec.request.purpose"},
        {"name": "Expires", "type": "string", "jsonPath": ".status.grant.expiresAt"},
    )
    spec_validations = (
        cel("self == oldSelf",
            "a DataAccessRequest is immutable (it is signed); create a new one instead"),
        cel("self.request.duration != ''", "duration must not be empty", ".request.duration"),
        cel("!self.request.requester.userName.startsWith('system:')",
            "access cannot be granted to a system: identity", ".request.requester.userName"),
    )


class RequestRef(Model):
    namespace: DNSLabel
    name: str = Field(min_length=1, max_length=253)
    uid: str = Field(min_length=1, max_length=64)


class ReviewedDataset(Model):
    name: DNSLabel
    query: DataQuery = Field(default_factory=DataQuery)


class AccessReviewSpec(Model):
    request_ref: RequestRef
    requester: Requester
    signer_fingerprint: str = Field(pattern=r"^[0-9a-f]{64}$")
    purpose: Purpose
    datasets: list[ReviewedDataset] = Field(min_length=1, max_length=64)
    duration: str = Field(pattern=DURATION_PATTERN, max_length=32)


class AccessReviewStatus(Model):
    observed_generation: int | None = None
    conditions: list[Condition] = Field(default_factory=list)
    decision: Literal["Pending", "Approved", "Declined"] | None = None
    reason: str | None = None
    message: str | None = None


class AccessReview(Resource):
    kind = "AccessReview"
    plural = "accessreviews"
    short_names = ("arev",)
    spec = AccessReviewSpec
    status = AccessReviewStatus
    summary_condition = "Decided"
    printer_columns = (
        {"name": "Request", "type": "string", "jsonPath": ".spec.requestRef.name"},
        {"name": "Decision", "type": "string", "jsonPath": ".status.decision"},
    )
    spec_validations = (
        cel("self == oldSelf", "an AccessReview's spec is immutable"),
    )


def signed_content(request: dict[str, Any] | AccessRequest) -> dict[str, Any]:
    """The JSON document the signature covers: the request with every default filled in.

    The apiserver fills in schema defaults (an empty query, say) that the signer may have
    left out; normalising through the model on both sides makes the two forms equal.
    """
    model = request if isinstance(request, AccessRequest) else AccessRequest.model_validate(
        request)
    return model.model_dump(mode="json", by_alias=True, exclude_none=True)
