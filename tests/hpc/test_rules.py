"""The pure rules behind the controller: queue order, Kueue's verdict, metering, lineage."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from incisive_operator.hpc import jobs, kueue, lineage, metering
from incisive_operator.hpc.quota import Claim, decide


def claim(key: str, gpus: int, priority: int = 0, created: str = "2026-01-01T00:00:00Z",
          admitted: bool = False) -> Claim:
    return Claim(key=key, uid=key, gpus=gpus, priority=priority, created=created,
                 admitted=admitted)


def test_admitted_workloads_keep_their_gpus_and_the_queue_is_strict() -> None:
    decisions = decide([
        claim("running", 6, admitted=True),
        claim("big", 4, created="2026-01-01T00:00:01Z"),
        claim("small", 1, created="2026-01-01T00:00:02Z"),  # would fit, but big is ahead
        claim("urgent", 2, priority=5, created="2026-01-01T00:00:03Z"),
        claim("huge", 9),
    ], quota=8)
    assert decisions["running"].admitted
    assert decisions["urgent"].admitted  # priority first, and 6 + 2 fits
    assert (decisions["big"].position, decisions["small"].position) == (1, 2)
    assert decisions["huge"].exceeds_quota and decisions["huge"].position is None


def test_queue_order_is_the_same_whatever_order_claims_arrive_in() -> None:
    claims = [claim(f"w{i}", 3, priority=i % 2, created=f"2026-01-01T00:00:0{i}Z")
              for i in range(6)]
    assert decide(claims, 8) == decide(list(reversed(claims)), 8)


def test_kueue_verdicts_follow_the_workload_conditions() -> None:
    # Shaped after Kueue's documented v1beta1 Workload status (not produced by Kueue here).
    pending = {"metadata": {"name": "job-train-1a2b3"}, "status": {"conditions": [
        {"type": "QuotaReserved", "status": "False", "reason": "Pending",
         "message": "couldn't assign flavors to pod set main: insufficient quota for "
                    "nvidia.com/gpu in flavor h100, 8 more needed"}]}}
    admitted = {"metadata": {"name": "job-train-1a2b3"}, "status": {
        "admission": {"clusterQueue": "hpc-cq"},
        "conditions": [{"type": "QuotaReserved", "status": "True"},
                       {"type": "Admitted", "status": "True"}]}}
    evicted = {"metadata": {"name": "job-train-1a2b3"}, "status": {"conditions": [
        {"type": "Admitted", "status": "False"},
        {"type": "Evicted", "status": "True", "message": "Preempted to accommodate a "
                                                          "higher priority Workload"}]}}
    assert kueue.admission(None, "q").reason == "WaitingForKueue"
    assert kueue.admission(pending, "q").reason == "KueuePending"
    assert "8 more needed" in kueue.admission(pending, "q").message
    assert kueue.admission(admitted, "q").admitted
    assert "hpc-cq" in kueue.admission(admitted, "q").message
    assert kueue.admission(evicted, "q").reason == "KueueEvicted"


def test_gpu_time_counts_only_while_a_pod_holds_a_node() -> None:
    now = dt.datetime(2026, 1, 1, 2, tzinfo=dt.UTC)
    gpu_pod = {"spec": {"nodeName": "gpu-0", "containers": [
        {"resources": {"limits": {"nvidia.com/gpu": "4"}}}]}}
    finished = {**gpu_pod, "status": {"phase": "Succeeded", "startTime": "2026-01-01T00:00:00Z",
                "containerStatuses": [{"state": {"terminated": {
                    "finishedAt": "2026-01-01T01:30:00Z"}}}]}}
    running = {**gpu_pod, "status": {"phase": "Running", "startTime": "2026-01-01T01:00:00Z"}}
    pending = {"spec": {"containers": gpu_pod["spec"]["containers"]},
               "status": {"phase": "Pending"}}
    assert metering.gpu_hours([finished], now) == pytest.approx(6.0)
    assert metering.gpu_hours([running], now) == pytest.approx(4.0)
    assert metering.gpu_hours([pending], now) == 0
    assert metering.cost(6.0, 2.5) == 15.0


def test_outputs_come_only_from_well_formed_termination_messages() -> None:
    good = "sha256:" + "a" * 64
    message = json.dumps({"outputs": [{"path": "masks/1.nii", "sha256": good},
                                      {"path": "x", "sha256": "md5:abc"}, "junk"]})
    assert lineage.outputs_from_message(message) == [{"path": "masks/1.nii", "sha256": good}]
    assert lineage.outputs_from_message("not json") == []
    assert lineage.command_sha256(["a b"]) != lineage.command_sha256(["a", "b"])


@pytest.mark.parametrize(("text", "seconds"), [("90m", 5400), ("2h30m", 9000), ("45s", 45)])
def test_time_limits(text: str, seconds: int) -> None:
    assert jobs.time_limit_seconds(text) == seconds


def test_long_workload_names_give_valid_job_names() -> None:
    name = jobs.job_name("x" * 200)
    assert len(name) <= 63 and name != jobs.job_name("x" * 199)
