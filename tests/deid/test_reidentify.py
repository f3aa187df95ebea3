"""Re-identification against a real OpenBao: keys from KV v2, mapping encrypted by transit,
granted with the dedicated policy, refused without it, and every attempt audited."""

from __future__ import annotations

import json

import pytest

from incisive_node.deid import Deidentifier
from incisive_node.deid.keys import load_from_vault, store_in_vault
from incisive_node.deid.mapping import MappingStore
from incisive_node.deid.reidentify import Refused, reidentify

from . import corpus


@pytest.fixture
def recorded(bao, keys, tmp_path):
    """One instance de-identified with the key read from Vault, its mapping stored."""
    store_in_vault(bao.client(bao.root), keys)
    vault_keys = load_from_vault(bao.client(bao.deid_token), keys.project)
    assert vault_keys.secret == keys.secret and vault_keys.source == "vault"
    result = Deidentifier(vault_keys).deidentify(corpus.instance())
    db = tmp_path / "mapping.sqlite"
    store = MappingStore(db, bao.client(bao.deid_token))
    store.put(result.mapping)
    store.close()
    return result, db


def test_mapping_is_ciphertext_only(recorded) -> None:
    _, db = recorded
    raw = db.read_bytes()
    assert corpus.canaries_in(raw) == [] and b"vault:v1:" in raw


def test_granted_with_policy(bao, recorded, tmp_path) -> None:
    result, db = recorded
    audit = tmp_path / "audit.jsonl"
    store = MappingStore(db, bao.client(bao.reid_token))
    found = reidentify([result.patient_pseudonym, result.study_uid], store, audit)
    assert found[result.patient_pseudonym]["PatientID"] == corpus.MARK + "PID"
    assert found[result.study_uid]["uid"] == corpus.canary_uid(1)
    lines = [json.loads(line) for line in audit.read_text().splitlines()]
    assert [entry["outcome"] for entry in lines] == ["granted", "granted"]
    assert {entry["pseudonym"] for entry in lines} == {result.patient_pseudonym, result.study_uid}
    assert all("reid-officer" in entry["requester"] for entry in lines)
    assert corpus.canaries_in(audit.read_bytes()) == [], "no PHI in the audit log"


def test_refused_without_policy(bao, recorded, tmp_path) -> None:
    result, db = recorded
    audit = tmp_path / "audit.jsonl"
    store = MappingStore(db, bao.client(bao.deid_token))
    with pytest.raises(Refused, match="incisive-reidentify"):
        reidentify([result.patient_pseudonym], store, audit)
    # Vault itself refuses too: the policy check above is a courtesy, not the control.
    with pytest.raises(Exception, match="permission denied"):
        store.decrypt(result.patient_pseudonym, store.ciphertext(result.patient_pseudonym))
    entry = json.loads(audit.read_text())
    assert entry["outcome"] == "refused" and entry["pseudonym"] == result.patient_pseudonym


def test_row_moved_to_another_pseudonym_fails(bao, recorded) -> None:
    result, db = recorded
    store = MappingStore(db, bao.client(bao.reid_token))
    with pytest.raises(ValueError, match="does not belong"):
        store.decrypt(result.study_uid, store.ciphertext(result.patient_pseudonym))
