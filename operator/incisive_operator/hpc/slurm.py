"""The Slurm backend: submit, track and cancel batch jobs through slurmrestd's REST API.

Written against slurmrestd's OpenAPI plugin v0.0.38 (Slurm 22.05, Debian 12's release), with
JWT authentication (`X-SLURM-USER-NAME` and `X-SLURM-USER-TOKEN`). Standard library HTTP on
purpose: the calls are few and plain, and the operator image stays small.
"""

from __future__ import annotations

import json
import math
import shlex
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any

# Slurm's "Invalid job id specified": the job is unknown (never existed or long purged).
INVALID_JOB_ID = 2017
FINISHED_STATES = frozenset({
    "COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY", "PREEMPTED",
    "BOOT_FAIL", "DEADLINE",
})
RUNNING_STATES = frozenset({"RUNNING", "CONFIGURING", "COMPLETING", "STAGE_OUT", "SUSPENDED"})


class SlurmError(RuntimeError):
    def __init__(self, message: str, numbers: tuple[int, ...] = ()) -> None:
        super().__init__(message)
        self.numbers = numbers


@dataclass(frozen=True)
class SlurmSettings:
    url: str  # e.g. http://127.0.0.1:6820
    user_name: str
    token: str
    partition: str | None = None
    working_directory: str = "/tmp"  # noqa: S108 - a default for the job's cwd, not ours
    api_version: str = "v0.0.38"
    # GPU product label (as in spec.gpus.model) -> the site's GRES type name, e.g. "h100".
    gres_types: tuple[tuple[str, str], ...] = ()
    timeout_seconds: float = 10.0


@dataclass(frozen=True)
class SlurmJob:
    job_id: str
    state: str
    reason: str
    start_time: int  # epoch seconds; 0 when not started
    end_time: int
    exit_code: int | None

    @property
    def finished(self) -> bool:
        return self.state in FINISHED_STATES

    @property
    def running(self) -> bool:
        return self.state in RUNNING_STATES


@dataclass(frozen=True)
class Submission:
    name: str
    comment: str  # carries the workload's uid, so a lost reply never leads to a second job
    command: tuple[str, ...]
    time_limit_seconds: int
    cpus: int = 1
    memory_mib: int = 1024
    gpus: int = 0
    gpu_model: str | None = None
    environment: tuple[tuple[str, str], ...] = ()


def batch_script(command: tuple[str, ...]) -> str:
    return "#!/bin/bash\nset -euo pipefail\nexec " + shlex.join(command) + "\n"


def submit(settings: SlurmSettings, job: Submission) -> str:
    properties: dict[str, Any] = {
        "name": job.name,
        "comment": job.comment,
        "current_working_directory": settings.working_directory,
        # Slurm's limit is in whole minutes; round up so the workload gets at least its time.
        "time_limit": max(1, math.ceil(job.time_limit_seconds / 60)),
        "tasks": 1,
        "cpus_per_task": max(1, job.cpus),
        "memory_per_node": max(1, job.memory_mib),
        "environment": {"PATH": "/usr/local/bin:/usr/bin:/bin", **dict(job.environment)},
    }
    if settings.partition:
        properties["partition"] = settings.partition
    if job.gpus:
        gres_type = dict(settings.gres_types).get(job.gpu_model or "")
        properties["gres"] = f"gpu:{gres_type}:{job.gpus}" if gres_type else f"gpu:{job.gpus}"
    reply = _call(settings, "POST", "job/submit",
                  {"script": batch_script(job.command), "job": properties})
    if "job_id" not in reply:
        raise SlurmError(f"slurmrestd accepted the submission but returned no job id: {reply}")
    return str(reply["job_id"])


def get(settings: SlurmSettings, job_id: str) -> SlurmJob | None:
    try:
        reply = _call(settings, "GET", f"job/{int(job_id)}")
    except SlurmError as exc:
        if INVALID_JOB_ID in exc.numbers:
            return None
        raise
    jobs = reply.get("jobs") or []
    return _job(jobs[0]) if jobs else None


def find_by_comment(settings: SlurmSettings, comment: str) -> SlurmJob | None:
    """The newest job whose comment is `comment`: how a retried submit finds its first try."""
    matching = [_job(j) for j in _call(settings, "GET", "jobs").get("jobs") or []
                if j.get("comment") == comment]
    return max(matching, key=lambda j: int(j.job_id)) if matching else None


def cancel(settings: SlurmSettings, job_id: str) -> bool:
    """Cancel a job; False when Slurm no longer knows it (nothing left to cancel)."""
    try:
        _call(settings, "DELETE", f"job/{int(job_id)}")
    except SlurmError as exc:
        if INVALID_JOB_ID in exc.numbers:
            return False
        raise
    return True


def _job(raw: dict[str, Any]) -> SlurmJob:
    exit_code = raw.get("exit_code")
    return SlurmJob(
        job_id=str(raw["job_id"]),
        state=str(raw.get("job_state", "UNKNOWN")),
        reason=str(raw.get("state_reason") or ""),
        start_time=int(raw.get("start_time") or 0),
        end_time=int(raw.get("end_time") or 0),
        exit_code=int(exit_code) if isinstance(exit_code, int) else None,
    )


def _call(settings: SlurmSettings, method: str, path: str,
          body: dict[str, Any] | None = None) -> dict[str, Any]:
    url = f"{settings.url.rstrip('/')}/slurm/{settings.api_version}/{path}"
    if not url.startswith(("http://", "https://")):
        raise SlurmError(f"slurmrestd URL must be http(s): {settings.url}")
    request = urllib.request.Request(  # noqa: S310 - scheme checked above
        url, method=method, data=json.dumps(body).encode() if body is not None else None,
        headers={
            "X-SLURM-USER-NAME": settings.user_name,
            "X-SLURM-USER-TOKEN": settings.token,
            "Content-Type": "application/json",
            "Accept": "application/json",
        },
    )
    try:
        with urllib.request.urlopen(request, timeout=settings.timeout_seconds) as response:  # noqa: S310
            reply = json.loads(response.read() or b"{}")
    except urllib.error.HTTPError as exc:
        # slurmrestd answers failures with a JSON body listing Slurm's own error numbers.
        text = exc.read().decode(errors="replace")
        try:
            reply = json.loads(text)
        except ValueError:
            raise SlurmError(f"slurmrestd {method} {path}: HTTP {exc.code}: {text[:300]}") \
                from exc
        raise _error(method, path, reply, exc.code) from exc
    except (urllib.error.URLError, TimeoutError) as exc:
        raise SlurmError(f"slurmrestd at {settings.url} is unreachable: {exc}") from exc
    if reply.get("errors"):
        raise _error(method, path, reply, 200)
    return reply


def _error(method: str, path: str, reply: dict[str, Any], code: int) -> SlurmError:
    errors = reply.get("errors") or []
    numbers = tuple(int(e.get("error_number", 0)) for e in errors)
    text = "; ".join(str(e.get("description") or e.get("error")) for e in errors)
    return SlurmError(f"slurmrestd {method} {path}: HTTP {code}: {text or reply}", numbers)
