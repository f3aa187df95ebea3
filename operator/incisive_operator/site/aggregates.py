"""The appliance's published aggregates, read and turned into `status.aggregates`.

No kopf here. The operator pulls (`GET /aggregates` on the appliance's Service) and checks
before writing: a reply that would show a count below its own k, or that is not the shape
the appliance publishes, is refused, so a faulty appliance cannot put a small count on the
DataNode (the CRD's CEL rules refuse it a second time). The appliance's JSON is
aggregates.py's: hidden cells are `null`; here they are left out and named in `suppressed`.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

from pydantic import ValidationError

from ..api.v1alpha1.datanode import DataNodeAggregates, DataNodeSpec
from . import appliance

PATH = "/aggregates"
TIMEOUT_SECONDS = 5
MAX_REPLY = 1024 * 1024  # a few hundred cells are a few KiB; more is not an aggregate


class Unavailable(Exception):
    """The appliance did not answer with aggregates; the message says why, without data."""


class Invalid(Exception):
    """The appliance answered, but not with something we may publish."""


def service_url(name: str, namespace: str, spec: DataNodeSpec) -> str:
    """The appliance's HTTP port through its Service, from inside the cluster."""
    return f"http://{appliance.names(name)['appliance']}.{namespace}.svc:" \
           f"{spec.ingest.dicomweb.port}"


def fetch(base_url: str) -> dict[str, Any]:
    url = base_url.rstrip("/") + PATH
    try:
        with urllib.request.urlopen(url, timeout=TIMEOUT_SECONDS) as reply:  # noqa: S310
            body = reply.read(MAX_REPLY + 1)
    except urllib.error.HTTPError as exc:
        raise Unavailable(f"the appliance at {base_url} answered {PATH} with HTTP "
                          f"{exc.code}") from None
    except (OSError, ValueError) as exc:  # refused, timed out, no such host, bad URL
        reason = getattr(exc, "reason", None)
        detail = type(reason if isinstance(reason, BaseException) else exc).__name__
        raise Unavailable(f"cannot reach the appliance at {base_url} ({detail})") from None
    if len(body) > MAX_REPLY:
        raise Invalid(f"the reply is larger than {MAX_REPLY} bytes")
    try:
        found = json.loads(body)
    except ValueError:
        raise Invalid("the reply is not JSON") from None
    if not isinstance(found, dict):
        raise Invalid("the reply is not a JSON object")
    return found


def to_status(published: dict[str, Any]) -> dict[str, Any]:
    """`status.aggregates` from the appliance's reply; raises Invalid."""
    k = published.get("k")
    if not isinstance(k, int) or isinstance(k, bool) or k < 2:
        raise Invalid("k is missing or below 2")
    suppressed: list[str] = []

    def shown(partition: str, cells: Any) -> dict[str, int]:
        if not isinstance(cells, dict):
            raise Invalid(f"{partition} is not an object")
        out = {}
        for cell, count in cells.items():
            if count is None:
                suppressed.append(f"{partition}/{cell}")
            else:
                out[str(cell)] = _at_least(k, count, partition)
        return out

    consent = published.get("consent")
    if not isinstance(consent, dict):
        raise Invalid("consent is not an object")
    purposes = consent.get("purposes") or {}
    if not isinstance(purposes, dict):
        raise Invalid("consent.purposes is not an object")
    labels = published.get("label") or {}
    if not isinstance(labels, dict):
        raise Invalid("label is not an object")
    status: dict[str, Any] = {
        "k": k,
        "generatedAt": published.get("generated_at"),
        "modality": shown("modality", published.get("modality")),
        "bodyPart": shown("bodyPart", published.get("body_part")),
        "label": {name: shown(f"label/{name}", cells) for name, cells in labels.items()},
        "consent": {p: shown(f"consent/{p}", cells) for p, cells in purposes.items()},
    }
    for key, total in (("series", published.get("total")), ("patients", consent.get("total"))):
        if total is not None:
            status[key] = _at_least(k, total, key)
    status["suppressed"] = sorted(suppressed)
    try:
        checked = DataNodeAggregates.model_validate(status)
    except ValidationError as exc:
        # Field paths only: the offending values stay out of the message.
        where = sorted({".".join(map(str, e["loc"])) for e in exc.errors()})
        raise Invalid(f"the reply does not fit status.aggregates at {', '.join(where)[:300]}"
                      ) from None
    return checked.model_dump(by_alias=True, mode="json", exclude_none=True)


def _at_least(k: int, count: Any, where: str) -> int:
    if not isinstance(count, int) or isinstance(count, bool) or count < k:
        raise Invalid(f"a count in {where} is below k or not a number")
    return count


def same_counts(a: dict[str, Any] | None, b: dict[str, Any] | None) -> bool:
    """Equal but for when they were computed: nothing worth a status write."""
    def counts(x: dict[str, Any] | None) -> dict[str, Any] | None:
        return None if x is None else {key: v for key, v in x.items() if key != "generatedAt"}

    return counts(a) == counts(b)
