"""Curation: quality checks per instance (on ingest) and per series (when quiet, or on
demand), a score and status per series, results in the index and in Prometheus metrics.
See docs/curation.md."""

from incisive_node.curation.curator import Curator, InstanceReport, Sweeper
from incisive_node.curation.findings import CODES, Finding
from incisive_node.curation.records import CurationRecords, SeriesQuality

__all__ = ["CODES", "CurationRecords", "Curator", "Finding", "InstanceReport", "SeriesQuality",
           "Sweeper"]
