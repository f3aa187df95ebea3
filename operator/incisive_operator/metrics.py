"""Prometheus metrics of the operator. Labels carry kinds and outcomes, never object names."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

from prometheus_client import Counter, Gauge, Histogram, start_http_server

RECONCILES = Counter("incisive_operator_reconciles_total", "Reconciles run", ["kind", "result"])
ERRORS = Counter("incisive_operator_reconcile_errors_total", "Reconciles that failed", ["kind"])
DURATION = Histogram(
    "incisive_operator_reconcile_duration_seconds", "Time spent in one reconcile", ["kind"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
OBJECTS = Gauge(
    "incisive_operator_objects", "Objects by summary condition status", ["kind", "status"]
)


class ObjectCounts:
    """Feeds OBJECTS from watch events: each object's latest summary status, by uid."""

    def __init__(self) -> None:
        self._status: dict[str, dict[str, str]] = {}

    def observe(self, kind: str, uid: str, status: str | None) -> None:
        seen = self._status.setdefault(kind, {})
        if status is None:
            seen.pop(uid, None)
        else:
            seen[uid] = status
        for value in ("True", "False", "Unknown"):
            OBJECTS.labels(kind, value).set(sum(1 for s in seen.values() if s == value))


COUNTS = ObjectCounts()


@contextmanager
def measured(kind: str) -> Iterator[None]:
    started = time.perf_counter()
    try:
        yield
    except Exception:
        ERRORS.labels(kind).inc()
        RECONCILES.labels(kind, "error").inc()
        raise
    else:
        RECONCILES.labels(kind, "ok").inc()
    finally:
        DURATION.labels(kind).observe(time.perf_counter() - started)


def serve(address: str) -> None:
    """Expose /metrics on host:port."""
    host, _, port = address.rpartition(":")
    start_http_server(int(port), addr=host or "127.0.0.1")
