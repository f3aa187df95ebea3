"""Just enough of RFC 2046 multipart and RFC 2387 multipart/related for STOW-RS bodies."""

from __future__ import annotations

from dataclasses import dataclass
from email.message import Message


class MultipartError(ValueError):
    pass


@dataclass(frozen=True)
class MediaType:
    value: str  # lowercased type/subtype
    params: dict[str, str]  # parameter names lowercased


@dataclass(frozen=True)
class Part:
    content_type: MediaType | None
    body: bytes


def parse_media_type(header: str) -> MediaType:
    # email.message knows RFC 2045's quoting rules; no need to re-implement them.
    message = Message()
    message["content-type"] = header
    params = {k.lower(): v for k, v in message.get_params(header="content-type")[1:]}
    return MediaType(message.get_content_type().lower(), params)


def split(body: bytes, boundary: str) -> list[Part]:
    if not boundary or len(boundary) > 70:
        raise MultipartError("missing or over-long boundary")
    delimiter = b"--" + boundary.encode("ascii", "strict")
    start = body.find(delimiter)
    if start < 0 or (start > 0 and body[start - 2 : start] != b"\r\n"):
        raise MultipartError("no opening boundary")
    parts: list[Part] = []
    position = start + len(delimiter)
    while True:
        if body[position : position + 2] == b"--":
            return parts  # closing delimiter; the epilogue is ignored
        line_end = body.find(b"\r\n", position)
        if line_end < 0:
            raise MultipartError("body ends after a boundary")
        headers_end = body.find(b"\r\n\r\n", line_end)
        if headers_end == line_end:  # no headers at all: the blank line follows at once
            headers_raw = b""
        elif headers_end < 0:
            raise MultipartError("part headers never end")
        else:
            headers_raw = body[line_end + 2 : headers_end]
        content_start = headers_end + 4
        next_delimiter = body.find(b"\r\n" + delimiter, content_start)
        if next_delimiter < 0:
            raise MultipartError("no closing boundary")
        parts.append(Part(_content_type(headers_raw), body[content_start:next_delimiter]))
        position = next_delimiter + 2 + len(delimiter)


def _content_type(headers_raw: bytes) -> MediaType | None:
    for line in headers_raw.split(b"\r\n"):
        name, sep, value = line.partition(b":")
        if sep and name.strip().lower() == b"content-type":
            return parse_media_type(value.decode("latin-1").strip())
    return None
