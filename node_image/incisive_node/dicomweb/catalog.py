"""The instances a DICOMweb request may see, with their de-identified headers for QIDO-RS
matching and WADO-RS metadata.

What may be seen is decided per request by `consent.release`: the patient's consent for the
request's purpose now, and curation's verdict. Headers are cached by SHA-256: objects are
content-addressed, so a cached header can never be stale (and holds no consent state)."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import pydicom
from pydicom.dataset import Dataset

from incisive_node.consent import ConsentRegistry
from incisive_node.consent.release import releasable
from incisive_node.store import Store


@dataclass(frozen=True)
class Entry:
    study_uid: str
    series_uid: str
    sop_uid: str
    sha256: str
    store: Store

    @property
    def header(self) -> Dataset:
        return _header(str(self.store.objects.path_for(self.sha256)))

    def data(self) -> bytes:
        return self.store.objects.get(self.sha256)


@lru_cache(maxsize=8192)
def _header(path: str) -> Dataset:
    return pydicom.dcmread(path, stop_before_pixels=True)


def entries(store: Store, registry: ConsentRegistry, purpose: str, grantee: str,
            study: str | None = None, series: str | None = None,
            instance: str | None = None) -> list[Entry]:
    """Instances released for `purpose` and `grantee` now; raises InvalidConsent for a
    purpose the consent model does not know."""
    return [Entry(r.study_uid, r.series_uid, r.sop_instance_uid, r.sha256, store)
            for r in releasable(registry, purpose, grantee, study=study, series=series,
                                instance=instance)]
