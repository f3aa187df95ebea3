"""Count our objects by their summary condition, for `incisive_operator_objects`."""

from __future__ import annotations

from typing import Any

import kopf

from ..api import GROUP
from ..api.v1alpha1 import VERSION, Resource
from ..metrics import COUNTS


def register(registry: kopf.OperatorRegistry, kinds: tuple[type[Resource], ...]) -> None:
    for resource in kinds:
        _register_one(registry, resource)


def _register_one(registry: kopf.OperatorRegistry, resource: type[Resource]) -> None:
    @kopf.on.event(GROUP, VERSION, resource.plural, registry=registry,
                   id=f"count-{resource.plural}")
    def count(event: dict[str, Any], body: kopf.Body, **_: Any) -> None:
        uid = body["metadata"]["uid"]
        if event.get("type") == "DELETED":
            COUNTS.observe(resource.kind, uid, None)
            return
        conditions = (body.get("status") or {}).get("conditions") or []
        summary = next((c for c in conditions if c.get("type") == resource.summary_condition),
                       None)
        COUNTS.observe(resource.kind, uid, (summary or {}).get("status", "Unknown"))
