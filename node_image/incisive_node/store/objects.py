"""Content-addressed files on disk: a file's name is the SHA-256 of its bytes.

Writers never expose a half-written file: bytes go to a temporary file in the same file
system, are flushed to disk, and are renamed into place. Because the name is the content,
a second write of the same bytes is a no-op, and two threads writing the same bytes race
harmlessly (both renames install identical files).
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class StoredObject:
    sha256: str
    size: int
    path: Path
    created: bool  # False when identical bytes were already there


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class ObjectStore:
    """Files under `root/ab/cdef…`, where `abcdef…` is the SHA-256 of the file's bytes."""

    def __init__(self, root: Path, *, dir_mode: int = 0o750, file_mode: int = 0o640) -> None:
        self.root = Path(root)
        self._dir_mode = dir_mode
        self._file_mode = file_mode
        self._tmp = self.root / ".tmp"
        # makedirs applies the umask; chmod makes the mode what we asked for.
        for folder in (self.root, self._tmp):
            folder.mkdir(parents=True, exist_ok=True, mode=dir_mode)
            folder.chmod(dir_mode)

    def path_for(self, sha256: str) -> Path:
        if len(sha256) != 64 or not all(c in "0123456789abcdef" for c in sha256):
            raise ValueError("not a lowercase SHA-256 hex digest")
        return self.root / sha256[:2] / sha256[2:]

    def put(self, data: bytes) -> StoredObject:
        digest = sha256_hex(data)
        target = self.path_for(digest)
        if target.is_file() and target.stat().st_size == len(data):
            return StoredObject(digest, len(data), target, created=False)
        target.parent.mkdir(exist_ok=True, mode=self._dir_mode)
        fd, tmp_name = tempfile.mkstemp(dir=self._tmp, prefix="incoming-")
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.chmod(tmp_name, self._file_mode)
            os.replace(tmp_name, target)
        except BaseException:
            Path(tmp_name).unlink(missing_ok=True)
            raise
        _fsync_dir(target.parent)
        return StoredObject(digest, len(data), target, created=True)

    def get(self, sha256: str) -> bytes:
        return self.path_for(sha256).read_bytes()

    def discard(self, sha256: str) -> bool:
        """Remove a file (the hub's pool deletes withdrawn copies); False if it was not there.
        The caller makes sure nothing still refers to these bytes."""
        try:
            self.path_for(sha256).unlink()
        except FileNotFoundError:
            return False
        _fsync_dir(self.path_for(sha256).parent)
        return True

    def __contains__(self, sha256: str) -> bool:
        return self.path_for(sha256).is_file()


def _fsync_dir(folder: Path) -> None:
    # The rename is only durable once the directory entry itself reaches the disk.
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
