"""The main job runs end to end, twice, and its teardown leaves nothing running."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import TEST_BLOCK
from .testbed.test_lifecycle import processes_mentioning

pytestmark = pytest.mark.cluster


def test_demo_runs_twice_and_tears_down(tmp_path: Path) -> None:
    env = {**os.environ, "INCISIVE_TESTBED_DIR": str(tmp_path / "bed"),
           "INCISIVE_TESTBED_BLOCK": str(TEST_BLOCK + 2)}
    demo = [sys.executable, "-m", "incisive_operator.cli", "demo"]
    first = subprocess.run(demo, capture_output=True, text=True, env=env, timeout=600)
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    out = first.stdout
    assert "[10/10] summary" in out
    assert "site-a: PACS sent 16 studies, 96 instances" in out
    assert "site-a: de-identified and stored 96, quarantined 0" in out
    assert "site-b: consent to federated-training: 15 patients permit, 1 declined" in out
    assert "site-a: enrolment Enrolled" in out
    assert "site-a: Accepted (PolicyAccepted)" in out
    assert "site-b: Accepted (PolicyAccepted)" in out
    assert "round 3: accuracy" in out
    assert "job: Succeeded=True (Completed)" in out
    assert "site-a: the model pre-annotated 16 series" in out
    assert "segmentation-pretraining: Succeeded=True" in out
    assert "OK: " in out and " entries; cosigned root " in out
    # No identifier the PACS sent reaches what the demo prints.
    assert "FAKE" not in out

    second = subprocess.run([*demo, "--down"], capture_output=True, text=True, env=env,
                            timeout=600)
    assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-3000:]
    assert "[10/10] summary" in second.stdout
    assert "stopped" in second.stdout
    assert processes_mentioning(str(tmp_path)) == []
