"""What curation can say about an instance or a series: stable codes, a severity each, and
a detail that names attributes and numbers only (never a value of a text attribute)."""

from __future__ import annotations

from dataclasses import dataclass

ERROR, WARNING, INFO = "error", "warning", "info"

# code -> severity. The codes are the vocabulary of the index, the metrics and the FHIR
# Observations; docs/curation.md explains each.
CODES: dict[str, str] = {
    # instance level
    "missing-required-attribute": WARNING,
    "pixel-data-missing": ERROR,
    "pixel-data-undecodable": ERROR,
    "pixel-data-not-checked": INFO,
    "empty-image": ERROR,
    "constant-image": WARNING,
    "implausible-value": WARNING,
    "invalid-orientation": ERROR,
    "curation-error": INFO,
    # series level
    "inconsistent-orientation": ERROR,
    "duplicate-positions": ERROR,
    "missing-slices": WARNING,
    "inconsistent-pixel-spacing": WARNING,
    "inconsistent-dimensions": WARNING,
}
INSTANCE, SERIES = "instance", "series"

# Quarantine reason (ingest's vocabulary) for an instance curation refuses outright.
QUARANTINE_REASON = "curation-pixel-data"


@dataclass(frozen=True)
class Finding:
    code: str
    detail: str = ""
    level: str = INSTANCE

    @property
    def severity(self) -> str:
        return CODES[self.code]
