"""Running a workload on a backend: start it when allowed, read its state, stop it.

Each function is idempotent and safe to call on every reconcile: a Job is created only when
absent, a Slurm job is looked up by the workload's uid before a second submit.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from typing import Any

from ..api.v1alpha1.hpcworkload import HPCWorkloadSpec
from ..kube import owner_reference
from . import jobs, kueue, metering, slurm
from .outcome import BackendState
from .settings import HPCSettings


@dataclass(frozen=True)
class Observed:
    state: BackendState
    job_name: str | None = None
    backend_job_id: str | None = None
    pods: tuple[dict[str, Any], ...] = ()


def read_job(api: Any, namespace: str, name: str) -> dict[str, Any] | None:
    from kubernetes import client

    try:
        # The wire form (camelCase, RFC 3339 strings): what jobs.state and metering read.
        reply = client.BatchV1Api(api).read_namespaced_job(name, namespace,
                                                           _preload_content=False)
    except client.ApiException as exc:
        if exc.status == 404:
            return None
        raise
    return json.loads(reply.data)


def create_job(api: Any, body: dict[str, Any], spec: HPCWorkloadSpec, settings: HPCSettings,
               image: str, command: tuple[str, ...]) -> bool:
    """Create the workload's Job; False when it was already there."""
    from kubernetes import client

    manifest = jobs.manifest(body, spec, settings, image, command, owner_reference(body))
    try:
        client.BatchV1Api(api).create_namespaced_job(body["metadata"]["namespace"], manifest)
    except client.ApiException as exc:
        if exc.status != 409:  # already there: an earlier reconcile created it
            raise
        return False
    return True


def observe_job(api: Any, job: dict[str, Any], settings: HPCSettings,
                spec: HPCWorkloadSpec) -> Observed:
    from kubernetes import client

    namespace, name = job["metadata"]["namespace"], job["metadata"]["name"]
    reply = client.CoreV1Api(api).list_namespaced_pod(
        namespace, label_selector=f"{jobs.HPC_LABEL}={job['metadata']['labels'][jobs.HPC_LABEL]}",
        _preload_content=False,
    )
    pod_dicts = tuple(json.loads(reply.data).get("items") or [])
    state = jobs.state(job, metering.gpu_hours(pod_dicts))
    if settings.kueue and state.phase == "pending":
        verdict = kueue.admission(kueue.find_workload(api, namespace, job["metadata"]["uid"]),
                                  spec.queue)
        state = BackendState("queued" if not verdict.admitted else "starting",
                             verdict.reason, verdict.message, None, None, state.gpu_hours)
    return Observed(state, job_name=name, pods=pod_dicts)


def stop_job(api: Any, namespace: str, name: str) -> None:
    from kubernetes import client

    try:
        # Foreground: the Job stays visible until its pods are gone, so nobody mistakes a
        # Job that is still releasing its GPUs for one that has stopped.
        client.BatchV1Api(api).delete_namespaced_job(
            name, namespace, propagation_policy="Foreground")
    except client.ApiException as exc:
        if exc.status != 404:
            raise


def submit_slurm(config: slurm.SlurmSettings, body: dict[str, Any], spec: HPCWorkloadSpec,
                 command: tuple[str, ...]) -> str:
    uid = body["metadata"]["uid"]
    earlier = slurm.find_by_comment(config, uid)
    if earlier is not None:
        return earlier.job_id
    return slurm.submit(config, slurm.Submission(
        name=f"{body['metadata']['namespace']}.{body['metadata']['name']}"[:200],
        comment=uid,
        command=command,
        time_limit_seconds=jobs.time_limit_seconds(spec.time_limit),
        cpus=jobs.cpu_count(spec.cpu),
        memory_mib=jobs.memory_mib(spec.memory),
        gpus=spec.gpus.count,
        gpu_model=spec.gpus.model,
        environment=(("INCISIVE_INPUTS", _inputs_json(spec)),),
    ))


def observe_slurm(config: slurm.SlurmSettings, job_id: str, spec: HPCWorkloadSpec) -> Observed:
    job = slurm.get(config, job_id)
    if job is None:
        return Observed(BackendState("failed", "SlurmJobLost",
                                     f"Slurm no longer knows job {job_id}; it was purged before "
                                     "its end was seen (raise MinJobAge)"), backend_job_id=job_id)
    start = _epoch(job.start_time) if (job.running or job.finished) else None
    end = _epoch(job.end_time) if job.finished else None
    hours = metering.gpu_hours_between(spec.gpus.count, metering.parse_time(start),
                                       metering.parse_time(end))
    if job.state == "COMPLETED":
        state = BackendState("succeeded", "Completed", f"Slurm job {job_id} completed",
                             start, end, hours)
    elif job.finished:
        reason = "Slurm" + job.state.title().replace("_", "")
        state = BackendState("failed", reason, f"Slurm job {job_id} ended {job.state} "
                             f"(exit code {job.exit_code}, reason {job.reason})", start, end, hours)
    elif job.running:
        state = BackendState("running", "SlurmRunning", f"Slurm job {job_id} is {job.state}",
                             start, None, hours)
    else:
        state = BackendState("queued", "SlurmPending",
                             f"Slurm job {job_id} is {job.state} (reason {job.reason})")
    return Observed(state, backend_job_id=job_id)


def _epoch(value: int) -> str | None:
    if value <= 0:
        return None
    return dt.datetime.fromtimestamp(value, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _inputs_json(spec: HPCWorkloadSpec) -> str:
    return json.dumps([i.model_dump(exclude_none=True) for i in spec.inputs])

