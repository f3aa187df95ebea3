"""The leaf schema: an allow-list of commitments, canonical JSON, submitter signatures."""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Callable

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from incisive_node.ledger.entries import (
    FIELDS,
    EntryError,
    Event,
    SignedEntry,
    SubmitterError,
    Submitters,
    canonical_json,
    keyed_object_id,
    parse_leaf,
    sign_entry,
    validate,
)

from .conftest import OBJECT_KEY

# Stand-ins for what must never reach a leaf: a name, a patient ID, a birth date.
PHI_LIKE = ["Maria Rossi", "PID-0012345", "1961-04-12", "patient 12345 has a tumour"]


def test_leaf_is_canonical_json_with_exactly_the_schema(make_entry: Callable) -> None:
    signed = make_entry()
    leaf = signed.leaf()
    assert b" " not in leaf and b"\n" not in leaf
    document = json.loads(leaf)
    assert list(document) == ["entry", "sig"]
    assert list(document["entry"]) == sorted(FIELDS)
    assert set(document["entry"]) == set(FIELDS)
    assert canonical_json(document) == leaf
    assert parse_leaf(leaf) == signed


def test_round_trip_and_signature(make_entry: Callable, submitters: Submitters) -> None:
    signed = make_entry(event="training-finished", purpose="ai-training")
    parsed = parse_leaf(signed.leaf())
    submitters.verify(parsed)
    assert parsed.leaf_hash() == signed.leaf_hash()


@pytest.mark.parametrize("field", ["event", "purpose", "object", "content", "actor", "time"])
@pytest.mark.parametrize("value", PHI_LIKE)
def test_free_text_and_raw_identifiers_are_refused(make_entry: Callable, field: str,
                                                   value: str) -> None:
    entry = dict(make_entry().entry, **{field: value})
    with pytest.raises(EntryError) as caught:
        validate(entry)
    # The error names the rule, never the value it refused.
    assert value not in str(caught.value)


@pytest.mark.parametrize("extra", ["patient_name", "note", "comment", "pseudonym", "study_uid"])
def test_fields_outside_the_allow_list_are_refused(make_entry: Callable, extra: str) -> None:
    entry = dict(make_entry().entry, **{extra: "anything"})
    with pytest.raises(EntryError, match="not in the ledger schema"):
        validate(entry)


@pytest.mark.parametrize(("field", "value"), [
    ("v", 2), ("v", True), ("v", "1"),
    ("object", "A" * 64), ("object", "0" * 63), ("object", "0" * 65), ("content", 5),
    ("time", "2025-02-30T10:00:00Z"), ("time", "2025-01-01T10:00:00+01:00"),
    ("time", "2025-01-01 10:00:00"), ("event", "Dataset-Registered"), ("purpose", ""),
])
def test_formats_are_strict(make_entry: Callable, field: str, value: object) -> None:
    entry = dict(make_entry().entry, **{field: value})
    with pytest.raises(EntryError):
        validate(entry)


def test_missing_fields_are_refused(make_entry: Callable) -> None:
    entry = dict(make_entry().entry)
    del entry["purpose"]
    with pytest.raises(EntryError, match="missing fields: purpose"):
        validate(entry)


def test_every_event_type_is_accepted(make_entry: Callable) -> None:
    for event in Event:
        assert validate(make_entry(event=event.value).entry)["event"] == event.value


def test_non_canonical_leaves_are_refused(make_entry: Callable) -> None:
    signed = make_entry()
    document = json.loads(signed.leaf())
    sig = document["sig"].encode()
    entry = canonical_json(document["entry"])
    for variant in (json.dumps(document).encode(),  # whitespace
                    b'{"sig":"' + sig + b'","entry":' + entry + b"}",  # key order
                    signed.leaf().replace(b'"v":1', b'"v":1.0'),  # number form
                    signed.leaf()[:-1] + b',"sig":"' + sig + b'"}'):  # duplicate key
        assert variant != signed.leaf()
        with pytest.raises(EntryError):
            parse_leaf(variant)


def test_signatures_bind_the_entry(make_entry: Callable, submitters: Submitters,
                                   submitter_key: Ed25519PrivateKey) -> None:
    signed = make_entry()
    changed = SignedEntry(dict(signed.entry, purpose="ai-training"), signed.signature)
    with pytest.raises(SubmitterError, match="does not verify"):
        submitters.verify(changed)
    stranger = Ed25519PrivateKey.generate()
    forged = sign_entry(signed.entry, stranger)
    with pytest.raises(SubmitterError, match="does not verify"):
        submitters.verify(forged)
    unknown = sign_entry(dict(signed.entry, actor="ab" * 32), submitter_key)
    with pytest.raises(SubmitterError, match="not a registered submitter"):
        submitters.verify(unknown)


def test_keyed_object_ids_hide_the_identifier() -> None:
    one = keyed_object_id(OBJECT_KEY, "patient", "PID-0012345")
    assert len(one) == 64 and "12345" not in one
    assert one == keyed_object_id(OBJECT_KEY, "patient", "PID-0012345")
    assert one != keyed_object_id(OBJECT_KEY, "study", "PID-0012345")
    assert one != keyed_object_id(hashlib.sha256(b"other site").digest(), "patient",
                                  "PID-0012345")
    # Without the key, hashing the guessed identifier does not find it.
    assert one != hashlib.sha256(b"PID-0012345").hexdigest()
    with pytest.raises(EntryError):
        keyed_object_id(b"short", "patient", "x")


def test_signature_field_is_checked(make_entry: Callable) -> None:
    document = json.loads(make_entry().leaf())
    for sig in ("not base64!", base64.b64encode(b"short").decode(), 7):
        document["sig"] = sig
        with pytest.raises(EntryError):
            parse_leaf(canonical_json(document))
