"""C2SP signed notes, cosignatures and checkpoints: round trips and rejections."""

from __future__ import annotations

import base64
import hashlib
import struct
import time

import pytest

from incisive_node.ledger.checkpoint import Checkpoint
from incisive_node.ledger.cosignature import CosignatureSigner, CosignatureVerifier
from incisive_node.ledger.merkle import leaf_hash
from incisive_node.ledger.note import (
    Ed25519Signer,
    Ed25519Verifier,
    NoteError,
    Signature,
    open_note,
    parse,
    parse_vkey,
    raw_public,
    sign,
)

TEXT = b"hub.incisive.test/ledger\n42\n" + base64.b64encode(leaf_hash(b"x")) + b"\n"


def test_key_id_is_the_signed_note_recommendation() -> None:
    signer = Ed25519Signer.generate("hub.incisive.test/ledger")
    public = raw_public(signer.verifier.public_key)
    expected = hashlib.sha256(b"hub.incisive.test/ledger\n\x01" + public).digest()[:4]
    assert signer.key_id == expected


def test_vkey_round_trip() -> None:
    # Base64 uses '+': keep generating until the key material shows one, the tricky case.
    while True:
        signer = Ed25519Signer.generate("hub.incisive.test/ledger")
        vkey = signer.verifier.vkey()
        if vkey.count("+") > 2:
            break
    name, key_hash, blob = vkey.split("+", 2)
    assert name == "hub.incisive.test/ledger"
    assert bytes.fromhex(key_hash) == signer.key_id
    assert base64.b64decode(blob) == b"\x01" + raw_public(signer.verifier.public_key)
    parsed = parse_vkey(vkey)
    assert parsed.key_id == signer.key_id
    assert isinstance(parsed, Ed25519Verifier)
    assert not isinstance(parsed, CosignatureVerifier)
    witness = CosignatureSigner.generate("site-a.incisive.test/witness")
    assert isinstance(parse_vkey(witness.verifier.vkey()), CosignatureVerifier)


def test_vkey_rejections() -> None:
    vkey = Ed25519Signer.generate("log.example").verifier.vkey()
    name, key_hash, blob = vkey.split("+", 2)
    wrong_hash = f"{(int(key_hash, 16) ^ 1):08x}"
    for bad in (f"{name}+{wrong_hash}+{blob}", f"other.example+{key_hash}+{blob}",
                f"{name}+{key_hash}", f"{name}+zz+{blob}", f"{name}+{key_hash}+!!",
                f"{name}+{key_hash}+" + base64.b64encode(b"\x09" + bytes(32)).decode()):
        with pytest.raises(NoteError):
            parse_vkey(bad)


def test_sign_and_open_round_trip() -> None:
    signer = Ed25519Signer.generate("hub.incisive.test/ledger")
    encoded = sign(TEXT, signer).encode()
    assert encoded.startswith(TEXT + b"\n\xe2\x80\x94 hub.incisive.test/ledger ")
    note, good = open_note(encoded, [signer.verifier])
    assert note.text == TEXT
    assert good == [signer.verifier]
    raw = base64.b64decode(encoded.decode().split(" ")[-1])
    assert raw[:4] == signer.key_id
    signer.verifier.public_key.verify(raw[4:], TEXT)


def test_note_text_may_contain_blank_lines() -> None:
    signer = Ed25519Signer.generate("poet.example")
    text = "Ognuno sta solo sul cuor della terra\n\ned è subito sera.\n".encode()
    note, _ = open_note(sign(text, signer).encode(), [signer.verifier])
    assert note.text == text


def test_unknown_signatures_are_ignored_but_never_sufficient() -> None:
    log, stranger = Ed25519Signer.generate("log.example"), Ed25519Signer.generate("x.example")
    both = sign(TEXT, stranger, log).encode()
    _, good = open_note(both, [log.verifier])
    assert good == [log.verifier]
    with pytest.raises(NoteError, match="no signature"):
        open_note(sign(TEXT, stranger).encode(), [log.verifier])
    # Same name, different key: still unknown, still ignored.
    impostor = Ed25519Signer.generate("log.example")
    with pytest.raises(NoteError, match="no signature"):
        open_note(sign(TEXT, impostor).encode(), [log.verifier])


