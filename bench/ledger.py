"""Ledger throughput: appends/s (schema check, Ed25519 verification, tree update, SQLite
write) and proof generation/verification rates, at 10^5 and 10^6 entries.

    .venv/bin/python bench/ledger.py            # both scales, a few minutes
    .venv/bin/python bench/ledger.py --quick    # 10^4 and 10^5, for a smoke run

Both scales use the SQLite store (WAL, synchronous=NORMAL) in a temporary folder.
At 10^5 every entry is appended the real way. Signing 10^6 entries would take this machine
longer than the benchmark should, so the 10^6 tree is filled in bulk (leaf hashes and
rows written directly, no signature checks); then appends are timed the real way on top of
it, and the log is reopened from disk to time loading its stored tree.
Exits non-zero when appends/s misses the target (5,000/s, batched sequencing).
"""

from __future__ import annotations

import argparse
import hashlib
import random
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from incisive_node.ledger.entries import (
    Event,
    Purpose,
    SignedEntry,
    Submitters,
    keyed_object_id,
    sign_entry,
)
from incisive_node.ledger.log import Log
from incisive_node.ledger.merkle import Tree, leaf_hash, verify_consistency, verify_inclusion
from incisive_node.ledger.note import Ed25519Signer
from incisive_node.ledger.store import SQLiteStore

TARGET_APPENDS = 5_000
BATCH = 100
OBJECT_KEY = hashlib.sha256(b"bench object key").digest()
EVENTS, PURPOSES = list(Event), list(Purpose)


def make_entries(count: int, start: int, keys: list[tuple[str, Ed25519PrivateKey]]
                 ) -> list[SignedEntry]:
    out = []
    for n in range(start, start + count):
        actor, key = keys[n % len(keys)]
        entry = {"v": 1, "event": EVENTS[n % len(EVENTS)].value, "actor": actor,
                 "object": keyed_object_id(OBJECT_KEY, "dataset", str(n)),
                 "content": hashlib.sha256(b"%d" % n).hexdigest(),
                 "purpose": PURPOSES[n % len(PURPOSES)].value,
                 "time": f"2025-06-{1 + n // 86400 % 28:02d}T{n // 3600 % 24:02d}:"
                         f"{n // 60 % 60:02d}:{n % 60:02d}Z"}
        out.append(sign_entry(entry, key))
    return out


def rate(count: int, seconds: float) -> float:
    return count / seconds if seconds else float("inf")


def timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def append_batched(log: Log, leaves: list[bytes]) -> float:
    def run() -> None:
        for i in range(0, len(leaves), BATCH):
            log.append_batch(leaves[i:i + BATCH])
    return rate(len(leaves), timed(run))


def append_single(log: Log, leaves: list[bytes]) -> float:
    def run() -> None:
        for leaf in leaves:
            log.append(leaf)
    return rate(len(leaves), timed(run))


def proof_rates(log: Log, size: int, samples: int) -> dict[str, float]:
    rng = random.Random(size)  # noqa: S311 - reproducible sample positions, not secrets
    tree_root = log.root(size)
    indexes = [rng.randrange(size) for _ in range(samples)]
    proofs: list[list[bytes]] = []
    gen = timed(lambda: proofs.extend(log.inclusion_proof(i, size) for i in indexes))
    leaves = [log.leaf_hash(i) for i in indexes]

    def check_all() -> None:
        for i, leaf, proof in zip(indexes, leaves, proofs, strict=True):
            if not verify_inclusion(i, size, leaf, proof, tree_root):
                raise SystemExit(f"inclusion proof for {i} failed")
    ver = timed(check_all)

    olds = [rng.randrange(1, size) for _ in range(samples)]
    old_roots = {m: log.root(m) for m in olds}
    cons: list[list[bytes]] = []
    cgen = timed(lambda: cons.extend(log.consistency_proof(m, size) for m in olds))

    def check_cons() -> None:
        for m, proof in zip(olds, cons, strict=True):
            if not verify_consistency(m, size, old_roots[m], tree_root, proof):
                raise SystemExit(f"consistency proof from {m} failed")
    cver = timed(check_cons)
    return {"inclusion proofs generated/s": rate(samples, gen),
            "inclusion proofs verified/s": rate(samples, ver),
            "consistency proofs generated/s": rate(samples, cgen),
            "consistency proofs verified/s": rate(samples, cver)}


