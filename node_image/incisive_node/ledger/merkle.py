"""RFC 9162 Merkle trees: hashing, an incremental tree, inclusion and consistency proofs.

The tree keeps every perfect subtree hash, level by level, in one bytearray per level
(32 bytes a node). Appending touches at most one node per level, and any historical root
or proof is assembled from O(log n) stored nodes, so a log of millions of entries never
rehashes its leaves. Verification follows the algorithms of RFC 9162 sections 2.1.3.2 and
2.1.4.2 step by step, so a proof that passes here passes in any other CT implementation.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence

HASH_SIZE = 32
LEAF_PREFIX = b"\x00"
NODE_PREFIX = b"\x01"
EMPTY_ROOT = hashlib.sha256(b"").digest()

_sha256 = hashlib.sha256


class ProofError(ValueError):
    """A proof was asked for sizes or indexes the tree cannot answer."""


def leaf_hash(data: bytes) -> bytes:
    return _sha256(LEAF_PREFIX + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return _sha256(NODE_PREFIX + left + right).digest()


def _split(size: int) -> int:
    """The largest power of two strictly smaller than size (size >= 2)."""
    return 1 << ((size - 1).bit_length() - 1)


class Tree:
    """An append-only Merkle tree over leaf hashes.

    `levels[h]` holds the hashes of the perfect subtrees of height h, left to right.
    """

    __slots__ = ("_levels", "_size")

    def __init__(self) -> None:
        self._levels: list[bytearray] = [bytearray()]
        self._size = 0

    @classmethod
    def from_levels(cls, levels: Sequence[bytes | bytearray], size: int) -> Tree:
        tree = cls()
        tree._levels = [bytearray(level) for level in levels] or [bytearray()]
        tree._size = size
        for height, level in enumerate(tree._levels):
            if len(level) != (size >> height) * HASH_SIZE:
                raise ValueError(f"stored tree level {height} has the wrong number of nodes")
        if len(tree._levels) < max(size.bit_length(), 1):
            raise ValueError("stored tree is missing levels")
        return tree

    @classmethod
    def from_leaf_hashes(cls, hashes: Iterable[bytes]) -> Tree:
        tree = cls()
        for h in hashes:
            tree.append(h)
        return tree

    def __len__(self) -> int:
        return self._size

    @property
    def size(self) -> int:
        return self._size

    def levels(self) -> list[bytes]:
        return [bytes(level) for level in self._levels]

    def append(self, leaf: bytes) -> list[tuple[int, int, bytes]]:
        """Add one leaf hash; return the nodes created as (height, index, hash)."""
        if len(leaf) != HASH_SIZE:
            raise ValueError("a leaf hash is 32 bytes")
        levels = self._levels
        index = self._size
        levels[0] += leaf
        created = [(0, index, leaf)]
        height = 0
        current = leaf
        # A node completes a parent exactly when it is a right child (odd index).
        while index & 1:
            level = levels[height]
            start = (index - 1) * HASH_SIZE
            current = _sha256(NODE_PREFIX + level[start:start + HASH_SIZE] + current).digest()
            height += 1
            index >>= 1
            if height == len(levels):
                levels.append(bytearray())
            levels[height] += current
            created.append((height, index, current))
        self._size += 1
        return created

    def truncate(self, size: int) -> None:
        """Forget leaves from size on (undoing appends a store refused to persist)."""
        if not 0 <= size <= self._size:
            raise ValueError("can only truncate to a smaller size")
        for height, level in enumerate(self._levels):
            del level[(size >> height) * HASH_SIZE:]
        self._size = size

    def find(self, leaf: bytes) -> int | None:
        """The first index holding this leaf hash, searched at C speed."""
        level = self._levels[0]
        at = level.find(leaf)
        while at >= 0 and at % HASH_SIZE:
            at = level.find(leaf, at + 1)
        return None if at < 0 else at // HASH_SIZE

    def node(self, height: int, index: int) -> bytes:
        start = index * HASH_SIZE
        return bytes(self._levels[height][start:start + HASH_SIZE])

    def leaf(self, index: int) -> bytes:
        if not 0 <= index < self._size:
            raise ProofError(f"no leaf at index {index} in a tree of size {self._size}")
        return self.node(0, index)

    def _range_hash(self, start: int, end: int, cache: dict[tuple[int, int], bytes]) -> bytes:
        """MTH of leaves [start, end), where start is aligned as RFC 9162's splits make it."""
        width = end - start
        if width & (width - 1) == 0 and start % width == 0:
            return self.node(width.bit_length() - 1, start // width)
        cached = cache.get((start, end))
        if cached is None:
            k = _split(width)
            cached = node_hash(self._range_hash(start, start + k, cache),
                               self._range_hash(start + k, end, cache))
            cache[(start, end)] = cached
        return cached

    def root(self, size: int | None = None) -> bytes:
        size = self._size if size is None else size
        if not 0 <= size <= self._size:
            raise ProofError(f"no tree of size {size}: the log has {self._size} entries")
        if size == 0:
            return EMPTY_ROOT
        return self._range_hash(0, size, {})

    def inclusion_proof(self, index: int, size: int | None = None) -> list[bytes]:
        """PATH(index, D[0:size]) of RFC 9162 section 2.1.3.1."""
        size = self._size if size is None else size
        if not 0 <= index < size <= self._size:
            raise ProofError(f"no leaf {index} in a tree of size {size} (log has {self._size})")
        cache: dict[tuple[int, int], bytes] = {}
        path: list[bytes] = []
        start, end, m = 0, size, index
        # Walk down from the root; siblings are collected top-down, the proof is bottom-up.
        while end - start > 1:
            k = _split(end - start)
            if m < k:
                path.append(self._range_hash(start + k, end, cache))
                end = start + k
            else:
                path.append(self._range_hash(start, start + k, cache))
                start, m = start + k, m - k
        path.reverse()
        return path

    def consistency_proof(self, old: int, new: int | None = None) -> list[bytes]:
        """PROOF(old, D[0:new]) of RFC 9162 section 2.1.4.1."""
        new = self._size if new is None else new
        if not 0 <= old <= new <= self._size:
            raise ProofError(f"no consistency proof from {old} to {new} (log has {self._size})")
        if old in (0, new):
            return []
        cache: dict[tuple[int, int], bytes] = {}
        path: list[bytes] = []
        start, end, m, complete = 0, new, old, True
        while True:
            width = end - start
            if m == width:
                if not complete:
                    path.append(self._range_hash(start, end, cache))
                break
            k = _split(width)
            if m <= k:
                path.append(self._range_hash(start + k, end, cache))
                end = start + k
            else:
                path.append(self._range_hash(start, start + k, cache))
                start, m, complete = start + k, m - k, False
        path.reverse()
        return path


def root_of(leaf_hashes: Sequence[bytes]) -> bytes:
    return Tree.from_leaf_hashes(leaf_hashes).root()


def root_from_inclusion_proof(index: int, size: int, leaf: bytes, proof: Sequence[bytes]) -> bytes:
    """RFC 9162 section 2.1.3.2, returning the computed root (raises when the shape is wrong)."""
    if not 0 <= index < size:
        raise ProofError("leaf index outside the tree")
    if len(leaf) != HASH_SIZE or any(len(p) != HASH_SIZE for p in proof):
        raise ProofError("proof hashes must be 32 bytes")
    fn, sn, r = index, size - 1, leaf
    for p in proof:
        if sn == 0:
            raise ProofError("proof is longer than the tree is deep")
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise ProofError("proof is shorter than the tree is deep")
    return r


def verify_inclusion(index: int, size: int, leaf: bytes, proof: Sequence[bytes],
                     root: bytes) -> bool:
    try:
        return root_from_inclusion_proof(index, size, leaf, proof) == root
    except ProofError:
        return False


def verify_consistency(old: int, new: int, old_root: bytes, new_root: bytes,
                       proof: Sequence[bytes]) -> bool:
    """RFC 9162 section 2.1.4.2, with the trivial cases (old == 0, old == new) made explicit."""
    if not 0 <= old <= new:
        return False
    if any(len(p) != HASH_SIZE for p in proof):
        return False
    if old == new:
        return not proof and old_root == new_root
    if old == 0:
        return not proof
    if not proof:
        return False
    path = list(proof)
    if old & (old - 1) == 0:
        path.insert(0, old_root)
    fn, sn = old - 1, new - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    return sn == 0 and fr == old_root and sr == new_root
