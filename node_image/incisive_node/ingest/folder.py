"""Door 3: import every file under a folder, recursively.

Source paths are never logged, stored or shown in the summary: file names written by
hospital systems often hold patient names or IDs.
"""

from __future__ import annotations

import logging
import os
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from incisive_node.ingest.pipeline import Pipeline, StoreUnavailable
from incisive_node.ingest.progress import ProgressBar

log = logging.getLogger(__name__)

DOOR = "folder"


@dataclass
class FolderSummary:
    found: int = 0
    stored: Counter[str] = field(default_factory=Counter)  # by NEW / DUPLICATE / REPLACED
    quarantined: Counter[str] = field(default_factory=Counter)  # by reason
    unreadable: int = 0  # could not be read from the source; nothing came in
    failed: int = 0  # read, but neither stored nor quarantined (the store refused)

    @property
    def accounted_for(self) -> bool:
        return self.found == sum(self.stored.values()) + sum(self.quarantined.values())

    def lines(self) -> list[str]:
        out = [
            f"files found:   {self.found}",
            f"stored:        {sum(self.stored.values())}"
            + "".join(f"  {k}={v}" for k, v in sorted(self.stored.items())),
            f"quarantined:   {sum(self.quarantined.values())}",
        ]
        out += [f"  {reason}: {count}" for reason, count in sorted(self.quarantined.items())]
        if self.unreadable:
            out.append(f"unreadable:    {self.unreadable}")
        if self.failed:
            out.append(f"not kept:      {self.failed} (store unavailable; run again)")
        return out


def walk(root: Path) -> Iterator[Path]:
    # Symlinked folders are not followed (no loops, no escaping the tree); symlinked files are.
    for folder, dirs, files in os.walk(root, followlinks=False):
        dirs.sort()
        for name in sorted(files):
            yield Path(folder) / name


def import_folder(pipeline: Pipeline, root: Path, *, show_progress: bool = True) -> FolderSummary:
    if not root.is_dir():
        raise NotADirectoryError(f"not a folder: {root}")
    files = list(walk(root))
    summary = FolderSummary(found=len(files))
    bar = ProgressBar(len(files), "ingest") if show_progress else None
    for path in files:
        try:
            data = path.read_bytes()
        except OSError as failure:
            summary.unreadable += 1
            log.error("a source file could not be read (%s)", type(failure).__name__)
            _advance(bar, "unreadable")
            continue
        try:
            outcome = pipeline.ingest(data, DOOR)
        except StoreUnavailable:
            summary.failed += 1
            _advance(bar, "not kept")
            continue
        if outcome.stored:
            summary.stored[outcome.stored_as or "new"] += 1
        else:
            summary.quarantined[outcome.reason or "unknown"] += 1
        _advance(bar, outcome.reason or "stored")
    if bar is not None:
        bar.close()
    return summary


def _advance(bar: ProgressBar | None, note: str) -> None:
    if bar is not None:
        bar.advance(note)
