"""What `incisive ledger verify|prove|tail` do, as functions over a store.

`verify` trusts nothing in the store. It re-parses every entry, checks its submitter's
signature, recomputes every leaf hash and the tree, and checks every stored checkpoint
against the witness policy. The stored tree is only believed where the signed checkpoints
vouch for it; then any entry whose hash differs from the tree is named by position.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field

from .checkpoint import Checkpoint
from .entries import EntryError, Submitters, parse_leaf
from .merkle import Tree, leaf_hash, verify_inclusion
from .policy import PolicyError, WitnessPolicy
from .store import LedgerStore, StoreError


class AuditError(RuntimeError):
    """The question cannot be answered from this store (no such entry, no checkpoint)."""


@dataclass(frozen=True)
class Problem:
    position: int | None
    message: str

    def __str__(self) -> str:
        where = f"position {self.position}: " if self.position is not None else ""
        return f"{where}{self.message}"


@dataclass
class Report:
    size: int = 0
    checkpoints: int = 0
    covered: int = 0
    problems: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def first_position(self) -> int | None:
        positions = [p.position for p in self.problems if p.position is not None]
        return min(positions) if positions else None

    def add(self, position: int | None, message: str) -> None:
        self.problems.append(Problem(position, message))


def _stored_tree(store: LedgerStore, report: Report) -> Tree | None:
    try:
        levels, size = store.levels()
        return Tree.from_levels(levels, size) if size else Tree()
    except (StoreError, ValueError) as exc:
        report.add(None, f"the stored tree is damaged ({exc}); only checkpoints can vouch")
        return None


def _accepted_checkpoints(store: LedgerStore, policy: WitnessPolicy,
                          report: Report) -> list[Checkpoint]:
    accepted = []
    for size, note in store.checkpoints():
        try:
            checkpoint, _ = policy.accept(note)
        except PolicyError as exc:
            report.add(None, f"checkpoint for size {size} rejected: {exc}")
            continue
        if checkpoint.size != size:
            report.add(None, f"checkpoint filed under size {size} is for size {checkpoint.size}")
            continue
        accepted.append(checkpoint)
    report.checkpoints = len(accepted)
    return accepted


def verify(store: LedgerStore, policy: WitnessPolicy,
           submitters: Submitters | None = None) -> Report:
    report = Report()
    checkpoints = _accepted_checkpoints(store, policy, report)
    stored = _stored_tree(store, report)
    fresh = Tree()
    mismatched: list[int] = []
    for index, leaf in store.entries():
        if index != fresh.size:
            report.add(fresh.size, "entry missing: the stored entries skip this position")
            break
        try:
            signed = parse_leaf(leaf)
            if submitters is not None:
                submitters.verify(signed)
        except EntryError as exc:
            report.add(index, f"entry rejected: {exc}")
        digest = leaf_hash(leaf)
        if stored is not None and index < stored.size and stored.leaf(index) != digest:
            mismatched.append(index)
        fresh.append(digest)
    report.size = fresh.size
    if stored is not None and stored.size != fresh.size and not report.problems:
        report.add(min(stored.size, fresh.size),
                   f"entry missing or extra: the tree records {stored.size} entries, "
                   f"the store holds {fresh.size}")

    # The stored tree is evidence only where every signed checkpoint agrees with it.
    stored_vouched = stored is not None and all(
        c.size <= stored.size and stored.root(c.size) == c.root for c in checkpoints)
    previous = 0
    for checkpoint in checkpoints:
        size = checkpoint.size
        if size > fresh.size:
            if not any(p.position == fresh.size for p in report.problems):
                report.add(fresh.size, f"entry missing: checkpoint {size} covers it, the "
                                       f"store ends at {fresh.size}")
        elif fresh.root(size) != checkpoint.root and not (stored_vouched and mismatched):
            report.add(None, f"recomputed root at size {size} differs from the signed "
                             f"checkpoint: an entry in positions {previous}..{size - 1} changed")
        report.covered = max(report.covered, min(size, fresh.size))
        previous = size
    if stored_vouched:
        for index in mismatched:
            report.add(index, "entry changed, deleted or moved: its hash differs from the "
                              "leaf hash the signed tree records here")
    elif mismatched:
        report.add(None, "the stored tree differs from the entries and the checkpoints do not "
                         "vouch for it")
    if fresh.size and not checkpoints:
        report.add(None, "no accepted checkpoint covers the log")
    report.problems.sort(key=lambda p: (p.position is None, p.position or 0))
    return report


def _resolve(entry: str, stored: Tree) -> int:
    if entry.isdigit():
        return int(entry)
    try:
        digest = bytes.fromhex(entry)
    except ValueError as exc:
        raise AuditError("ENTRY is a position or a 64-hex leaf hash") from exc
    index = stored.find(digest) if len(digest) == 32 else None
    if index is None:
        raise AuditError("no entry has that leaf hash")
    return index


def prove(store: LedgerStore, entry: str, policy: WitnessPolicy) -> dict:
    """An inclusion proof for ENTRY against the latest accepted checkpoint, checked here."""
    latest = store.latest_checkpoint()
    if latest is None:
        raise AuditError("the log has no checkpoint yet")
    checkpoint, cosigners = policy.accept(latest[1])
    levels, size = store.levels()
    stored = Tree.from_levels(levels, size) if size else Tree()
    index = _resolve(entry, stored)
    if index >= checkpoint.size:
        raise AuditError(f"entry {index} is not covered by the latest checkpoint "
                         f"(size {checkpoint.size})")
    digest = leaf_hash(store.leaf(index))
    proof = stored.inclusion_proof(index, checkpoint.size)
    if not verify_inclusion(index, checkpoint.size, digest, proof, checkpoint.root):
        raise AuditError(f"entry {index} is not included in the signed tree: the store "
                         "was changed")
    return {"index": index, "size": checkpoint.size, "leaf_hash": digest.hex(),
            "proof": [base64.b64encode(p).decode() for p in proof],
            "root": base64.b64encode(checkpoint.root).decode(),
            "cosigners": cosigners, "checkpoint": latest[1].decode()}


def tail(store: LedgerStore, count: int = 10) -> dict:
    size = store.size()
    rows = []
    for index, leaf in store.entries(max(size - count, 0)):
        try:
            entry = parse_leaf(leaf).entry
            rows.append({"index": index, "leaf_hash": leaf_hash(leaf).hex(),
                         "event": entry["event"], "purpose": entry["purpose"],
                         "time": entry["time"], "actor": entry["actor"][:16]})
        except EntryError as exc:
            rows.append({"index": index, "leaf_hash": leaf_hash(leaf).hex(),
                         "error": str(exc)})
    latest = store.latest_checkpoint()
    head = None
    if latest is not None:
        parsed = Checkpoint.parse(latest[1][:latest[1].rfind(b"\n\n") + 1])
        head = {"size": parsed.size, "root": base64.b64encode(parsed.root).decode()}
    return {"size": size, "checkpoint": head, "entries": rows}
