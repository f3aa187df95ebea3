"""The C-STORE SCP, driven by dcmtk's storescu and echoscu (real peers no one here wrote)."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from pynetdicom import AE
from pynetdicom.sop_class import CTImageStorage  # type: ignore[attr-defined]

from incisive_node.ingest.pipeline import Pipeline
from incisive_node.ingest.scp import StorageScp
from incisive_node.store import Store
from tests.ingest import samples
from tests.ingest.test_pipeline import assert_no_canary

needs_dcmtk = pytest.mark.skipif(
    shutil.which("storescu") is None, reason="dcmtk is not installed (see .ci/run)"
)


@pytest.fixture
def scp(pipeline: Pipeline) -> Iterator[StorageScp]:
    server = StorageScp(pipeline, allowed_calling_aets=["STORESCU", "ECHOSCU"], port=0)
    server.start()
    yield server
    server.stop()


def _write(folder: Path, files: dict[str, bytes]) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    for name, data in files.items():
        (folder / name).write_bytes(data)
    return [folder / name for name in files]


def _storescu(scp: StorageScp, paths: list[Path], calling: str = "STORESCU",
              called: str = "INCISIVE") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["storescu", "-v", "-aet", calling, "-aec", called, "-nh", scp.host, str(scp.port),
         *map(str, paths)],
        capture_output=True, text=True, timeout=60,
    )


@needs_dcmtk
def test_storescu_instances_land_deidentified(
    scp: StorageScp, store: Store, tmp_path: Path
) -> None:
    study = samples.new_study()
    paths = _write(
        tmp_path / "send", {f"{samples.CANARY}-{n}.dcm": samples.ct_file(study, n) for n in (1, 2)}
    )
    sent = _storescu(scp, paths)
    assert sent.returncode == 0, sent.stderr
    assert store.index.counts().instances == 2
    assert_no_canary(store)


@needs_dcmtk
def test_storescu_gets_a_failure_status_for_quarantined_instances(
    scp: StorageScp, store: Store, pipeline: Pipeline, tmp_path: Path
) -> None:
    study = samples.new_study()
    paths = _write(
        tmp_path / "send",
        {
            "ok.dcm": samples.ct_file(study, 1),
            "burned.dcm": samples.ct_file(study, 2, burned_in=True),
        },
    )
    sent = _storescu(scp, paths)
    assert "Error: CannotUnderstand" in sent.stderr  # storescu names the 0xC000 status
    assert store.index.counts().instances == 1
    assert store.index.quarantined_by_reason() == {"burned-in-annotation": 1}
    totals = pipeline.totals.snapshot()
    assert totals["received"] == 2 == totals["stored"] + totals["quarantined"]


@needs_dcmtk
def test_calling_ae_title_not_on_the_allow_list_is_refused(
    scp: StorageScp, store: Store, tmp_path: Path
) -> None:
    paths = _write(tmp_path / "send", {"a.dcm": samples.ct_file(samples.new_study(), 1)})
    sent = _storescu(scp, paths, calling="INTRUDER")
    assert sent.returncode != 0
    assert "reject" in sent.stderr.lower()
    assert store.index.counts().instances == 0


@needs_dcmtk
def test_wrong_called_ae_title_is_refused(scp: StorageScp, store: Store, tmp_path: Path) -> None:
    paths = _write(tmp_path / "send", {"a.dcm": samples.ct_file(samples.new_study(), 1)})
    sent = _storescu(scp, paths, called="SOMEONE_ELSE")
    assert sent.returncode != 0
    assert store.index.counts().instances == 0


@needs_dcmtk
def test_c_echo(scp: StorageScp) -> None:
    echo = subprocess.run(
        ["echoscu", "-aet", "ECHOSCU", "-aec", "INCISIVE", scp.host, str(scp.port)],
        capture_output=True, text=True, timeout=30,
    )
    assert echo.returncode == 0, echo.stderr
    refused = subprocess.run(
        ["echoscu", "-aet", "INTRUDER", "-aec", "INCISIVE", scp.host, str(scp.port)],
        capture_output=True, text=True, timeout=30,
    )
    assert refused.returncode != 0


def test_a_quarantined_instance_does_not_end_the_association(
    scp: StorageScp, store: Store, pipeline: Pipeline
) -> None:
    """pynetdicom as the peer: the refused instance gets 0xC000 and is kept in quarantine;
    the next instance on the same association is stored."""
    ae = AE(ae_title="STORESCU")
    ae.add_requested_context(CTImageStorage)
    assoc = ae.associate(scp.host, scp.port, ae_title="INCISIVE")
    assert assoc.is_established
    try:
        refused = samples.ct_dataset(samples.new_study(), 1, burned_in=True)
        status = assoc.send_c_store(refused)
        assert status.Status == 0xC000
        good = assoc.send_c_store(samples.ct_dataset(samples.new_study(), 2))
        assert good.Status == 0x0000
    finally:
        assoc.release()
    assert store.index.counts().instances == 1
    assert sum(store.index.quarantined_by_reason().values()) == 1


def test_the_scp_refuses_to_start_without_an_allow_list(pipeline: Pipeline) -> None:
    with pytest.raises(ValueError, match="allowed calling AE"):
        StorageScp(pipeline, allowed_calling_aets=[])


def test_the_scp_listens_on_loopback_only(pipeline: Pipeline) -> None:
    with pytest.raises(ValueError, match=r"127\.0\.0\.0/8"):
        StorageScp(pipeline, allowed_calling_aets=["X"], host="0.0.0.0")  # noqa: S104
