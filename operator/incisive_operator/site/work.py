"""A site's answer to work the hub offers, under the site's own policy.

The hospital decides, not the hub: the purpose must be one its policy allows, and unless
the policy says Automatic, a local person approves each WorkItem by name (annotation
`incisive-project.eu/approved-work` on the DataNode, comma-separated WorkItem names).
A site that trains (its operator runs a federated-learning runtime) also checks a
TrainingJob's app before it accepts: `app_check` (site/training.py) declines an app that is
unsigned, signed by a key the policy does not trust, or not the bundle the job names.
Consent per patient is enforced later still, when the data is read for the run.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..api.v1alpha1.datanode import Policy

APPROVED_WORK_ANNOTATION = "incisive-project.eu/approved-work"


@dataclass(frozen=True)
class Decision:
    decision: str  # Accepted, Declined, Pending
    reason: str
    message: str


def purpose_refused(policy: Policy, purpose: str) -> Decision | None:
    """The site's answer to a purpose its policy does not allow (work and access alike)."""
    if purpose in policy.allowed_purposes:
        return None
    allowed = ", ".join(policy.allowed_purposes) or "none"
    return Decision("Declined", "PurposeNotAllowed",
                    f"purpose {purpose!r} is not allowed by this site's policy "
                    f"(allowed: {allowed})")


AppCheck = Callable[[Policy, dict[str, Any]], "Decision | None"]


def decide(policy: Policy, workitem: dict[str, Any], approved: set[str],
           app_check: AppCheck | None = None) -> Decision:
    spec = workitem.get("spec") or {}
    purpose = spec.get("purpose", "")
    if (refused := purpose_refused(policy, purpose)) is not None:
        return refused
    if app_check is not None and (refused := app_check(policy, workitem)) is not None:
        return refused
    name = workitem["metadata"]["name"]
    if policy.work_approval == "Manual" and name not in approved:
        return Decision("Pending", "AwaitingLocalApproval",
                        f"this site approves work by hand: annotate its DataNode with "
                        f"{APPROVED_WORK_ANNOTATION}={name}")
    how = "automatically" if policy.work_approval == "Automatic" else "by a local approver"
    return Decision("Accepted", "PolicyAccepted",
                    f"purpose {purpose!r} is allowed; accepted {how}")


def approved_names(datanode: dict[str, Any],
                   annotation: str = APPROVED_WORK_ANNOTATION) -> set[str]:
    raw = (datanode["metadata"].get("annotations") or {}).get(annotation, "")
    return {name.strip() for name in raw.split(",") if name.strip()}
