"""The content-addressed object store and the quarantine area's permissions."""

from __future__ import annotations

import hashlib
import stat
from pathlib import Path

from incisive_node.store import Store


def test_objects_are_named_by_their_sha256_and_written_once(tmp_path: Path) -> None:
    with Store(tmp_path / "store") as store:
        data = b"DICM-ish bytes"
        first = store.objects.put(data)
        again = store.objects.put(data)
        digest = hashlib.sha256(data).hexdigest()
        assert first.sha256 == digest and first.created
        assert not again.created
        assert first.path == tmp_path / "store" / "objects" / digest[:2] / digest[2:]
        assert first.path.read_bytes() == data
        assert not any((tmp_path / "store" / "objects" / ".tmp").iterdir())


def test_quarantine_area_is_private(tmp_path: Path) -> None:
    with Store(tmp_path / "store") as store:
        kept = store.quarantine.put(b"not de-identified")
        assert stat.S_IMODE(kept.path.stat().st_mode) == 0o600
        assert stat.S_IMODE(kept.path.parent.stat().st_mode) == 0o700
        assert stat.S_IMODE(store.quarantine.root.stat().st_mode) == 0o700
