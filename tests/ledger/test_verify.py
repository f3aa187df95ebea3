"""`incisive ledger verify|prove|tail` over a real ledger, and tampering with its rows.

Every test runs twice: on an SQLite file and on a database in a real PostgreSQL server.
Tampering is done the way an insider would: with SQL on the database, behind the log's
back. `verify` must fail and name the position of the entry that was touched.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from incisive_node.ledger import audit
from incisive_node.ledger.cosignature import CosignatureSigner
from incisive_node.ledger.entries import Submitters
from incisive_node.ledger.log import LocalWitness, Log
from incisive_node.ledger.merkle import verify_inclusion
from incisive_node.ledger.note import Ed25519Signer, parse
from incisive_node.ledger.policy import WitnessPolicy
from incisive_node.ledger.store import open_store
from incisive_node.ledger.trust import Trust, load
from incisive_node.ledger.witness import Witness
from incisive_operator.cli import main

from .conftest import run_sql

SIZE = 40
CHECKPOINTS = (10, 25, 40)


@dataclass
class Ledger:
    db: str  # an SQLite path or a PostgreSQL URL
    trust: Path
    leaves: list[bytes]
    extra: bytes  # a valid, signed entry that was never appended

    def sql(self, statement: str, *params: object) -> list[tuple]:
        return run_sql(self.db, statement, *params)

    def report(self) -> audit.Report:
        config = load(self.trust)
        store = open_store(self.db)
        try:
            return audit.verify(store, config.policy, config.submitters)
        finally:
            store.close()


@pytest.fixture
def ledger(tmp_path: Path, store_target: str, log_signer: Ed25519Signer,
           submitters: Submitters, witness_signers: list[CosignatureSigner],
           make_entry: Callable) -> Ledger:
    witnesses = [Witness(s, [log_signer.verifier]) for s in witness_signers]
    policy = WitnessPolicy(log_signer.verifier, tuple(w.verifier for w in witnesses), 2)
    db = store_target
    log = Log(open_store(db), log_signer, submitters,
              witnesses=[LocalWitness(w) for w in witnesses], policy=policy)
    entries = [make_entry() for _ in range(SIZE)]
    done = 0
    for size in CHECKPOINTS:
        log.append_batch(entries[done:size])
        log.publish()
        done = size
    log.store.close()
    trust = tmp_path / "trust.json"
    trust.write_text(Trust(policy, submitters).to_json())
    return Ledger(db, trust, [e.leaf() for e in entries], make_entry().leaf())


def test_an_untouched_ledger_verifies(ledger: Ledger, capsys: pytest.CaptureFixture) -> None:
    report = ledger.report()
    assert report.ok, report.problems
    assert (report.size, report.checkpoints, report.covered) == (SIZE, 3, SIZE)
    assert main(["ledger", "verify", "--db", ledger.db, "--trust", str(ledger.trust)]) == 0
    assert "OK: 40 entries, 3 accepted checkpoints" in capsys.readouterr().out


@pytest.mark.parametrize("position", [0, 17, SIZE - 1])
def test_a_changed_entry_is_named(ledger: Ledger, position: int,
                                  capsys: pytest.CaptureFixture) -> None:
    # Replaced by another entry, correctly signed by the same submitter.
    ledger.sql("UPDATE entries SET leaf = ? WHERE idx = ?", ledger.extra, position)
    report = ledger.report()
    assert not report.ok
    assert report.first_position == position
    assert {p.position for p in report.problems} - {None} == {position}
    args = ["ledger", "verify", "--db", ledger.db, "--trust", str(ledger.trust)]
    assert main(args) == 1
    out = capsys.readouterr().out
    assert f"FAIL position {position}: entry changed" in out
    assert "TAMPERED" in out


def test_an_edited_field_breaks_the_submitter_signature(ledger: Ledger) -> None:
    edited = ledger.leaves[9].replace(b'"purpose":"research"', b'"purpose":"ai-training"')
    assert edited != ledger.leaves[9]
    ledger.sql("UPDATE entries SET leaf = ? WHERE idx = 9", edited)
    report = ledger.report()
    assert report.first_position == 9
    messages = [p.message for p in report.problems if p.position == 9]
    assert any("signature does not verify" in m for m in messages)
    assert any("entry changed" in m for m in messages)


def test_a_deleted_entry_is_named(ledger: Ledger) -> None:
    ledger.sql("DELETE FROM entries WHERE idx = 21")
    report = ledger.report()
    assert report.first_position == 21
    assert "entry missing" in str(report.problems[0])


def test_a_deleted_entry_with_renumbered_rows_is_named(ledger: Ledger) -> None:
    ledger.sql("DELETE FROM entries WHERE idx = 21")
    ledger.sql("UPDATE entries SET idx = idx - 1 WHERE idx > 21")
    report = ledger.report()
    assert report.first_position == 21
    assert any(p.position == SIZE - 1 and "missing" in p.message for p in report.problems)


def test_the_last_entry_deleted_is_named(ledger: Ledger) -> None:
    ledger.sql("DELETE FROM entries WHERE idx = ?", SIZE - 1)
    report = ledger.report()
    assert report.first_position == SIZE - 1


@pytest.mark.parametrize(("a", "b"), [(3, 4), (12, 30)])
def test_reordered_entries_are_named(ledger: Ledger, a: int, b: int) -> None:
    ledger.sql("UPDATE entries SET leaf = ? WHERE idx = ?", ledger.leaves[b], a)
    ledger.sql("UPDATE entries SET leaf = ? WHERE idx = ?", ledger.leaves[a], b)
    report = ledger.report()
    assert report.first_position == a
    assert {p.position for p in report.problems} - {None} == {a, b}


def test_an_entry_moved_to_another_position_is_named(ledger: Ledger) -> None:
    # Entry 5 taken out and put back at the end: everything from 5 on shifts by one.
    moved = ledger.leaves[5:6] + ledger.leaves[6:]
    rotated = ledger.leaves[:5] + moved[1:] + moved[:1]
    for index, leaf in enumerate(rotated):
        ledger.sql("UPDATE entries SET leaf = ? WHERE idx = ?", leaf, index)
    report = ledger.report()
    assert report.first_position == 5


def test_entry_and_tree_rewritten_together_are_still_caught(ledger: Ledger) -> None:
    from incisive_node.ledger.merkle import leaf_hash

    # An insider who also fixes up the stored leaf hash: the signed checkpoints no longer
    # vouch for the stored tree, so the position narrows to the checkpoint that covers it.
    ledger.sql("UPDATE entries SET leaf = ? WHERE idx = 17", ledger.extra)
    ledger.sql("UPDATE nodes SET hash = ? WHERE level = 0 AND idx = 17", leaf_hash(ledger.extra))
    report = ledger.report()
    assert not report.ok
    assert any("positions 10..24" in p.message for p in report.problems)
    assert not any("positions 0..9" in p.message for p in report.problems)


def test_checkpoints_without_quorum_or_with_bad_signatures_fail(ledger: Ledger) -> None:
    note = bytes(ledger.sql("SELECT note FROM checkpoints WHERE size = 25")[0][0])
    parsed = parse(note)
    log_only = parsed.text + b"\n" + parsed.signatures[0].line().encode()
    ledger.sql("UPDATE checkpoints SET note = ? WHERE size = 25", log_only)
    report = ledger.report()
    assert not report.ok
    assert "checkpoint for size 25 rejected: 0 of the required 2" in str(report.problems[0])
    forged = note.replace(b"\n25\n", b"\n26\n")
    ledger.sql("UPDATE checkpoints SET note = ? WHERE size = 25", forged)
    assert "does not verify" in str(ledger.report().problems[0])


def test_prove_by_position_and_by_hash(ledger: Ledger, capsys: pytest.CaptureFixture) -> None:
    config = load(ledger.trust)
    store = open_store(ledger.db)
    try:
        by_index = audit.prove(store, "13", config.policy)
        by_hash = audit.prove(store, by_index["leaf_hash"], config.policy)
    finally:
        store.close()
    assert by_index == by_hash
    assert by_index["index"] == 13 and by_index["size"] == SIZE
    assert len(by_index["cosigners"]) == 3
    proof = [base64.b64decode(p) for p in by_index["proof"]]
    root = base64.b64decode(by_index["root"])
    assert verify_inclusion(13, SIZE, bytes.fromhex(by_index["leaf_hash"]), proof, root)
    args = ["ledger", "prove", "13", "--db", ledger.db, "--trust", str(ledger.trust)]
    assert main(args) == 0
    assert json.loads(capsys.readouterr().out)["proof"] == by_index["proof"]
    assert main(["ledger", "prove", "40", "--db", ledger.db,
                 "--trust", str(ledger.trust)]) == 1
    assert main(["ledger", "prove", "ab" * 32, "--db", ledger.db,
                 "--trust", str(ledger.trust)]) == 1
    ledger.sql("UPDATE entries SET leaf = ? WHERE idx = 13", ledger.extra)
    assert main(args) == 1
    assert "not included in the signed tree" in capsys.readouterr().err


def test_tail(ledger: Ledger, capsys: pytest.CaptureFixture) -> None:
    assert main(["ledger", "tail", "--db", ledger.db, "-n", "3"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["size"] == SIZE and shown["checkpoint"]["size"] == SIZE
    assert [row["index"] for row in shown["entries"]] == [37, 38, 39]
    assert all(row["event"] == "dataset-registered" for row in shown["entries"])
