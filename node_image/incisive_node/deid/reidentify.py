"""Re-identification: only with a Vault token holding the dedicated policy, and every attempt,
granted or not, appended to the audit log (pseudonym and requester only, never PHI)."""

from __future__ import annotations

import datetime as dt
import json
import os
import pathlib

from incisive_node.ledger import events as ledger_events

from .mapping import REID_POLICY_NAME, MappingStore


class Refused(Exception):
    """The requester may not re-identify."""


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


def audit(path: pathlib.Path, pseudonym: str, requester: str, outcome: str) -> None:
    line = json.dumps({"time": _now(), "event": "reidentify", "pseudonym": pseudonym,
                       "requester": requester, "outcome": outcome}, sort_keys=True)
    # O_APPEND: concurrent writers each land whole lines at the end; nothing is rewritten.
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
    try:
        os.write(fd, (line + "\n").encode())
    finally:
        os.close(fd)
    # Anchored in the ledger (keyed pseudonym, hash of this line) when a recorder is set up.
    ledger_events.reidentification(pseudonym, outcome, line.encode())


def _whoami(client) -> tuple[str, list[str]]:
    try:
        data = client.auth.token.lookup_self()["data"]
    except Exception:
        return "unknown-token", []
    name = data.get("display_name") or "token"
    accessor = data.get("accessor") or "?"
    policies = list(data.get("policies") or []) + list(data.get("identity_policies") or [])
    return f"{name} ({accessor})", policies


def reidentify(pseudonyms: list[str], store: MappingStore, audit_path: pathlib.Path) -> dict:
    """pseudonym -> original identifiers; raises Refused (after logging) without the policy."""
    requester, policies = _whoami(store.client)
    if REID_POLICY_NAME not in policies and "root" not in policies:
        for p in pseudonyms:
            audit(audit_path, p, requester, "refused")
        raise Refused(f"this Vault token lacks the {REID_POLICY_NAME!r} policy")
    found = {}
    for p in pseudonyms:
        ciphertext = store.ciphertext(p)
        if ciphertext is None:
            audit(audit_path, p, requester, "not-found")
            continue
        try:
            found[p] = store.decrypt(p, ciphertext)
        except Exception as exc:
            audit(audit_path, p, requester, "refused")
            raise Refused("Vault refused to decrypt the mapping") from exc
        audit(audit_path, p, requester, "granted")
    return found
