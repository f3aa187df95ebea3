"""Checkpoints (c2sp.org/tlog-checkpoint): origin, tree size and root hash as a note body."""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass

from .merkle import HASH_SIZE
from .note import NoteError

_SIZE = re.compile(r"0|[1-9][0-9]*")


@dataclass(frozen=True)
class Checkpoint:
    origin: str
    size: int
    root: bytes

    def __post_init__(self) -> None:
        if not self.origin or "\n" in self.origin:
            raise NoteError("a checkpoint origin is one non-empty line")
        if self.size < 0:
            raise NoteError("a tree size is not negative")
        if len(self.root) != HASH_SIZE:
            raise NoteError("a root hash is 32 bytes")

    def body(self) -> bytes:
        root = base64.b64encode(self.root).decode()
        return f"{self.origin}\n{self.size}\n{root}\n".encode()

    @classmethod
    def parse(cls, text: bytes) -> Checkpoint:
        """Parse a note body; extension lines are accepted and ignored, as the spec allows."""
        try:
            lines = text.decode("utf-8").split("\n")
        except UnicodeDecodeError as exc:
            raise NoteError("a checkpoint is UTF-8") from exc
        if len(lines) < 4 or lines[-1] != "" or any(not line for line in lines[:-1]):
            raise NoteError("a checkpoint is at least three non-empty newline-ended lines")
        origin, size, root = lines[0], lines[1], lines[2]
        if not _SIZE.fullmatch(size):
            raise NoteError("a checkpoint size is decimal with no leading zeroes")
        try:
            raw_root = base64.b64decode(root, validate=True)
        except binascii.Error as exc:
            raise NoteError("a checkpoint root is base64") from exc
        return cls(origin, int(size), raw_root)
