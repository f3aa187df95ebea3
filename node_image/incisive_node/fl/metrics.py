"""Per-round metrics as JSON lines: written by the ServerApp, read by whoever tracks the run.

The ServerApp runs in its own process at the hub, so it cannot call back into the operator;
it appends one JSON object per event to `metrics.jsonl` in the run's output folder and
flushes each line. `read_events` and `follow_events` give them back, so the operator can
copy them into a TrainingJob's status, after its own restart too (the file stays).

Events carry round numbers, losses, accuracies, counts, site names and hashes: never
pseudonyms, file names or exception text (which could quote data).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

METRICS_FILE = "metrics.jsonl"
FINAL_EVENTS = ("completed", "failed")

Event = dict[str, Any]


class MetricsSink:
    def __init__(self, folder: Path, callback: Callable[[Event], None] | None = None) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.path = folder / METRICS_FILE
        self._callback = callback

    def emit(self, event: str, **fields: Any) -> Event:
        record = {"event": event, "time": datetime.now(UTC).isoformat(timespec="seconds")}
        record.update(fields)
        line = json.dumps(record, sort_keys=True)
        with self.path.open("a", encoding="utf-8") as handle:
            handle.write(line + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        if self._callback is not None:
            self._callback(record)
        return record


def read_events(path: Path) -> list[Event]:
    """Every complete line so far (a line being written is left for the next read)."""
    if not path.is_file():
        return []
    text = path.read_text(encoding="utf-8")
    return [json.loads(line) for line in text.split("\n")[:-1] if line.strip()]


def follow_events(
    path: Path,
    *,
    poll_s: float = 0.5,
    stop: Callable[[], bool] = lambda: False,
) -> Iterator[Event]:
    """Yield events as they are appended, until a final event or `stop()` says so."""
    seen = 0
    while True:
        events = read_events(path)
        for event in events[seen:]:
            yield event
            if event["event"] in FINAL_EVENTS:
                return
        seen = len(events)
        if stop():
            return
        time.sleep(poll_s)
