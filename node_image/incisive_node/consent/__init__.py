"""Consent and data donorship: decisions per pseudonymous patient and purpose, a site
default, withdrawal, enforcement at the moment of use, an audited history, and a donor API
behind revocable pseudonymous tokens. See docs/consent.md."""

from incisive_node.consent.audit import AuditSink, IndexAuditLog
from incisive_node.consent.enforcement import (
    decision,
    filter_permitted,
    offerable_series,
    permits,
    permitting,
)
from incisive_node.consent.model import (
    ANY_GRANTEE,
    CENTRAL_HPC,
    DENY,
    FEDERATED_TRAINING,
    PERMIT,
    ConsentRecord,
    InvalidConsent,
    SitePolicy,
)
from incisive_node.consent.registry import ConsentRegistry
from incisive_node.consent.tokens import DonorTokens

__all__ = [
    "ANY_GRANTEE", "CENTRAL_HPC", "DENY", "FEDERATED_TRAINING", "PERMIT", "AuditSink",
    "ConsentRecord", "ConsentRegistry", "DonorTokens", "IndexAuditLog", "InvalidConsent",
    "SitePolicy", "decision", "filter_permitted", "offerable_series", "permits", "permitting",
]
