"""One synthetic series per defect class, sent through the real pipeline (de-identifier and
curator): each defect is caught, with its code, at the right level."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry

from incisive_node.curation import Curator, instance_checks
from incisive_node.curation.findings import CODES, QUARANTINE_REASON
from incisive_node.ingest.pipeline import Pipeline
from incisive_node.store import Store
from tests.curation import samples

INSTANCE_DEFECTS = [
    "missing-required-attribute", "empty-image", "constant-image",
    "implausible-value", "invalid-orientation",
]
SERIES_DEFECTS = [
    "inconsistent-orientation", "duplicate-positions", "missing-slices",
    "inconsistent-pixel-spacing", "inconsistent-dimensions",
]


def _ingest(store: Store, deidentifier, defect: str | None):
    registry = CollectorRegistry()
    curator = Curator(store, registry=registry)
    pipeline = Pipeline(store, deidentifier, registry=registry, curator=curator)
    spec = samples.spec(slices=6)
    outcomes = [pipeline.ingest(data, "test") for data in samples.series(spec, defect)]
    curated = curator.curate_pending(quiet_seconds=0)
    return pipeline, curator, outcomes, curated


def test_a_clean_series_passes_with_full_score(store: Store, deidentifier) -> None:
    _, curator, outcomes, curated = _ingest(store, deidentifier, None)
    assert all(o.stored for o in outcomes)
    assert len(curated) == 1
    assert (curated[0].status, curated[0].score, curated[0].findings) == ("pass", 1.0, ())
    assert curator.metrics.registry.get_sample_value(
        "incisive_curation_series", {"status": "pass"}) == 1


@pytest.mark.parametrize("defect", INSTANCE_DEFECTS)
def test_instance_defects_are_flagged(store: Store, deidentifier, defect: str) -> None:
    _, curator, outcomes, curated = _ingest(store, deidentifier, defect)
    assert all(o.stored for o in outcomes)
    [quality] = curated
    assert [f.code for f in quality.findings if f.level == "instance"] == [defect]
    assert quality.status in ("flag", "fail") and quality.score < 1.0
    rows = store.index.read("SELECT code FROM curation_findings WHERE level = 'instance'")
    assert rows == [(defect,)]
    assert curator.metrics.registry.get_sample_value(
        "incisive_curation_findings_total", {"level": "instance", "code": defect}) == 1


@pytest.mark.parametrize("defect", SERIES_DEFECTS)
def test_series_defects_are_found_when_the_series_is_checked(
    store: Store, deidentifier, defect: str
) -> None:
    _, _, outcomes, curated = _ingest(store, deidentifier, defect)
    assert all(o.stored for o in outcomes)
    [quality] = curated
    assert [f.code for f in quality.findings if f.level == "series"] == [defect]
    expected = "fail" if CODES[defect] == "error" else "flag"
    assert quality.status == expected


def test_undecodable_pixel_data_is_quarantined_with_a_reason(store: Store, deidentifier) -> None:
    pipeline, _, outcomes, _ = _ingest(store, deidentifier, "pixel-data-undecodable")
    refused = [o for o in outcomes if not o.stored]
    assert len(refused) == 1
    assert refused[0].reason == QUARANTINE_REASON
    assert refused[0].detail.startswith("pixel-data-undecodable")
    assert store.index.quarantined_by_reason() == {QUARANTINE_REASON: 1}
    assert pipeline.totals.snapshot()["stored"] == 5


def test_a_late_instance_makes_the_series_pending_again(store: Store, deidentifier) -> None:
    registry = CollectorRegistry()
    curator = Curator(store, registry=registry)
    pipeline = Pipeline(store, deidentifier, registry=registry, curator=curator)
    spec = samples.spec(slices=6)
    files = samples.series(spec)
    for data in files[:3] + files[4:]:
        pipeline.ingest(data, "test")
    [first] = curator.curate_pending(0)
    assert [f.code for f in first.findings] == ["missing-slices"]
    assert curator.curate_pending(0) == []
    pipeline.ingest(files[3], "test")
    [again] = curator.curate_pending(0)
    assert again.status == "pass" and again.instances == 6


def test_an_image_without_pixel_data_is_flagged() -> None:
    # The de-identifier already refuses such a file on ingest (as truncated), so this check
    # guards the on-demand path (backfill of older stores) and is tested on its own.
    spec = samples.spec(slices=1)
    ds = samples.slice_dataset(spec, 1)
    del ds.PixelData
    check = instance_checks.check_dataset(ds)
    assert [f.code for f in check.findings] == ["pixel-data-missing"]
