"""The public types the rest of the appliance codes against (see `__init__`)."""

from __future__ import annotations

from dataclasses import dataclass, field

# Stable quarantine reason codes; docs/deidentification.md explains each one.
QUARANTINE_REASONS = (
    "empty-file",  # 0 bytes
    "not-dicom",  # neither a Part 10 file nor a bare data set
    "missing-file-meta",  # a bare data set, or a Part 10 preamble with no usable file meta
    "truncated",  # the file ends inside an element
    "unknown-transfer-syntax",  # a transfer syntax we cannot parse, or none at all
    "unsupported-transfer-syntax",  # known but not handled here (deflate)
    "invalid-value",  # a value that breaks its VR's rules, or an unparseable header
    "missing-identity",  # no SOP Class / SOP Instance / Study / Series UID to key output on
    "burned-in-annotation",  # BurnedInAnnotation YES and no pixel mask for the device
    "burned-in-risk",  # a kind that often carries burned-in text, and no pixel mask
    "unmaskable-pixels",  # a mask applies but the pixel data is compressed or malformed
    "oversized-private",  # a private element larger than the configured limit
    "unreadable",  # the file could not be opened or read (permissions, I/O error)
    "internal-error",  # a bug in this engine: the input is kept, never passed on
)


class Quarantined(Exception):
    """An instance that must not leave quarantine; `detail` never carries PHI."""

    def __init__(self, reason: str, detail: str = "") -> None:
        if reason not in QUARANTINE_REASONS:
            raise ValueError(f"unknown quarantine reason {reason!r}")
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True)
class Options:
    """The PS3.15 options this site applies on top of the Basic Profile."""

    retain_longitudinal_modified_dates: bool = True
    retain_patient_characteristics: bool = False
    retain_device_identity: bool = False
    clean_descriptors: bool = False
    retain_safe_private: bool = False
    # (group, private creator, element offset 0x00-0xFF) allowed through with retain_safe_private
    safe_private: frozenset = frozenset()
    # "Manufacturer|Model" -> [(x, y, width, height), ...] blacked out (Clean Pixel Data)
    pixel_masks: dict = field(default_factory=dict)
    max_private_bytes: int = 16 * 1024 * 1024

    def __hash__(self) -> int:
        return hash((self.flags(), self.safe_private, tuple(sorted(self.pixel_masks))))

    def flags(self) -> tuple[str, ...]:
        """The option names in force, as used by the profile table."""
        names = (
            "retain_longitudinal_modified_dates",
            "retain_patient_characteristics",
            "retain_device_identity",
            "clean_descriptors",
            "retain_safe_private",
        )
        return tuple(n for n in names if getattr(self, n))


@dataclass(frozen=True)
class Result:
    data: bytes
    patient_pseudonym: str
    study_uid: str
    series_uid: str
    sop_instance_uid: str
    sop_class_uid: str
    modality: str | None
    body_part: str | None
    # pseudonym -> original identifiers; only for the encrypted mapping store, never logged
    mapping: dict = field(repr=False)
