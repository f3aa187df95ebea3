"""Site mode: copy each appliance's published aggregates into its DataNode's status.

A daemon per DataNode pulls `GET /aggregates` from the appliance (site/aggregates.py) and
writes `status.aggregates` only when the counts changed, so a quiet site costs one HTTP GET
per interval and no API call. An appliance that does not answer, or answers with something
that may not be published, keeps the last aggregates and sets `AggregatesCurrent=False`;
the DataNode's other conditions and its reconciliation do not depend on it.
"""

from __future__ import annotations

import asyncio
import logging
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import kopf
from pydantic import ValidationError

from ..api import GROUP
from ..api.v1alpha1 import VERSION
from ..api.v1alpha1.datanode import DataNodeSpec
from ..conditions import get_condition, set_condition
from ..kube import swap_status
from ..site import aggregates

PLURAL = "datanodes"
CONDITION = "AggregatesCurrent"
DEFAULT_INTERVAL = 60.0
# A read blocks for up to aggregates.TIMEOUT_SECONDS when an appliance is down. In kopf's
# own workers such reads could hold all eight threads that every other handler needs; here
# they only wait on each other.
_POOL = ThreadPoolExecutor(max_workers=4, thread_name_prefix="aggregates")
# Not kopf's per-object logger: that one posts every INFO line as a Kubernetes Event, and
# counts changing at a busy site are not news; the condition's transitions are.
log = logging.getLogger(__name__)

Event = tuple[bool, str, str]  # (ok, reason, message) to post as a Kubernetes Event


def register(registry: kopf.OperatorRegistry, interval: float = DEFAULT_INTERVAL,
             memo_key: str = "site_api") -> None:
    if interval <= 0:
        return  # off

    # A daemon that sleeps, not a kopf timer: kopf logs every timer run at INFO, and its
    # object logger posts INFO lines as Events, one per DataNode per interval.
    # The first read comes one interval after the operator sees a DataNode: a restarted
    # operator with many DataNodes does not read every appliance at once, and a new
    # appliance needs about that long to start anyway.
    @kopf.daemon(GROUP, VERSION, PLURAL, registry=registry, id="aggregates",
                 initial_delay=interval, cancellation_timeout=aggregates.TIMEOUT_SECONDS + 5)
    async def read_aggregates(body: kopf.Body, stopped: kopf.DaemonStopped, memo: kopf.Memo,
                              **_: Any) -> None:
        while not stopped:
            await _read_once(body, memo[memo_key], memo.get("appliance_url"))
            await stopped.wait(interval)


async def _read_once(body: kopf.Body, api: Any, appliance_url: str | None) -> None:
    if body["metadata"].get("deletionTimestamp"):
        return
    try:
        spec = DataNodeSpec.model_validate(dict(body.get("spec", {})))
    except ValidationError:
        return  # reconcile_datanode reports it (Ready=False, InvalidSpec)
    name, namespace = body["metadata"]["name"], body["metadata"]["namespace"]
    url = appliance_url or aggregates.service_url(name, namespace, spec)
    # The daemon's body is kopf's live view of the object: a copy, as the worker reads it.
    seen = {"status": dict(body.get("status") or {})}
    event = await asyncio.get_running_loop().run_in_executor(
        _POOL, refresh, api, namespace, name, url, seen)
    if event is not None:
        ok, reason, message = event
        (kopf.info if ok else kopf.warn)(dict(body), reason=reason, message=message)


def refresh(api: Any, namespace: str, name: str, url: str, seen: dict[str, Any]
            ) -> Event | None:
    """Read the appliance, write what changed; the Event to post on a transition."""
    wanted: dict[str, Any] | None = None
    try:
        wanted = aggregates.to_status(aggregates.fetch(url))
        ok, reason, message = True, "AggregatesRead", (
            f"status.aggregates is what the appliance at {url} publishes")
    except aggregates.Unavailable as exc:
        ok, reason, message = False, "AggregatesUnavailable", (
            f"{exc}; the last aggregates read are kept. Check that the appliance pod is "
            "ready and that its NetworkPolicy admits the operator (same namespace)")
    except aggregates.Invalid as exc:
        ok, reason, message = False, "AggregatesInvalid", (
            f"the appliance's aggregates were not published: {exc}; the last ones read are "
            "kept. The appliance may be older or newer than this operator")
    if not _differs(seen.get("status") or {}, wanted, ok, reason, message):
        return None  # what kopf last saw is already right: no API call
    return _write(api, namespace, name, wanted, ok, reason, message)


def _differs(status: dict[str, Any], wanted: dict[str, Any] | None, ok: bool, reason: str,
             message: str) -> bool:
    shown = get_condition(status.get("conditions"), CONDITION)
    condition_changes = shown is None or (shown.get("status"), shown.get("reason"),
                                          shown.get("message")) != (
        "True" if ok else "False", reason, message)
    return condition_changes or (wanted is not None and not aggregates.same_counts(
        status.get("aggregates"), wanted))


def _write(api: Any, namespace: str, name: str, wanted: dict[str, Any] | None, ok: bool,
           reason: str, message: str) -> Event | None:
    # A JSON patch: a merge patch would keep cells that are gone from the maps. As a
    # compare-and-swap, so a status written in between (the readiness refresh, the
    # enrolment daemon) is not lost.
    shown: dict[str, Any] = {}

    def patch_for(current: dict[str, Any]) -> list[dict[str, Any]] | None:
        status = current.get("status") or {}
        if not _differs(status, wanted, ok, reason, message):
            return None
        shown["condition"] = get_condition(status.get("conditions"), CONDITION)
        operations: list[dict[str, Any]] = []
        if "status" not in current:
            operations.append({"op": "add", "path": "/status", "value": {}})
        operations.append({"op": "add", "path": "/status/conditions", "value": set_condition(
            status.get("conditions"), CONDITION, ok, reason, message,
            status.get("observedGeneration"))})
        if wanted is not None and not aggregates.same_counts(status.get("aggregates"),
                                                             wanted):
            operations.append({"op": "add", "path": "/status/aggregates", "value": wanted})
        return operations

    if not swap_status(api, GROUP, VERSION, namespace, PLURAL, name, patch_for):
        return None
    log.info("status.aggregates of %s/%s written (%s)", namespace, name, reason)
    previous = shown["condition"]
    transition = previous is None or previous.get("status") != ("True" if ok else "False")
    # No warning for a first read that fails: the appliance may just be starting, and
    # the condition says so; a failure after a success, or the first success, is news.
    if transition and (ok or previous is not None):
        return ok, reason, message
    return None