def test_a_failing_known_signature_rejects_the_note() -> None:
    log = Ed25519Signer.generate("log.example")
    encoded = sign(TEXT, log).encode()
    tampered = encoded.replace(b"\n42\n", b"\n43\n")
    with pytest.raises(NoteError, match="does not verify"):
        open_note(tampered, [log.verifier])
    other = Ed25519Signer.generate("other.example")
    # A valid signature does not rescue a note that also carries a bad one from a known key.
    bad = Signature(log.name, log.key_id, other.sign(TEXT).signature)
    with pytest.raises(NoteError, match="does not verify"):
        open_note(encoded + bad.line().encode(), [log.verifier])


@pytest.mark.parametrize("bad", [
    b"no blank line\n\xe2\x80\x94 a AAAAAAA=\n",
    TEXT + b"\n",
    TEXT + b"\n- log.example AAAAAAAA\n",
    TEXT + b"\n\xe2\x80\x94 log.example not*base64\n",
    TEXT + b"\n\xe2\x80\x94 log.example AAAA\n",
    TEXT + b"\n\xe2\x80\x94 log example AAAAAAAA\n",
    TEXT.replace(b"42", b"4\x072") + b"\n\xe2\x80\x94 log.example AAAAAAAA\n",
    b"\xff\xfe" + TEXT + b"\n\xe2\x80\x94 log.example AAAAAAAA\n",
    (TEXT + b"\n\xe2\x80\x94 log.example AAAAAAAA").rstrip(b"\n"),
])
def test_malformed_notes_are_rejected(bad: bytes) -> None:
    with pytest.raises(NoteError):
        parse(bad)


def test_key_names_with_spaces_or_plus_are_refused() -> None:
    for name in ("", "a b", "a+b"):
        with pytest.raises(NoteError):
            Ed25519Signer.generate(name)


def test_cosignature_v1_message_and_round_trip() -> None:
    witness = CosignatureSigner.generate("site-a.incisive.test/witness")
    public = raw_public(witness.verifier.public_key)
    assert witness.key_id == hashlib.sha256(
        b"site-a.incisive.test/witness\n\x04" + public).digest()[:4]
    now = int(time.time())
    sig = witness.cosign(TEXT, now)
    assert struct.unpack(">Q", sig.signature[:8])[0] == now
    # The signed message is fixed by the spec: header, time line, then the note body.
    witness.verifier.public_key.verify(sig.signature[8:],
                                       b"cosignature/v1\ntime %d\n" % now + TEXT)
    assert witness.verifier.verify(TEXT, sig.signature)
    assert not witness.verifier.verify(TEXT.replace(b"42", b"41"), sig.signature)
    later = struct.pack(">Q", now + 1) + sig.signature[8:]
    assert not witness.verifier.verify(TEXT, later)


def test_cosignatures_from_the_future_are_refused() -> None:
    witness = CosignatureSigner.generate("w.example")
    ahead = witness.cosign(TEXT, int(time.time()) + 3600)
    assert not witness.verifier.verify(TEXT, ahead.signature)


def test_a_log_signature_is_not_a_cosignature() -> None:
    # Same key material used both ways must not cross over: the type byte changes the key ID
    # and the message, so neither verifies as the other.
    log = Ed25519Signer.generate("dual.example")
    as_witness = CosignatureVerifier("dual.example", log.verifier.public_key)
    assert as_witness.key_id != log.key_id
    signature = log.sign(TEXT).signature
    assert not as_witness.verify(TEXT, signature)


def test_checkpoint_format_round_trip() -> None:
    root = leaf_hash(b"root")
    checkpoint = Checkpoint("hub.incisive.test/ledger", 20852163, root)
    body = checkpoint.body()
    assert body == (b"hub.incisive.test/ledger\n20852163\n" + base64.b64encode(root) + b"\n")
    assert Checkpoint.parse(body) == checkpoint
    assert Checkpoint.parse(body + b"extension line\n") == checkpoint


@pytest.mark.parametrize("body", [
    b"origin\n042\n" + base64.b64encode(bytes(32)) + b"\n",
    b"origin\n-1\n" + base64.b64encode(bytes(32)) + b"\n",
    b"origin\n1\n" + base64.b64encode(bytes(31)) + b"\n",
    b"origin\n1\nnot base64\n",
    b"origin\n1\n" + base64.b64encode(bytes(32)),
    b"\n1\n" + base64.b64encode(bytes(32)) + b"\n",
    b"origin\n1\n" + base64.b64encode(bytes(32)) + b"\n\n",
    b"origin\n1\n",
])
def test_malformed_checkpoints_are_rejected(body: bytes) -> None:
    with pytest.raises(NoteError):
        Checkpoint.parse(body)
