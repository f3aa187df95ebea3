"""Built FHIR resources, kept until the store changes.

Building every resource of the store costs O(store) per request (index reads, header
lookups, curation queries per series, JSON encoding). The resources are a pure function of
the index rows they come from, so they are kept, with each one's JSON already encoded,
under the store's *generation*: one aggregate read over the tables the builders use. Any
insert there changes a count; an update (a replaced instance, a series re-checked) changes
the latest time or the total size. A request reads the generation (one cheap query) and
rebuilds only when it moved.

What the generation cannot see: an update that neither adds a row, nor writes a time later
than every earlier one, nor changes the total size — a replaced instance of exactly the same
size written by a replica whose clock is behind. The next change of any kind heals it.

Consent *decisions* are never taken from here: whether a patient permits a purpose depends
on the moment (periods), so search asks the registry on every request.
"""

from __future__ import annotations

import json
import threading
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from incisive_node.store import Index

_GENERATION = (
    "SELECT (SELECT COUNT(*) FROM instances), (SELECT MAX(stored_at) FROM instances),"
    " (SELECT SUM(size) FROM instances),"
    " (SELECT COUNT(*) FROM curation_instances), (SELECT MAX(checked_at) FROM curation_instances),"
    " (SELECT COUNT(*) FROM curation_series), (SELECT MAX(checked_at) FROM curation_series),"
    " (SELECT COUNT(*) FROM curation_findings),"
    " (SELECT COUNT(*) FROM consents), (SELECT MAX(recorded_at) FROM consents)"
)


def generation(index: Index) -> tuple[Any, ...]:
    return index.read(_GENERATION)[0]


@dataclass(frozen=True)
class Cached:
    resource: dict[str, Any]

    @cached_property
    def encoded(self) -> str:
        """The resource's JSON, encoded the first time a reply needs it."""
        return json.dumps(self.resource)


@dataclass(frozen=True)
class Snapshot:
    generation: tuple[Any, ...]
    by_type: dict[str, list[Cached]] = field(default_factory=dict)
    by_id: dict[tuple[str, str], Cached] = field(default_factory=dict)

    @classmethod
    def of(cls, at: tuple[Any, ...], resources: list[dict[str, Any]]) -> Snapshot:
        by_type: dict[str, list[Cached]] = defaultdict(list)
        by_id = {}
        for resource in resources:
            cached = Cached(resource)
            by_type[resource["resourceType"]].append(cached)
            by_id[(resource["resourceType"], resource["id"])] = cached
        return cls(at, dict(by_type), by_id)


class ResourceCache:
    """One snapshot of built resources, replaced when the generation moves. Safe to share
    between the HTTP server's threads; one thread rebuilds while the others wait."""

    def __init__(self, index: Index, build: Callable[[], list[dict[str, Any]]]) -> None:
        self.index = index
        self.build = build
        self.builds = 0  # how many times the store was read in full (tests, metrics)
        self._snapshot: Snapshot | None = None
        self._lock = threading.Lock()

    def snapshot(self) -> Snapshot:
        # The generation is read before the build: a write during the build leaves a
        # snapshot newer than its label, which the next request rebuilds; never older.
        now = generation(self.index)
        current = self._snapshot
        if current is not None and current.generation == now:
            return current
        with self._lock:
            now = generation(self.index)  # another thread may have rebuilt meanwhile
            current = self._snapshot
            if current is None or current.generation != now:
                current = Snapshot.of(now, self.build())
                self._snapshot = current
                self.builds += 1
            return current
