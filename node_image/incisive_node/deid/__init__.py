"""De-identification and reversible pseudonymisation (DICOM PS3.15 Annex E).

The public surface other parts of the appliance code against:
`Deidentifier(keys, options).deidentify(source) -> Result`, raising `Quarantined(reason)`.
"""

from .engine import Deidentifier
from .keys import ProjectKeys
from .model import QUARANTINE_REASONS, Options, Quarantined, Result

__all__ = ["QUARANTINE_REASONS", "Deidentifier", "Options", "ProjectKeys", "Quarantined", "Result"]
