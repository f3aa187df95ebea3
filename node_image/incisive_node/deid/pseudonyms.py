"""Keyed, deterministic pseudonyms: one project key always gives the same output, and two
project keys give unlinkable output (HMAC-SHA-256 under per-purpose derived keys)."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
from functools import lru_cache

from .keys import ProjectKeys

DICOM_ROOT = "1.2.840.10008."
# Offsets are drawn from [MIN, MIN + SPAN) days back in time: never zero, so a shifted date
# is never the real one, and wide enough that the shift cannot be guessed from one date.
OFFSET_MIN_DAYS = 365
OFFSET_SPAN_DAYS = 3650
EMPTY_PATIENT = "\x00no-patient-id"


class Pseudonymizer:
    def __init__(self, keys: ProjectKeys) -> None:
        self._uid_key = keys.derive("uid")
        self._patient_key = keys.derive("patient")
        self._date_key = keys.derive("date-offset")
        # A series is hundreds of files with the same patient, study and series: cached, as
        # pure functions of the key and the value.
        self.uid = lru_cache(maxsize=65536)(self._uid)
        self.patient = lru_cache(maxsize=4096)(self._patient)
        self.date_offset = lru_cache(maxsize=4096)(self._date_offset)

    def _mac(self, key: bytes, value: str) -> bytes:
        return hmac.new(key, value.encode("utf-8", "surrogateescape"), hashlib.sha256).digest()

    def _uid(self, uid: str) -> str:
        """`2.25.` + a 128-bit integer shaped as an RFC 9562 version-8 UUID."""
        raw = bytearray(self._mac(self._uid_key, uid)[:16])
        raw[6] = (raw[6] & 0x0F) | 0x80
        raw[8] = (raw[8] & 0x3F) | 0x80
        return "2.25." + str(int.from_bytes(raw, "big"))

    @staticmethod
    def is_standard_uid(uid: str) -> bool:
        """UIDs the standard defines (classes, syntaxes, coding schemes) identify no one."""
        return uid.startswith(DICOM_ROOT)

    def _patient(self, patient_id: str, issuer: str = "") -> str:
        """A 20-character pseudonym; the issuer keeps two hospitals' "12345" apart."""
        ident = f"{issuer}\x00{patient_id}" if patient_id else EMPTY_PATIENT
        digest = self._mac(self._patient_key, ident)[:15]
        return "P" + base64.b32encode(digest).decode().rstrip("=")[:19]

    def _date_offset(self, patient_id: str, issuer: str = "") -> int:
        """Days to shift every date of this patient back by: constant within a patient."""
        ident = f"{issuer}\x00{patient_id}" if patient_id else EMPTY_PATIENT
        value = int.from_bytes(self._mac(self._date_key, ident)[:8], "big")
        return OFFSET_MIN_DAYS + value % OFFSET_SPAN_DAYS


@lru_cache(maxsize=65536)  # strptime is slow and a series repeats the same few dates
def shift_date(value: str, days: int) -> str:
    """Shift a DA value (YYYYMMDD; a range 'A-B' shifts both ends); raises ValueError."""
    if "-" in value:
        return "-".join(shift_date(part, days) if part else "" for part in value.split("-"))
    day = dt.datetime.strptime(value.strip(), "%Y%m%d").date()
    return (day - dt.timedelta(days=days)).strftime("%Y%m%d")


@lru_cache(maxsize=65536)
def shift_datetime(value: str, days: int) -> str:
    """Shift the date part of a DT value, keeping time, fraction and offset as they were."""
    text = value.strip()
    digits = len(text) - len(text.lstrip("0123456789"))
    if digits in (4, 6):  # a year or year-month only: shift its first day, keep the precision
        return shift_date(text[:digits] + "0101"[digits - 4 :], days)[:digits] + text[digits:]
    if digits < 8:
        raise ValueError("DT date part is not numeric")
    return shift_date(text[:8], days) + text[8:]
