"""Access grants and revocations in the ledger: commitments only.

The entry names the request by a keyed hash of `namespace/name/uid` and commits to the
SHA-256 of the signed request (the exact bytes the researcher signed), so anyone holding
the request can prove it is the one granted, and nobody can read who asked for what from
the ledger itself.

Submitted through the operator's recorder (ledger_events, configured by `incisive operator
run --ledger-url --ledger-key`): the entry is spooled to disk before the grant is applied
and sent at once or, while the log is away, as soon as it answers. Without a ledger
configured, recording is off and the grant has no `ledgerEntry`.
"""

from __future__ import annotations

import hashlib
import logging
from typing import Any

from incisive_node.ledger.entries import Event, Purpose

from .. import ledger_events

OBJECT_KIND = "data-access-request"
log = logging.getLogger(__name__)


def record_granted(request: dict[str, Any], content: bytes) -> str | None:
    return _record(Event.ACCESS_GRANTED, request, content)


def record_revoked(request: dict[str, Any], content: bytes) -> str | None:
    try:
        return _record(Event.ACCESS_REVOKED, request, content)
    except Exception as exc:  # the access is gone already; the gap is logged, loudly
        log.error("ledger: access-revoked not recorded (%s)", type(exc).__name__)
        return None


def ledger_purpose(purpose: str) -> Purpose:
    """The ledger's closed purpose vocabulary: a request's own code when it is one, else
    research (every data-access request is research under the consortium's terms)."""
    return Purpose(purpose) if purpose in Purpose._value2member_map_ else Purpose.RESEARCH


def _record(event: Event, request: dict[str, Any], content: bytes) -> str | None:
    meta = request["metadata"]
    return ledger_events.record(
        event, kind=OBJECT_KIND, identifier=f"{meta['namespace']}/{meta['name']}/{meta['uid']}",
        purpose=ledger_purpose(request["spec"]["request"]["purpose"]),
        content_sha256=hashlib.sha256(content).hexdigest())
