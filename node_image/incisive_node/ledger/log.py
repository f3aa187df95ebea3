"""The log: sequences signed entries, signs checkpoints, gathers witness cosignatures.

Entries are validated and their signatures checked before the lock is taken, so only the
tree update and the store write are serialised. A checkpoint is stored only once the
witness policy accepts it: what a member reads from the log is always acceptable to it.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Protocol

from .checkpoint import Checkpoint
from .entries import SignedEntry, Submitters, parse_leaf
from .merkle import Tree, leaf_hash
from .note import Ed25519Signer, Note, NoteError, Signature, parse_signature_lines, sign
from .policy import PolicyError, WitnessPolicy
from .store import LedgerStore, StoreError

__all__ = ["LocalWitness", "Log", "WitnessEndpoint", "WitnessError"]
from .witness import SIZE_CONTENT_TYPE, Response, Witness, WitnessError, encode_request


class WitnessEndpoint(Protocol):
    name: str

    def submit(self, body: bytes) -> Response: ...


class LocalWitness:
    """A witness in the same process (benchmarks, a site running its own log)."""

    def __init__(self, witness: Witness) -> None:
        self.witness = witness
        self.name = witness.signer.name

    def submit(self, body: bytes) -> Response:
        return self.witness.add_checkpoint(body)


class Log:
    def __init__(self, store: LedgerStore, signer: Ed25519Signer, submitters: Submitters, *,
                 witnesses: Sequence[WitnessEndpoint] = (),
                 policy: WitnessPolicy | None = None) -> None:
        self.store = store
        self.signer = signer
        self.origin = signer.name
        self.submitters = submitters
        self.witnesses = list(witnesses)
        self.policy = policy
        levels, size = store.levels()
        if size != store.size():
            raise StoreError(f"the store holds {store.size()} entries but a tree of {size}")
        self._tree = Tree.from_levels(levels, size) if size else Tree()
        self._witness_sizes: dict[str, int] = {}
        self._lock = threading.Lock()
        # One publication at a time: each witness's last size is per-log state.
        self._publishing = threading.Lock()

    @property
    def size(self) -> int:
        return self._tree.size

    def _prepare(self, item: bytes | SignedEntry) -> tuple[bytes, bytes]:
        if isinstance(item, SignedEntry):
            signed, leaf = item, item.leaf()
        else:
            # parse_leaf accepts only canonical bytes, so they are the leaf as they are.
            signed, leaf = parse_leaf(item), item
        self.submitters.verify(signed)
        return leaf, leaf_hash(leaf)

    def append(self, item: bytes | SignedEntry) -> int:
        return self.append_batch([item])[0]

    def append_batch(self, items: Sequence[bytes | SignedEntry]) -> list[int]:
        """All or nothing: one invalid entry rejects the batch before anything is written."""
        prepared = [self._prepare(item) for item in items]
        with self._lock:
            first = self._tree.size
            nodes = []
            for _, digest in prepared:
                nodes.extend(self._tree.append(digest))
            try:
                self.store.append(first, [leaf for leaf, _ in prepared], nodes)
            except BaseException:
                self._tree.truncate(first)
                raise
        return list(range(first, first + len(prepared)))

    def root(self, size: int | None = None) -> bytes:
        with self._lock:
            return self._tree.root(size)

    def leaf(self, index: int) -> bytes:
        return self.store.leaf(index)

    def leaf_hash(self, index: int) -> bytes:
        with self._lock:
            return self._tree.leaf(index)

    def find(self, digest: bytes) -> int | None:
        with self._lock:
            return self._tree.find(digest)

    def inclusion_proof(self, index: int, size: int | None = None) -> list[bytes]:
        with self._lock:
            return self._tree.inclusion_proof(index, size)

    def consistency_proof(self, old: int, new: int | None = None) -> list[bytes]:
        with self._lock:
            return self._tree.consistency_proof(old, new)

    def checkpoint(self) -> bytes | None:
        latest = self.store.latest_checkpoint()
        return None if latest is None else latest[1]

    def sign_checkpoint(self) -> tuple[Checkpoint, Note]:
        with self._lock:
            checkpoint = Checkpoint(self.origin, self._tree.size, self._tree.root())
        return checkpoint, sign(checkpoint.body(), self.signer)

    def publish(self) -> bytes:
        """Sign the current tree head, collect cosignatures, store it once the policy agrees."""
        with self._publishing:
            return self._publish()

    def _publish(self) -> bytes:
        checkpoint, note = self.sign_checkpoint()
        cosignatures: list[Signature] = []
        refusals: list[str] = []
        for witness in self.witnesses:
            try:
                cosignatures.extend(self._cosign(witness, checkpoint, note))
            except WitnessError as exc:
                refusals.append(f"{witness.name}: {exc}")
        signed = note.with_signatures(cosignatures).encode()
        if self.policy is not None:
            try:
                self.policy.accept(signed)
            except PolicyError as exc:
                detail = f" ({'; '.join(refusals)})" if refusals else ""
                raise PolicyError(f"{exc}{detail}") from exc
        self.store.add_checkpoint(checkpoint.size, signed)
        return signed

    def _cosign(self, witness: WitnessEndpoint, checkpoint: Checkpoint,
                note: Note) -> list[Signature]:
        old = self._witness_sizes.get(witness.name, 0)
        for _ in range(2):
            if old > checkpoint.size:
                raise WitnessError(f"the witness has cosigned size {old}, beyond this log")
            proof = self.consistency_proof(old, checkpoint.size)
            response = witness.submit(encode_request(old, proof, note.encode()))
            if response.status == 200:
                self._witness_sizes[witness.name] = checkpoint.size
                return self._trusted_cosignatures(note, response.body)
            if response.status == 409 and response.content_type == SIZE_CONTENT_TYPE:
                try:
                    learned = int(response.body.decode().strip())
                except ValueError as exc:
                    raise WitnessError("409 without a size") from exc
                if learned == old:
                    raise WitnessError(f"the witness holds a different root for size {old}")
                old = learned
                continue
            raise WitnessError(f"HTTP {response.status}")
        raise WitnessError("the witness's size kept changing")

    def _trusted_cosignatures(self, note: Note, body: bytes) -> list[Signature]:
        try:
            lines = parse_signature_lines(body)
        except NoteError as exc:
            raise WitnessError(f"unreadable cosignature: {exc}") from exc
        if self.policy is None:
            return lines
        known = {(w.name, w.key_id): w for w in self.policy.witnesses}
        return [s for s in lines
                if (v := known.get((s.name, s.key_id))) is not None
                and v.verify(note.text, s.signature)]
