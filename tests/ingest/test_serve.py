"""`incisive-node serve` as a process: storescu and a STOW-RS client send to it, then it
stops cleanly on SIGTERM."""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
import requests

from incisive_node.deid.keys import ProjectKeys, write_key_file
from incisive_node.store import Store
from tests.ingest import samples
from tests.ingest.ports import free_port
from tests.ingest.test_pipeline import assert_no_canary

SERVE = [sys.executable, "-c", "import sys; from incisive_node.cli import main; sys.exit(main())"]


@pytest.mark.skipif(shutil.which("storescu") is None, reason="dcmtk is not installed")
def test_serve_takes_c_store_and_stow_and_stops_on_sigterm(tmp_path: Path) -> None:
    key_file = tmp_path / "project.key"
    write_key_file(ProjectKeys.generate("serve-test"), key_file)
    dicom_port, http_port = free_port(), free_port()
    process = subprocess.Popen(
        [*SERVE, "serve", "--store", str(tmp_path / "store"), "--key-file", str(key_file),
         "--dicom-port", str(dicom_port), "--http-port", str(http_port),
         "--allow-aet", "STORESCU"],
        stderr=subprocess.PIPE, text=True,
    )
    try:
        _wait_for_health(f"http://127.0.0.1:{http_port}/healthz", process)
        study = samples.new_study()
        (tmp_path / "one.dcm").write_bytes(samples.ct_file(study, 1))
        sent = subprocess.run(
            ["storescu", "-aet", "STORESCU", "-aec", "INCISIVE", "127.0.0.1", str(dicom_port),
             str(tmp_path / "one.dcm")],
            capture_output=True, text=True, timeout=60,
        )
        assert sent.returncode == 0, sent.stderr
        boundary = uuid.uuid4().hex
        body = (f"--{boundary}\r\nContent-Type: application/dicom\r\n\r\n".encode()
                + samples.ct_file(study, 2) + f"\r\n--{boundary}--\r\n".encode())
        stow = requests.post(
            f"http://127.0.0.1:{http_port}/studies", data=body, timeout=30,
            headers={"Content-Type": "multipart/related; type=\"application/dicom\"; "
                     f"boundary={boundary}"},
        )
        assert stow.status_code == 200
        metrics = requests.get(f"http://127.0.0.1:{http_port}/metrics", timeout=10).text
        assert 'incisive_ingest_stored_total{door="scp",outcome="new"} 1.0' in metrics
        assert 'incisive_ingest_stored_total{door="stow",outcome="new"} 1.0' in metrics
        # The annotation review API rides on the same server; no proposals made yet.
        queue = requests.get(f"http://127.0.0.1:{http_port}/annotation/queue", timeout=10)
        assert queue.status_code == 200, queue.text
        assert 'incisive_annotation_queue_length{task="segmentation"} 0.0' in metrics
    finally:
        process.send_signal(signal.SIGTERM)
        _, err = process.communicate(timeout=30)
    assert process.returncode == 0, err
    assert "stored 2" in err
    assert samples.CANARY not in err
    with Store(tmp_path / "store") as store:
        assert store.index.counts().instances == 2
        assert_no_canary(store)


def _wait_for_health(url: str, process: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"serve exited: {process.stderr.read() if process.stderr else ''}")
        try:
            if requests.get(url, timeout=1).ok:
                return
        except requests.ConnectionError:
            time.sleep(0.1)
    raise AssertionError("serve did not answer in 30 s")
