"""RFC 9162 Merkle trees: the CT test vectors, every proof up to 64 leaves, mutated proofs."""

from __future__ import annotations

import hashlib
from functools import cache

import pytest

from incisive_node.ledger.merkle import (
    EMPTY_ROOT,
    ProofError,
    Tree,
    leaf_hash,
    node_hash,
    root_from_inclusion_proof,
    verify_consistency,
    verify_inclusion,
)

# The Certificate Transparency reference vectors: eight leaf inputs and the root for every
# tree size 0..8, plus known inclusion and consistency proofs. Source: the test data of
# google/certificate-transparency, as carried on in transparency-dev/merkle
# (proof/verify_test.go: `leaves`, `roots`, `inclusionProofs`, `consistencyProofs`; leaf
# numbers there are 1-based, indexes here are 0-based).
CT_LEAVES = [bytes.fromhex(h) for h in (
    "", "00", "10", "2021", "3031", "40414243", "5051525354555657",
    "606162636465666768696a6b6c6d6e6f")]
CT_ROOTS = [bytes.fromhex(h) for h in (
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328")]
CT_INCLUSION = [  # (index, size, proof)
    (0, 8, ["96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"]),
    (5, 8, ["bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"]),
    (2, 3, ["fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"]),
    (1, 5, ["6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"]),
]
CT_CONSISTENCY = [  # (old, new, proof)
    (1, 8, ["96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"]),
    (6, 8, ["0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"]),
    (2, 5, ["5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"]),
    (6, 7, ["0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
            "b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"]),
]

MAX = 64
LEAVES = [leaf_hash(b"entry %d" % i) for i in range(2 * MAX + 1)]


# The definitions of RFC 9162 section 2.1, written as literally as possible, so the tree's
# iterative, node-store-backed answers are checked against the specification itself.
@cache
def mth(start: int, end: int) -> bytes:
    if end == start:
        return EMPTY_ROOT
    if end - start == 1:
        return LEAVES[start]
    k = 1
    while k * 2 < end - start:
        k *= 2
    return node_hash(mth(start, start + k), mth(start + k, end))


def rfc_path(m: int, start: int, end: int) -> list[bytes]:
    if end - start == 1:
        return []
    k = 1
    while k * 2 < end - start:
        k *= 2
    if m < k:
        return [*rfc_path(m, start, start + k), mth(start + k, end)]
    return [*rfc_path(m - k, start + k, end), mth(start, start + k)]


def rfc_subproof(m: int, start: int, end: int, complete: bool) -> list[bytes]:
    if m == end - start:
        return [] if complete else [mth(start, end)]
    k = 1
    while k * 2 < end - start:
        k *= 2
    if m <= k:
        return [*rfc_subproof(m, start, start + k, complete), mth(start + k, end)]
    return [*rfc_subproof(m - k, start + k, end, False), mth(start, start + k)]


@pytest.fixture(scope="module")
def tree() -> Tree:
    return Tree.from_leaf_hashes(LEAVES)


def test_ct_reference_roots_for_every_size() -> None:
    hashes = [leaf_hash(data) for data in CT_LEAVES]
    tree = Tree()
    assert tree.root() == CT_ROOTS[0]
    for size, digest in enumerate(hashes, start=1):
        tree.append(digest)
        assert tree.root() == CT_ROOTS[size], f"size {size}"
    for size in range(9):
        assert tree.root(size) == CT_ROOTS[size], f"historical size {size}"


def test_leaf_and_node_prefixes() -> None:
    assert leaf_hash(b"") == hashlib.sha256(b"\x00").digest()
    a, b = leaf_hash(b"a"), leaf_hash(b"b")
    assert node_hash(a, b) == hashlib.sha256(b"\x01" + a + b).digest()
    # A leaf whose bytes look like two child hashes must not collide with their parent.
    assert leaf_hash(a + b) != node_hash(a, b)


@pytest.mark.parametrize(("index", "size", "proof"), CT_INCLUSION)
def test_ct_inclusion_vectors(index: int, size: int, proof: list[str]) -> None:
    hashes = [leaf_hash(data) for data in CT_LEAVES]
    tree = Tree.from_leaf_hashes(hashes)
    expected = [bytes.fromhex(p) for p in proof]
    assert tree.inclusion_proof(index, size) == expected
    assert verify_inclusion(index, size, hashes[index], expected, CT_ROOTS[size])


@pytest.mark.parametrize(("old", "new", "proof"), CT_CONSISTENCY)
def test_ct_consistency_vectors(old: int, new: int, proof: list[str]) -> None:
    tree = Tree.from_leaf_hashes([leaf_hash(data) for data in CT_LEAVES])
    expected = [bytes.fromhex(p) for p in proof]
    assert tree.consistency_proof(old, new) == expected
    assert verify_consistency(old, new, CT_ROOTS[old], CT_ROOTS[new], expected)


def test_roots_match_the_rfc_definition(tree: Tree) -> None:
    for size in range(len(LEAVES) + 1):
        assert tree.root(size) == mth(0, size)


def test_every_inclusion_proof_up_to_64_leaves(tree: Tree) -> None:
    checked = 0
    for n in range(1, MAX + 1):
        root = tree.root(n)
        for m in range(n):
            proof = tree.inclusion_proof(m, n)
            assert proof == rfc_path(m, 0, n), (m, n)
            assert root_from_inclusion_proof(m, n, LEAVES[m], proof) == root
            checked += 1
    assert checked == MAX * (MAX + 1) // 2


def test_every_consistency_proof_up_to_64_leaves(tree: Tree) -> None:
    checked = 0
    for n in range(1, MAX + 1):
        for m in range(n + 1):
            proof = tree.consistency_proof(m, n)
            expected = [] if m in (0, n) else rfc_subproof(m, 0, n, True)
            assert proof == expected, (m, n)
            assert verify_consistency(m, n, tree.root(m), tree.root(n), proof), (m, n)
            checked += 1
    assert checked == sum(n + 1 for n in range(1, MAX + 1))


def _flip(proof: list[bytes], i: int, bit: int) -> list[bytes]:
    changed = bytearray(proof[i])
    changed[bit // 8 % 32] ^= 1 << (bit % 8)
    return [*proof[:i], bytes(changed), *proof[i + 1:]]


def _mutations(proof: list[bytes], junk: bytes) -> list[tuple[str, list[bytes]]]:
    """Proof-level mutations that must never verify."""
    out = [(f"bit flip in [{i}] bit {b}", _flip(proof, i, b))
           for i in range(len(proof)) for b in (0, 7, 100, 255)]
    out += [("extended at end", [*proof, junk]), ("extended at front", [junk, *proof]),
            ("empty element appended", [*proof, b""])]
    if proof:
        out += [("truncated at end", proof[:-1]), ("truncated at front", proof[1:]),
                ("first element repeated", [proof[0], *proof])]
    for i in range(len(proof) - 1):
        if proof[i] != proof[i + 1]:
            swapped = [*proof[:i], proof[i + 1], proof[i], *proof[i + 2:]]
            out.append((f"swapped [{i}] and [{i + 1}]", swapped))
    if len(proof) > 2 and proof[::-1] != proof:
        out.append(("reversed", proof[::-1]))
    return out


def test_mutated_inclusion_proofs_fail(tree: Tree) -> None:
    junk = hashlib.sha256(b"junk").digest()
    for n in range(1, MAX + 1):
        root = tree.root(n)
        for m in range(n):
            proof = tree.inclusion_proof(m, n)
            leaf = LEAVES[m]
            for what, bad in _mutations(proof, junk):
                assert not verify_inclusion(m, n, leaf, bad, root), (what, m, n)
            for other in {m - 1, m + 1, m ^ 1, m ^ 2} - {m}:
                if 0 <= other < n:
                    assert not verify_inclusion(other, n, leaf, proof, root), (other, m, n)
            assert not verify_inclusion(n, n, leaf, proof, root)
            assert not verify_inclusion(m, n, LEAVES[m + 1], proof, root)
            assert not verify_inclusion(m, n, leaf, proof, junk)
            for size in {n - 1, n + 1, 2 * n, n // 2} - {n}:
                if m < size:
                    # Against that size's own tree head, the proof never verifies.
                    assert not verify_inclusion(m, size, leaf, proof, tree.root(size))
                    # RFC 9162 binds the size through the proof's shape: where the shapes
                    # differ the proof fails even with this root (the checkpoint signs
                    # size and root together, so the same-shape case proves nothing new).
                    if len(tree.inclusion_proof(m, size)) != len(proof):
                        assert not verify_inclusion(m, size, leaf, proof, root), (m, n, size)


def test_mutated_consistency_proofs_fail(tree: Tree) -> None:
    junk = hashlib.sha256(b"junk").digest()
    for n in range(2, MAX + 1):
        new_root = tree.root(n)
        for m in range(1, n):
            old_root = tree.root(m)
            proof = tree.consistency_proof(m, n)
            for what, bad in [*_mutations(proof, junk), ("empty", [])]:
                assert not verify_consistency(m, n, old_root, new_root, bad), (what, m, n)
            assert not verify_consistency(m, n, new_root, old_root, proof)
            assert not verify_consistency(m, n, junk, new_root, proof)
            assert not verify_consistency(m, n, old_root, junk, proof)
            assert not verify_consistency(n, m, new_root, old_root, proof)
            for old in {m - 1, m + 1, m ^ 2} - {m}:
                if 0 < old < n:
                    assert not verify_consistency(old, n, tree.root(old), new_root, proof)
            for new in {n - 1, n + 1, 2 * n, n // 2} - {n}:
                if m < new:
                    assert not verify_consistency(m, new, old_root, tree.root(new), proof)
                    if len(tree.consistency_proof(m, new)) != len(proof):
                        assert not verify_consistency(m, new, old_root, new_root, proof)


def test_trivial_consistency_cases() -> None:
    a, b = leaf_hash(b"a"), leaf_hash(b"b")
    assert verify_consistency(0, 0, EMPTY_ROOT, EMPTY_ROOT, [])
    assert verify_consistency(0, 5, EMPTY_ROOT, a, [])
    assert verify_consistency(3, 3, a, a, [])
    assert not verify_consistency(3, 3, a, b, [])
    assert not verify_consistency(3, 3, a, a, [b])
    assert not verify_consistency(0, 5, EMPTY_ROOT, a, [b])
    assert not verify_consistency(4, 3, a, b, [a])


def test_proofs_for_sizes_the_tree_does_not_have(tree: Tree) -> None:
    with pytest.raises(ProofError):
        tree.inclusion_proof(len(LEAVES), len(LEAVES))
    with pytest.raises(ProofError):
        tree.inclusion_proof(0, len(LEAVES) + 1)
    with pytest.raises(ProofError):
        tree.consistency_proof(5, 4)
    with pytest.raises(ProofError):
        tree.root(len(LEAVES) + 1)


def test_append_touches_at_most_one_node_per_level() -> None:
    tree = Tree()
    for i in range(1, 4097):
        created = tree.append(leaf_hash(b"%d" % i))
        # Leaf plus one parent per trailing 1-bit of its index: never more than log2(n) + 1.
        assert len(created) == 1 + ((i - 1) ^ i).bit_length() - 1
        assert len(created) <= (i.bit_length() + 1)


def test_tree_restored_from_its_levels_answers_the_same(tree: Tree) -> None:
    copy = Tree.from_levels(tree.levels(), tree.size)
    assert copy.root() == tree.root()
    assert copy.inclusion_proof(37, 100) == tree.inclusion_proof(37, 100)
    copy.append(leaf_hash(b"one more"))
    assert copy.root(tree.size) == tree.root()
    with pytest.raises(ValueError, match="wrong number of nodes"):
        Tree.from_levels(tree.levels(), tree.size - 1)


def test_truncate_and_find(tree: Tree) -> None:
    copy = Tree.from_levels(tree.levels(), tree.size)
    copy.truncate(50)
    assert copy.size == 50
    assert copy.root() == tree.root(50)
    copy.append(LEAVES[50])
    assert copy.root() == tree.root(51)
    assert tree.find(LEAVES[77]) == 77
    assert tree.find(leaf_hash(b"never appended")) is None
