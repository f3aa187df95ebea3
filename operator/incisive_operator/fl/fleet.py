"""What the hub tells a site about a job's SuperLink, in the site's WorkItem.

The WorkItem's spec is immutable (the hub replaces an offer instead of changing it under a
site's decision), and the SuperLink exists only once enough sites have accepted, so the
hub writes it afterwards as one annotation, `incisive-project.eu/fleet`, holding JSON:

    {"address": "127.30.200.100:40123",   the Fleet endpoint the SuperNode dials
     "caCert": "-----BEGIN CERTIFICATE...", the CA to trust for it (PEM)
     "nodeId": 1234,                       the node id the site's public key was registered as
     "phase": "Running" | "Finished"}      Finished: stop the SuperNode, the job is over

An address means the hub registered the site's SuperNode key. When a job ends, every one
of its WorkItems is marked Finished (with no address if the site never got that far). The
site can read annotations of its WorkItems but not change them (RBAC: status only).
"""

from __future__ import annotations

import json
from typing import Any, Literal

from pydantic import Field, ValidationError

from ..api import GROUP
from ..api.v1alpha1.common import Model

ANNOTATION = f"{GROUP}/fleet"


class Fleet(Model):
    address: str | None = Field(default=None, min_length=3, max_length=255)
    ca_cert: str | None = Field(default=None, min_length=1, max_length=16384)
    node_id: int | None = None
    phase: Literal["Running", "Finished"] = "Running"


def read(workitem: dict[str, Any]) -> Fleet | None:
    """The hub's fleet annotation on a WorkItem, or None (absent or unreadable)."""
    raw = ((workitem.get("metadata") or {}).get("annotations") or {}).get(ANNOTATION)
    if not raw:
        return None
    try:
        return Fleet.model_validate(json.loads(raw))
    except (ValueError, ValidationError):
        return None


def annotation(fleet: Fleet) -> dict[str, str]:
    return {ANNOTATION: json.dumps(fleet.model_dump(by_alias=True, exclude_none=True),
                                   sort_keys=True)}
