"""Witness cosignatures, c2sp.org/tlog-cosignature, Ed25519 flavour (cosignature/v1, type 0x04).

The signature is a timestamp (u64, big-endian) followed by an Ed25519 signature over
`cosignature/v1\\ntime <t>\\n` and the checkpoint body. The timestamp is what lets a verifier
tell a fresh cosignature from one replayed from long ago.
"""

from __future__ import annotations

import struct
import time
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from .note import SIG_COSIGNATURE_V1, Ed25519Verifier, Signature, check_key_name

MAX_TIMESTAMP = (1 << 63) - 1


def signed_message(text: bytes, timestamp: int) -> bytes:
    return b"cosignature/v1\ntime %d\n" % timestamp + text


def timestamp_of(signature: bytes) -> int:
    if len(signature) != 72:
        raise ValueError("a cosignature/v1 signature is 72 bytes")
    return struct.unpack(">Q", signature[:8])[0]


@dataclass(frozen=True)
class CosignatureVerifier(Ed25519Verifier):
    sig_type: int = SIG_COSIGNATURE_V1
    # Cosignatures from further ahead than this are treated as forged clocks.
    max_future_skew: int = 600

    def verify(self, text: bytes, signature: bytes) -> bool:
        if len(signature) != 72:
            return False
        timestamp = timestamp_of(signature)
        if timestamp > MAX_TIMESTAMP or timestamp > time.time() + self.max_future_skew:
            return False
        try:
            self.public_key.verify(signature[8:], signed_message(text, timestamp))
        except InvalidSignature:
            return False
        return True


class CosignatureSigner:
    def __init__(self, name: str, private_key: Ed25519PrivateKey) -> None:
        check_key_name(name)
        self.name = name
        self._key = private_key
        self.verifier = CosignatureVerifier(name, private_key.public_key())
        self.key_id = self.verifier.key_id

    @classmethod
    def generate(cls, name: str) -> CosignatureSigner:
        return cls(name, Ed25519PrivateKey.generate())

    def cosign(self, text: bytes, timestamp: int | None = None) -> Signature:
        timestamp = int(time.time()) if timestamp is None else timestamp
        body = self._key.sign(signed_message(text, timestamp))
        return Signature(self.name, self.key_id, struct.pack(">Q", timestamp) + body)
