"""The Slurm backend against a real single-node Slurm (see slurm_cluster.py): jobs are
submitted, tracked and cancelled through slurmrestd and really run as processes here."""

from __future__ import annotations

import pytest
from kubernetes import client

from incisive_operator.hpc import slurm
from incisive_operator.hpc.settings import HPCSettings

from . import workloads as wl
from .conftest import condition, wait_for
from .slurm_cluster import Slurm

pytestmark = pytest.mark.cluster


def backend(cluster: Slurm) -> slurm.SlurmSettings:
    return slurm.SlurmSettings(url=cluster.url, user_name=cluster.user, token=cluster.token,
                               working_directory=str(cluster.workdir))


def test_a_job_runs_to_completion_and_another_is_cancelled(slurm_cluster: Slurm) -> None:
    config = backend(slurm_cluster)
    marker = slurm_cluster.workdir / "ran.txt"
    done_id = slurm.submit(config, slurm.Submission(
        name="tiny", comment="uid-tiny", time_limit_seconds=60, memory_mib=64,
        command=("bash", "-c", f"echo $INCISIVE_INPUTS > {marker}"),
        environment=(("INCISIVE_INPUTS", '[{"dataset": "lung-ct"}]'),)))
    finished = wait_for(lambda: (j := slurm.get(config, done_id)) and j.finished and j,
                        "the job to finish", timeout=60)
    assert finished.state == "COMPLETED" and finished.exit_code == 0
    assert finished.end_time >= finished.start_time > 0
    assert marker.read_text().strip() == '[{"dataset": "lung-ct"}]'
    assert slurm.find_by_comment(config, "uid-tiny").job_id == done_id

    long_id = slurm.submit(config, slurm.Submission(
        name="long", comment="uid-long", time_limit_seconds=300, memory_mib=64,
        command=("sleep", "300")))
    wait_for(lambda: slurm.get(config, long_id).running, "the long job to start", timeout=60)
    assert slurm.cancel(config, long_id) is True
    cancelled = wait_for(lambda: (j := slurm.get(config, long_id)) and j.finished and j,
                         "the long job to end", timeout=60)
    assert cancelled.state == "CANCELLED"
    assert slurm.cancel(config, "999999") is False  # unknown job: nothing to cancel
    assert slurm.get(config, "999999") is None


def test_bad_credentials_are_reported(slurm_cluster: Slurm) -> None:
    config = slurm.SlurmSettings(url=slurm_cluster.url, user_name=slurm_cluster.user,
                                 token="not-a-token")
    # Slurm 22.05 passes the token through to slurmctld, which rejects it; slurmrestd then
    # reports "Unable to find JobId" with error -1. It must not read as a vanished job.
    with pytest.raises(slurm.SlurmError) as rejected:
        slurm.get(config, "1")
    assert slurm.INVALID_JOB_ID not in rejected.value.numbers


def test_hpcworkload_on_slurm_completes_and_delete_cancels(
    slurm_cluster: Slurm, gpu_api, gpu_namespace, hpc_operator
) -> None:
    ns = gpu_namespace
    wl.donate(gpu_api, ns, {"lung-ct": "central-hpc"})
    settings = HPCSettings(donations_namespace=ns, requeue_seconds=1.0,
                           slurm=backend(slurm_cluster))
    with hpc_operator(settings):
        wl.create(gpu_api, ns, "on-slurm", backend="slurm", cpu="1", memory="64Mi",
                  command=["true"], inputs=[{"dataset": "lung-ct"}])
        wl.create(gpu_api, ns, "long-slurm", backend="slurm", cpu="1", memory="64Mi",
                  command=["sleep", "300"], timeLimit="10m")
        done = wait_for(lambda: wl.with_condition(gpu_api, ns, "on-slurm", "Succeeded", "True"),
                        "the Slurm workload to succeed", timeout=90)
        running = wait_for(lambda: wl.with_condition(gpu_api, ns, "long-slurm", "Running",
                                                     "True"), "the long one to run", timeout=60)
        # Slurm is outside Kubernetes: only Slurm workloads carry our finalizer.
        assert running["metadata"].get("finalizers")
        job_id = running["status"]["backendJobId"]
        wl.delete(gpu_api, ns, "long-slurm")
        wait_for(lambda: wl.get(gpu_api, ns, "long-slurm") is None, "the workload to go",
                 timeout=60)
    assert done["status"]["backendJobId"] and done["status"]["startTime"]
    assert done["status"]["gpuHours"] == 0  # no GPUs asked for
    assert condition(done, "Failed")["status"] == "False"
    assert done["status"]["lineage"]["inputs"][0]["dataset"] == "lung-ct"
    assert not client.BatchV1Api(gpu_api).list_namespaced_job(ns).items
    config = backend(slurm_cluster)
    cancelled = wait_for(lambda: (j := slurm.get(config, job_id)) and j.finished and j,
                         "Slurm to end the cancelled job", timeout=30)
    assert cancelled.state == "CANCELLED"
