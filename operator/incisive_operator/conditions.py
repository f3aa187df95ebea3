"""Conditions per the Kubernetes API conventions.

A condition's lastTransitionTime changes only when its status changes, so a reconcile that
finds nothing new writes an identical status and the apiserver sees no change.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

Conditions = list[dict[str, Any]]


def now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def set_condition(
    conditions: Conditions | None,
    type_: str,
    status: bool | str,
    reason: str,
    message: str,
    generation: int | None,
) -> Conditions:
    """Return a new list with `type_` set; other conditions are kept as they were."""
    value = status if isinstance(status, str) else ("True" if status else "False")
    result = [dict(c) for c in conditions or [] if c.get("type") != type_]
    previous = next((c for c in conditions or [] if c.get("type") == type_), None)
    changed = previous is None or previous.get("status") != value
    result.append({
        "type": type_,
        "status": value,
        "reason": reason,
        "message": message,
        "lastTransitionTime": now() if changed else previous["lastTransitionTime"],
        "observedGeneration": generation,
    })
    return sorted(result, key=lambda c: c["type"])


def get_condition(conditions: Conditions | None, type_: str) -> dict[str, Any] | None:
    return next((c for c in conditions or [] if c.get("type") == type_), None)


def is_true(conditions: Conditions | None, type_: str) -> bool:
    found = get_condition(conditions, type_)
    return bool(found and found.get("status") == "True")