def bulk_fill(store: SQLiteStore, leaves: list[bytes], total: int) -> None:
    """Write `total` entries without signature checks (copies of pre-signed leaves)."""
    tree = Tree()
    chunk = 20_000
    while tree.size < total:
        first = tree.size
        batch = [leaves[(first + i) % len(leaves)] for i in range(min(chunk, total - first))]
        nodes = []
        for leaf in batch:
            nodes.extend(tree.append(leaf_hash(leaf)))
        store.append(first, batch, nodes)


def run_scale(label: str, size: int, bulk: bool, folder: Path, keys: list,
              submitters: Submitters, signer: Ed25519Signer, rows: list) -> float:
    path = folder / f"ledger-{size}.sqlite"
    store = SQLiteStore(path)
    log = Log(store, signer, submitters)
    timed_count = min(size, 20_000) if bulk else size
    print(f"[{label}] signing {timed_count + 2_000} entries (client side, not timed)...",
          flush=True)
    fresh = [e.leaf() for e in make_entries(timed_count + 2_000, size, keys)]
    if bulk:
        print(f"[{label}] bulk-filling {size - timed_count} entries...", flush=True)
        start = time.perf_counter()
        bulk_fill(store, fresh, size - timed_count)
        rows.append((label, "bulk fill (no signature checks), entries/s",
                     rate(size - timed_count, time.perf_counter() - start), ""))
        log = Log(store, signer, submitters)
    print(f"[{label}] appending {timed_count} entries in batches of {BATCH}...", flush=True)
    batched = append_batched(log, fresh[:timed_count])
    rows.append((label, f"appends/s, batches of {BATCH} (verify+tree+SQLite)", batched,
                 f">= {TARGET_APPENDS}"))
    single = append_single(log, fresh[timed_count:])
    rows.append((label, "appends/s, one commit per entry", single, ""))
    size = log.size
    print(f"[{label}] proofs at size {size}...", flush=True)
    for name, value in proof_rates(log, size, 20_000).items():
        rows.append((label, name, value, ""))
    store.close()
    reopen = timed(lambda: Log(SQLiteStore(path), signer, submitters))
    rows.append((label, "reopen log from SQLite (load stored tree), s", reopen, ""))
    return batched


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="10^4 and 10^5 instead")
    args = parser.parse_args()
    scales = [("10^4", 10_000, False), ("10^5", 100_000, True)] if args.quick else \
        [("10^5", 100_000, False), ("10^6", 1_000_000, True)]
    keys = [(None, Ed25519PrivateKey.generate()) for _ in range(4)]
    submitters = Submitters()
    keys = [(submitters.add_key(k.public_key()), k) for _, k in keys]
    signer = Ed25519Signer.generate("bench.incisive.test/ledger")
    rows: list[tuple[str, str, float, str]] = []
    with tempfile.TemporaryDirectory(prefix="ledger-bench-") as tmp:
        worst = min(run_scale(label, size, bulk, Path(tmp), keys, submitters, signer, rows)
                    for label, size, bulk in scales)
    print()
    print(f"{'entries':8} {'measure':56} {'value':>12}  target")
    for label, name, value, target in rows:
        shown = f"{value:12.2f}" if value < 100 else f"{value:12,.0f}"
        print(f"{label:8} {name:56} {shown}  {target}")
    ok = worst >= TARGET_APPENDS
    print(f"\nappends/s target {TARGET_APPENDS}: {'met' if ok else 'MISSED'} (worst {worst:,.0f})")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
