"""k-of-n witness policy: counted by distinct trusted witnesses, never by signature lines."""

from __future__ import annotations

import itertools

import pytest

from incisive_node.ledger.checkpoint import Checkpoint
from incisive_node.ledger.cosignature import CosignatureSigner
from incisive_node.ledger.merkle import leaf_hash
from incisive_node.ledger.note import Ed25519Signer, Note, sign
from incisive_node.ledger.policy import PolicyError, WitnessPolicy


def _note(log: Ed25519Signer, size: int = 7) -> Note:
    return sign(Checkpoint(log.name, size, leaf_hash(b"%d" % size)).body(), log)


def test_every_k_of_n(log_signer: Ed25519Signer,
                      witness_signers: list[CosignatureSigner]) -> None:
    verifiers = tuple(w.verifier for w in witness_signers)
    note = _note(log_signer)
    for k in range(len(verifiers) + 1):
        policy = WitnessPolicy(log_signer.verifier, verifiers, k)
        for count in range(len(witness_signers) + 1):
            for chosen in itertools.combinations(witness_signers, count):
                cosigned = note.with_signatures([w.cosign(note.text) for w in chosen])
                if count >= k:
                    checkpoint, cosigners = policy.accept(cosigned.encode())
                    assert checkpoint.size == 7
                    assert cosigners == sorted(w.name for w in chosen)
                else:
                    with pytest.raises(PolicyError, match=f"{count} of the required {k}"):
                        policy.accept(cosigned.encode())


def test_repeated_and_unknown_cosignatures_do_not_count(
        log_signer: Ed25519Signer, witness_signers: list[CosignatureSigner]) -> None:
    trusted, outsider = witness_signers[:2], CosignatureSigner.generate("rogue.example/w")
    policy = WitnessPolicy(log_signer.verifier, tuple(w.verifier for w in trusted), 2)
    note = _note(log_signer)
    one = trusted[0]
    padded = note.with_signatures([one.cosign(note.text, 1_700_000_000 + i) for i in range(3)]
                                  + [outsider.cosign(note.text)])
    with pytest.raises(PolicyError, match="1 of the required 2"):
        policy.accept(padded.encode())


def test_log_signature_is_required(log_signer: Ed25519Signer,
                                   witness_signers: list[CosignatureSigner]) -> None:
    policy = WitnessPolicy(log_signer.verifier, tuple(w.verifier for w in witness_signers), 1)
    other = Ed25519Signer.generate(log_signer.name)
    note = _note(other)
    cosigned = note.with_signatures([w.cosign(note.text) for w in witness_signers])
    with pytest.raises(PolicyError, match="not signed by the log"):
        policy.accept(cosigned.encode())


def test_a_bad_cosignature_from_a_trusted_witness_rejects(
        log_signer: Ed25519Signer, witness_signers: list[CosignatureSigner]) -> None:
    policy = WitnessPolicy(log_signer.verifier, tuple(w.verifier for w in witness_signers), 1)
    note = _note(log_signer, 7)
    elsewhere = _note(log_signer, 8)
    stolen = witness_signers[0].cosign(elsewhere.text)
    good = witness_signers[1].cosign(note.text)
    with pytest.raises(PolicyError, match="does not verify"):
        policy.accept(note.with_signatures([good, stolen]).encode())


def test_wrong_origin_and_impossible_policies(
        log_signer: Ed25519Signer, witness_signers: list[CosignatureSigner]) -> None:
    verifiers = tuple(w.verifier for w in witness_signers)
    policy = WitnessPolicy(log_signer.verifier, verifiers, 0, origin="other.example/log")
    with pytest.raises(PolicyError, match="another log"):
        policy.accept(_note(log_signer).encode())
    with pytest.raises(ValueError, match="impossible"):
        WitnessPolicy(log_signer.verifier, verifiers, 4)
    with pytest.raises(ValueError, match="twice"):
        WitnessPolicy(log_signer.verifier, (verifiers[0], verifiers[0]), 1)
