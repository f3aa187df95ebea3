"""One input, from a path or from bytes, read by offset so pixel data can be copied around
Python objects rather than through them."""

from __future__ import annotations

import io
import os


class ShortReadProbe:
    """Wraps the file pydicom parses: pydicom logs and swallows an element cut short by the
    end of the file, so a partial read is how a truncated header is noticed."""

    def __init__(self, raw) -> None:
        self._raw = raw
        self.short = False
        self.seek, self.tell = raw.seek, raw.tell

    def read(self, size: int = -1) -> bytes:
        data = self._raw.read(size)
        if size > 0 and 0 < len(data) < size:
            self.short = True
        return data

    def __getattr__(self, name: str):
        return getattr(self._raw, name)


class Source:
    def __init__(self, source: bytes | bytearray | memoryview | str | os.PathLike) -> None:
        if isinstance(source, (bytes, bytearray, memoryview)):
            self._view = memoryview(source).cast("B")
            self._fileobj = io.BytesIO(self._view)
            self.fd = None
            self.size = len(self._view)
        else:
            # A bare descriptor: the raw path needs only pread and sendfile; the buffered
            # file object pydicom reads from is made only if the pydicom path runs.
            self._view = None
            self._fileobj = None
            self.fd = os.open(source, os.O_RDONLY | os.O_CLOEXEC)
            try:
                self.size = os.fstat(self.fd).st_size
            except OSError:
                os.close(self.fd)
                raise

    @property
    def fileobj(self):
        if self._fileobj is None:
            self._fileobj = open(self.fd, "rb", buffering=65536, closefd=False)  # noqa: SIM115
        return self._fileobj

    def read_at(self, offset: int, length: int) -> bytes:
        if self._view is not None:
            return bytes(self._view[offset : offset + length])
        return os.pread(self.fd, length, offset)

    def copy_to(self, out_fd: int, offset: int, length: int) -> None:
        """Copy a byte range to `out_fd` in the kernel when the source is a file."""
        if self.fd is None:
            os.write(out_fd, self._view[offset : offset + length])
            return
        while length > 0:
            sent = os.sendfile(out_fd, self.fd, offset, length)
            if sent == 0:
                raise EOFError("source shrank while copying")
            offset += sent
            length -= sent

    def close(self) -> None:
        if self._fileobj is not None:
            self._fileobj.close()
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None

    def __enter__(self) -> Source:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
