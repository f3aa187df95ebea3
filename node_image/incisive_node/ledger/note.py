"""C2SP signed notes (c2sp.org/signed-note): Ed25519 signers, verifiers and vkeys.

A note is UTF-8 text ending in a newline, a blank line, then one or more lines
`— <key name> base64(key ID || signature)`. Verifiers ignore signatures from keys they do
not know, reject the whole note when a known key's signature fails, and reject a note that
no known key signed. Cosignatures (type 0x04) plug in through the same Verifier shape.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from dataclasses import dataclass
from typing import Protocol

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

SIG_ED25519 = 0x01
SIG_COSIGNATURE_V1 = 0x04
SIGNATURE_PREFIX = "\u2014 "
MAX_SIGNATURES = 100
MAX_NOTE_BYTES = 1 << 20


class NoteError(ValueError):
    """A note is malformed, or its signatures do not satisfy the verifiers."""


def key_id(name: str, sig_type: int, public_key: bytes) -> bytes:
    return hashlib.sha256(name.encode() + b"\n" + bytes([sig_type]) + public_key).digest()[:4]


def check_key_name(name: str) -> None:
    if not name or "+" in name or any(ch.isspace() for ch in name) or not name.isprintable():
        raise NoteError("key names are non-empty, with no spaces and no '+'")


def raw_public(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(Encoding.Raw, PublicFormat.Raw)


class Verifier(Protocol):
    name: str
    key_id: bytes

    def verify(self, text: bytes, signature: bytes) -> bool: ...


@dataclass(frozen=True)
class Ed25519Verifier:
    name: str
    public_key: Ed25519PublicKey
    sig_type: int = SIG_ED25519

    def __post_init__(self) -> None:
        check_key_name(self.name)

    @property
    def key_id(self) -> bytes:
        return key_id(self.name, self.sig_type, raw_public(self.public_key))

    def vkey(self) -> str:
        material = bytes([self.sig_type]) + raw_public(self.public_key)
        return f"{self.name}+{self.key_id.hex()}+{base64.b64encode(material).decode()}"

    def verify(self, text: bytes, signature: bytes) -> bool:
        try:
            self.public_key.verify(signature, text)
        except InvalidSignature:
            return False
        return True


@dataclass(frozen=True)
class Signature:
    name: str
    key_id: bytes
    signature: bytes

    def line(self) -> str:
        blob = base64.b64encode(self.key_id + self.signature).decode()
        return f"{SIGNATURE_PREFIX}{self.name} {blob}\n"


class Ed25519Signer:
    """Signs note text as a log (type 0x01)."""

    def __init__(self, name: str, private_key: Ed25519PrivateKey) -> None:
        check_key_name(name)
        self.name = name
        self._key = private_key
        self.verifier = Ed25519Verifier(name, private_key.public_key())
        self.key_id = self.verifier.key_id

    @classmethod
    def generate(cls, name: str) -> Ed25519Signer:
        return cls(name, Ed25519PrivateKey.generate())

    def sign(self, text: bytes) -> Signature:
        return Signature(self.name, self.key_id, self._key.sign(text))


def parse_vkey(vkey: str) -> Ed25519Verifier:
    """`name+keyhash+base64(type || public key)`: Ed25519 log keys and cosigner keys."""
    # The key is base64 and may itself contain '+'; names and hashes never do.
    parts = vkey.strip().split("+", 2)
    if len(parts) != 3:
        raise NoteError("a vkey is name+keyhash+key")
    name, hash_hex, blob = parts
    try:
        material = base64.b64decode(blob, validate=True)
        expected = bytes.fromhex(hash_hex)
    except (binascii.Error, ValueError) as exc:
        raise NoteError("a vkey's key hash is hex and its key is base64") from exc
    if len(material) != 33 or material[0] not in (SIG_ED25519, SIG_COSIGNATURE_V1):
        raise NoteError("only Ed25519 (0x01) and cosignature/v1 (0x04) vkeys are supported")
    public = Ed25519PublicKey.from_public_bytes(material[1:])
    if material[0] == SIG_COSIGNATURE_V1:
        from .cosignature import CosignatureVerifier

        verifier: Ed25519Verifier = CosignatureVerifier(name, public)
    else:
        verifier = Ed25519Verifier(name, public)
    if verifier.key_id != expected:
        raise NoteError("a vkey's key hash does not match its name and key")
    return verifier


@dataclass(frozen=True)
class Note:
    text: bytes
    signatures: tuple[Signature, ...]

    def encode(self) -> bytes:
        return self.text + b"\n" + "".join(s.line() for s in self.signatures).encode()

    def with_signatures(self, extra: list[Signature]) -> Note:
        seen = {(s.name, s.key_id, s.signature) for s in self.signatures}
        fresh = tuple(s for s in extra if (s.name, s.key_id, s.signature) not in seen)
        return Note(self.text, self.signatures + fresh)


def _check_text(text: bytes) -> None:
    try:
        decoded = text.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise NoteError("a note is UTF-8") from exc
    if not decoded.endswith("\n"):
        raise NoteError("note text ends in a newline")
    if any(ord(ch) < 0x20 and ch != "\n" for ch in decoded):
        raise NoteError("a note has no control characters other than newline")


def sign(text: bytes, *signers: Ed25519Signer) -> Note:
    _check_text(text)
    if not signers:
        raise NoteError("a note needs at least one signature")
    return Note(text, tuple(s.sign(text) for s in signers))


def parse_signature_lines(block: bytes) -> list[Signature]:
    _check_text(block)
    signatures = []
    for line in block.decode().splitlines():
        if not line.startswith(SIGNATURE_PREFIX):
            raise NoteError("a signature line starts with an em dash and a space")
        fields = line[len(SIGNATURE_PREFIX):].split(" ")
        if len(fields) != 2:
            raise NoteError("a signature line is '— name signature'")
        name, blob = fields
        check_key_name(name)
        try:
            raw = base64.b64decode(blob, validate=True)
        except binascii.Error as exc:
            raise NoteError("a signature is base64") from exc
        if len(raw) < 5:
            raise NoteError("a signature holds a key ID and signature bytes")
        signatures.append(Signature(name, raw[:4], raw[4:]))
    if not signatures:
        raise NoteError("a note has at least one signature line")
    if len(signatures) > MAX_SIGNATURES:
        raise NoteError("too many signatures on a note")
    return signatures


def parse(data: bytes) -> Note:
    """Split a note into text and signatures; checks syntax, not signatures."""
    if len(data) > MAX_NOTE_BYTES:
        raise NoteError("note too large")
    _check_text(data)
    cut = data.rfind(b"\n\n")
    if cut < 0:
        raise NoteError("a note separates its text from its signatures by a blank line")
    return Note(data[:cut + 1], tuple(parse_signature_lines(data[cut + 2:])))


def verified_signatures(note: Note, verifiers: list[Verifier]) -> list[tuple[Verifier, Signature]]:
    """Signatures by known keys, all checked. Raises if one fails or none is known."""
    known = {(v.name, v.key_id): v for v in verifiers}
    good: list[tuple[Verifier, Signature]] = []
    for sig in note.signatures:
        verifier = known.get((sig.name, sig.key_id))
        if verifier is None:
            continue
        if not verifier.verify(note.text, sig.signature):
            raise NoteError(f"the signature by {sig.name} does not verify")
        good.append((verifier, sig))
    if not good:
        raise NoteError("no signature on the note is from a trusted key")
    return good


def open_note(data: bytes, verifiers: list[Verifier]) -> tuple[Note, list[Verifier]]:
    """Parse and verify; returns the note and the verifiers whose signatures checked out."""
    note = parse(data)
    good = verified_signatures(note, verifiers)
    unique: list[Verifier] = []
    for verifier, _ in good:
        if verifier not in unique:
            unique.append(verifier)
    return note, unique
