"""Prometheus metrics for curation. Labels are finding codes, levels and statuses from a
fixed vocabulary (findings.CODES, score.py), never anything from the data."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class CurationMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self.instances = Counter(
            "incisive_curation_instances", "Instances checked on ingest, by result"
            " (clean, flagged, quarantined)", ["result"], registry=registry,
        )
        self.findings = Counter(
            "incisive_curation_findings", "Findings recorded, by level and code",
            ["level", "code"], registry=registry,
        )
        self.series = Gauge(
            "incisive_curation_series", "Series in the index by curation status",
            ["status"], registry=registry,
        )
        self.score = Histogram(
            "incisive_curation_series_score", "Quality score of each series check",
            buckets=(0.25, 0.5, 0.75, 0.9, 0.99, 1.0), registry=registry,
        )
