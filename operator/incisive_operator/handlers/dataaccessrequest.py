"""Hub mode: take a DataAccessRequest from signature to grant to expiry.

Level-based: each pass re-derives where the request stands from the cluster (its status,
its AccessReviews in the sites' namespaces, its Roles) and moves it one step on:

    SignatureValid -> PolicyAllowed -> SitesApproved -> Granted -> Expired

A refusal at any step is final (the request is signed and immutable; the researcher signs a
new one), so the timer stops looking at refused and expired requests.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

import kopf

from ..api import GROUP
from ..api.v1alpha1 import VERSION
from ..api.v1alpha1.dataaccessrequest import parse_duration
from ..conditions import get_condition, set_condition
from ..hub import access, access_grant, access_ledger, access_settings
from ..kube import apply
from ..metrics import measured

KIND = "DataAccessRequest"
PLURAL = "dataaccessrequests"
STEPS = ("SignatureValid", "PolicyAllowed", "SitesApproved")


def finished(status: dict[str, Any] | None) -> bool:
    conditions = (status or {}).get("conditions")
    if get_condition(conditions, "Expired") is not None:
        return True
    return any((c := get_condition(conditions, step)) is not None and c["status"] == "False"
               for step in STEPS)


def _active(body: kopf.Body, **_: Any) -> bool:
    return not finished(body.get("status"))


def _in_force(body: kopf.Body, **_: Any) -> bool:
    return _active(body) and bool((body.get("status") or {}).get("grant"))


def register(registry: kopf.OperatorRegistry, memo_key: str = "hub_api") -> None:
    # A timer's first tick comes as soon as the object is seen (created, or found on a
    # restart), so it is the only entry point; `when` stops it once the request is done.
    # Two seconds bound how late an expiry is enforced; a pass that finds nothing to do
    # makes no API call.
    @kopf.timer(GROUP, VERSION, PLURAL, interval=2, backoff=5, when=_active,
                registry=registry, id="access-progress")
    def reconcile_request(
        body: kopf.Body, patch: kopf.Patch, memo: kopf.Memo, logger: logging.Logger, **_: Any
    ) -> None:
        with measured(KIND):
            converge(dict(body), patch, memo[memo_key], logger)

    @kopf.timer(GROUP, VERSION, PLURAL, interval=20, when=_in_force, registry=registry,
                id="access-grant-drift")
    def keep_grant(body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
        # Put back a Role or binding someone deleted or edited while the grant is in force.
        # Not near the expiry: the other timer may be revoking it at the same moment.
        grant = body["status"]["grant"]
        soon = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=30)
        if not access_grant.is_due(grant["expiresAt"], soon):
            access_grant.apply_grant(memo[memo_key], dict(body), grant["expiresAt"])

    @kopf.on.delete(GROUP, VERSION, PLURAL, registry=registry, id="revoke")
    def withdraw(body: kopf.Body, memo: kopf.Memo, logger: logging.Logger, **_: Any) -> None:
        # Reviews and Roles live in the sites' namespaces: no owner reference reaches them.
        api, uid = memo[memo_key], body["metadata"]["uid"]
        removed = access_grant.revoke(api, uid)
        reviews = access.withdraw_reviews(api, uid)
        grant = (body.get("status") or {}).get("grant")
        expired = get_condition((body.get("status") or {}).get("conditions"), "Expired")
        if grant and expired is None:
            access_ledger.record_revoked(dict(body), access.content_of(dict(body["spec"])))
        logger.info("withdrew %d reviews and %d RBAC objects", reviews, removed)


def converge(request: dict[str, Any], patch: kopf.Patch, api: Any,
             logger: logging.Logger) -> None:
    status = request.get("status") or {}
    if finished(status):
        return
    generation = request["metadata"].get("generation")
    spec = request["spec"]
    conditions = list(status.get("conditions") or [])
    now = dt.datetime.now(dt.UTC)

    def step(kind: str, outcome: access.Outcome) -> None:
        nonlocal conditions
        before = get_condition(conditions, kind)
        conditions = set_condition(conditions, kind, outcome.status, outcome.reason,
                                   outcome.message, generation)
        if before is None or before["reason"] != outcome.reason:
            (kopf.warn if outcome.status == "False" else kopf.info)(
                request, reason=outcome.reason, message=outcome.message)

    def publish(ready: access.Outcome) -> None:
        step("Ready", ready)
        patch.status["conditions"] = conditions
        patch.status["observedGeneration"] = generation

    # 1. The signature: checked once (the spec is immutable), against the signing time.
    signature = get_condition(conditions, "SignatureValid")
    signer = status.get("signer")
    if signature is None or signature["status"] != "True" or not signer:
        settings = access_settings.read(api)
        outcome, signer = access.verify_signature(spec, settings, now)
        step("SignatureValid", outcome)
        if not outcome.passed:
            return publish(access.Outcome("False", outcome.reason, outcome.message))
        patch.status["signer"] = signer

    granted = status.get("grant")
    if not granted:
        # 2. The hub's own policy, then 3. the sites, until the grant.
        settings = access_settings.read(api)
        policy = access.check_policy(api, spec, settings)
        step("PolicyAllowed", policy)
        if not policy.passed:
            return publish(access.Outcome("False", policy.reason, policy.message))
        sites = access.sites_of(spec)
        reviews = access.list_reviews(api, request["metadata"]["uid"])
        for site in sites:
            if site not in reviews:
                reviews[site] = apply(api, access.review(request, site, signer["fingerprint"]))
        decisions = access.answers(sites, reviews)
        patch.status["sites"] = decisions
        approved = access.sites_outcome(decisions)
        step("SitesApproved", approved)
        if not approved.passed:
            if approved.status == "False":
                return publish(access.Outcome("False", approved.reason, approved.message))
            step("Granted", access.Outcome("False", "AwaitingSites", approved.message))
            return publish(access.Outcome("Unknown", approved.reason, approved.message))
        granted = _grant(api, request, now, logger)
        patch.status["grant"] = granted
        step("Granted", access.Outcome(
            "True", "Granted",
            f"{granted['userName']} may read the granted datasets until {granted['expiresAt']}"))
        return publish(access.Outcome("True", "Granted",
                                      f"access in force until {granted['expiresAt']}"))

    # 4. In force until it expires.
    if access_grant.is_due(granted["expiresAt"], now):
        removed = access_grant.revoke(api, request["metadata"]["uid"])
        access_ledger.record_revoked(request, access.content_of(spec))
        message = (f"the access expired at {granted['expiresAt']}; {removed} RBAC objects "
                   "removed")
        step("Granted", access.Outcome("False", "Expired", message))
        step("Expired", access.Outcome("True", "Expired", message))
        logger.info("access expired; %d RBAC objects removed", removed)
        return publish(access.Outcome("False", "Expired", message))
    return None


def _grant(api: Any, request: dict[str, Any], now: dt.datetime,
           logger: logging.Logger) -> dict[str, Any]:
    spec = request["spec"]
    uid = request["metadata"]["uid"]
    # A pass that stopped after writing the Roles keeps the expiry it already granted.
    expires_at = access_grant.existing_expiry(api, uid) or access_grant.expiry(
        now, parse_duration(spec["request"]["duration"]))
    # The ledger first: no access that the ledger does not show.
    entry = access_ledger.record_granted(request, access.content_of(spec))
    roles = access_grant.apply_grant(api, request, expires_at)
    logger.info("access granted until %s in %d site namespaces", expires_at, len(roles))
    grant = {"grantedAt": now.strftime("%Y-%m-%dT%H:%M:%SZ"), "expiresAt": expires_at,
             "userName": spec["request"]["requester"]["userName"], "roles": roles}
    if entry:
        grant["ledgerEntry"] = entry
    return grant
