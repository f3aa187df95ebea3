"""Hub mode: HPCWorkloads run on the central GPU cluster, on donated data only.

Level-based: create, spec change, resume, a timer while unfinished, and any change of an
owned Job all run the same convergence: check the data rule, admit (built-in quota, Kueue,
or Slurm's own queue), start the backend job once, and derive the status from what the
backend reports. Kubernetes Jobs are cancelled by garbage collection through their owner
reference; only Slurm workloads carry a finalizer, because Slurm is outside Kubernetes.
"""

from __future__ import annotations

import logging
from typing import Any

import kopf
from pydantic import ValidationError

from .. import ledger_events
from ..api import GROUP
from ..api.v1alpha1 import VERSION
from ..api.v1alpha1.hpcworkload import HPCWorkloadSpec
from ..conditions import Conditions, get_condition, is_true
from ..hpc import backends, datasets, jobs, lineage, metering, quota, slurm
from ..hpc.outcome import BackendState, conditions_for
from ..hpc.settings import HPCSettings
from ..metrics import measured

KIND = "HPCWorkload"
PLURAL = "hpcworkloads"


def register(registry: kopf.OperatorRegistry, memo_key: str = "hub_api",
             settings: HPCSettings | None = None) -> None:
    config = settings or HPCSettings()

    # Handlers defined in a function need explicit ids: kopf passes an index to handlers
    # under its id, which would otherwise be the qualified name `register.<locals>...`.
    @kopf.index(GROUP, VERSION, PLURAL, registry=registry, id="hpc_claims")
    def hpc_claims(body: kopf.Body, **_: Any) -> dict[str, quota.Claim]:
        # Only workloads the built-in quota admits, and only until they finish.
        claim = claim_of(body, config)
        return {body["spec"]["tenant"]: claim} if claim else {}

    @kopf.index(GROUP, VERSION, PLURAL, registry=registry, id="hpc_usage")
    def hpc_usage(body: kopf.Body, **_: Any) -> dict[str, tuple[float, float]]:
        status = body.get("status") or {}
        return {body["spec"]["tenant"]: (float(status.get("gpuHours") or 0),
                                         float(status.get("estimatedCost") or 0))}

    @kopf.on.resume(GROUP, VERSION, PLURAL, registry=registry)
    @kopf.on.create(GROUP, VERSION, PLURAL, registry=registry)
    @kopf.on.update(GROUP, VERSION, PLURAL, field="spec", registry=registry)
    @kopf.timer(GROUP, VERSION, PLURAL, interval=config.requeue_seconds,
                initial_delay=config.requeue_seconds, registry=registry,
                when=lambda body, **_: not finished(body.get("status") or {}))
    def reconcile_hpcworkload(
        body: kopf.Body, patch: kopf.Patch, memo: kopf.Memo, logger: logging.Logger,
        hpc_claims: kopf.Index, hpc_usage: kopf.Index, **_: Any,
    ) -> None:
        with measured(KIND):
            current = dict(body)
            status = converge(current, memo[memo_key], config, hpc_claims, logger)
            patch.status.update(status)
            publish_tenant(body["spec"]["tenant"], config, hpc_claims, hpc_usage)

    @kopf.on.event("batch", "v1", "jobs", registry=registry,
                   labels={jobs.HPC_LABEL: kopf.PRESENT})
    def hpc_job_changed(
        body: kopf.Body, memo: kopf.Memo, logger: logging.Logger, hpc_claims: kopf.Index,
        **_: Any,
    ) -> None:
        # The Job moved (admitted, pod running, finished): refresh its workload now rather
        # than at the next timer tick.
        owner = next((o["name"] for o in body["metadata"].get("ownerReferences") or []
                      if o.get("kind") == KIND), None)
        if owner:
            refresh(memo[memo_key], body["metadata"]["namespace"], owner, config, hpc_claims,
                    logger)

    @kopf.on.delete(GROUP, VERSION, PLURAL, registry=registry,
                    when=lambda spec, **_: spec.get("backend") == "slurm")
    def cancel_slurm_job(body: kopf.Body, logger: logging.Logger, **_: Any) -> None:
        status = body.get("status") or {}
        job_id = status.get("backendJobId")
        if not job_id or finished(status) or config.slurm is None:
            return
        try:
            cancelled = slurm.cancel(config.slurm, job_id)
        except slurm.SlurmError as exc:
            raise kopf.TemporaryError(f"cannot cancel Slurm job {job_id}: {exc}", delay=10) \
                from exc
        logger.info("Slurm job %s %s", job_id, "cancelled" if cancelled else "already gone")


def finished(status: dict[str, Any]) -> bool:
    conditions = status.get("conditions")
    return is_true(conditions, "Failed") or is_true(conditions, "Succeeded")


def claim_of(body: dict[str, Any], config: HPCSettings) -> quota.Claim | None:
    spec, status = body.get("spec") or {}, body.get("status") or {}
    if spec.get("backend", "kubernetes") != "kubernetes" or config.kueue or finished(status):
        return None
    if body["metadata"].get("deletionTimestamp"):
        return None
    return quota.Claim(
        key=f"{body['metadata']['namespace']}/{body['metadata']['name']}",
        uid=body["metadata"]["uid"],
        gpus=int((spec.get("gpus") or {}).get("count") or 0),
        priority=int(spec.get("priority") or 0),
        created=body["metadata"].get("creationTimestamp") or "",
        admitted=bool(status.get("jobName")),
    )


def converge(body: dict[str, Any], api: Any, config: HPCSettings, claims: Any,
             logger: logging.Logger) -> dict[str, Any]:
    """The status the workload should show now; starts or stops backend jobs on the way."""
    status = dict(body.get("status") or {})
    if finished(status):
        return {}
    generation = body["metadata"].get("generation")
    try:
        spec = HPCWorkloadSpec.model_validate(dict(body.get("spec") or {}))
        image, command = _program(spec, config)
        jobs.time_limit_seconds(spec.time_limit)
    except (ValidationError, ValueError) as exc:
        return _ended(body, status, generation, "InvalidSpec", _describe(exc))
    started = bool(status.get("jobName") or status.get("backendJobId"))

    register_ = datasets.ConfigMapDonations.read(api, config.donations_namespace,
                                                 config.donations_configmap)
    missing = datasets.not_donated(spec.inputs, register_)
    if missing:
        where = f"{config.donations_namespace}/{config.donations_configmap}"
        if not started:
            return _ended(body, status, generation, "InputsNotDonated",
                          f"inputs not donated for {datasets.CENTRAL_HPC}: {', '.join(missing)}; "
                          f"only datasets registered in ConfigMap {where} for that purpose "
                          "may be processed centrally")
        _stop(api, body, status, config)
        return _ended(body, status, generation, "DonationWithdrawn",
                      f"donation for {datasets.CENTRAL_HPC} withdrawn for {', '.join(missing)}; "
                      "the running job was stopped")

    if spec.backend == "slurm":
        observed = _slurm(body, status, spec, config, image, command)
    else:
        observed = _kubernetes(api, body, status, spec, config, claims, image, command)
    if isinstance(observed, dict):
        return observed
    return _status_for(body, status, generation, spec, config, observed, image, command)


def _kubernetes(api: Any, body: dict[str, Any], status: dict[str, Any], spec: HPCWorkloadSpec,
                config: HPCSettings, claims: Any, image: str,
                command: tuple[str, ...]) -> backends.Observed | dict[str, Any]:
    namespace, name = body["metadata"]["namespace"], body["metadata"]["name"]
    generation = body["metadata"].get("generation")
    job_name = jobs.job_name(name)
    job = backends.read_job(api, namespace, job_name)
    if job is None and status.get("jobName"):
        return _ended(body, status, generation, "JobDeleted",
                      f"Job {job_name} was deleted before it finished")
    if job is None and not config.kueue:
        key = f"{namespace}/{name}"
        decisions = quota.decide(list(claims.get(spec.tenant, [])), config.quota_for(spec.tenant))
        decision = decisions.get(key, quota.Decision(admitted=False, position=None))
        if decision.exceeds_quota:
            return _ended(body, status, generation, "ExceedsTenantQuota",
                          f"asks for {spec.gpus.count} GPUs; tenant {spec.tenant} may hold at "
                          f"most {config.quota_for(spec.tenant)} at once")
        if not decision.admitted:
            held = quota.in_use(claims.get(spec.tenant, []))
            where = f"; position {decision.position} in its queue" if decision.position else ""
            return backends.Observed(BackendState(
                "queued", "QuotaExhausted",
                f"waiting for GPUs: tenant {spec.tenant} holds {held} of its "
                f"{config.quota_for(spec.tenant)}{where}", position=decision.position))
    if job is None:
        if backends.create_job(api, body, spec, config, image, command):
            ledger_events.hpc_run(body, "started",
                                  lineage.record(spec, image, command, None, []))
        job = backends.read_job(api, namespace, job_name)
        if job is None:
            raise kopf.TemporaryError(f"Job {job_name} vanished right after creation", delay=5)
    return backends.observe_job(api, job, config, spec)


def _slurm(body: dict[str, Any], status: dict[str, Any], spec: HPCWorkloadSpec,
           config: HPCSettings, image: str,
           command: tuple[str, ...]) -> backends.Observed | dict[str, Any]:
    generation = body["metadata"].get("generation")
    if config.slurm is None:
        return _ended(body, status, generation, "SlurmNotConfigured",
                      "this operator has no Slurm backend configured; use backend: kubernetes")
    if not command:
        return _ended(body, status, generation, "InvalidSpec",
                      "the slurm backend runs spec.command (or the pipeline's); none is set")
    try:
        job_id = status.get("backendJobId")
        if not job_id:
            job_id = backends.submit_slurm(config.slurm, body, spec, command)
            ledger_events.hpc_run(body, "started",
                                  lineage.record(spec, image, command, None, []))
        return backends.observe_slurm(config.slurm, job_id, spec)
    except slurm.SlurmError as exc:
        raise kopf.TemporaryError(f"slurmrestd: {exc}", delay=15) from exc


def _status_for(body: dict[str, Any], status: dict[str, Any], generation: int | None,
                spec: HPCWorkloadSpec, config: HPCSettings, observed: backends.Observed,
                image: str, command: tuple[str, ...]) -> dict[str, Any]:
    state = observed.state
    conditions = conditions_for(status.get("conditions") or [], state, generation)
    hours = state.gpu_hours
    out: dict[str, Any] = {
        "observedGeneration": generation,
        "conditions": conditions,
        "queuePosition": state.position if state.phase == "queued" else None,
        "startTime": state.start_time or status.get("startTime"),
        "endTime": state.end_time,
        "gpuHours": hours,
        "estimatedCost": metering.cost(hours, config.price_for(spec.gpus.model))
        if hours is not None else None,
        "currency": config.currency if hours is not None else None,
        "reason": state.reason if state.phase == "failed" else None,
        "jobName": observed.job_name or status.get("jobName"),
        "backendJobId": observed.backend_job_id or status.get("backendJobId"),
    }
    if observed.job_name or observed.backend_job_id:
        messages = [_termination_message(p) for p in observed.pods]
        outputs = next((o for o in (lineage.outputs_from_message(m) for m in messages) if o), [])
        out["lineage"] = lineage.record(spec, image, command,
                                        lineage.image_digest(image, list(observed.pods)), outputs)
    _announce(body, status.get("conditions") or [], conditions)
    if state.finished:  # converge() returns early once finished: this is the transition
        ledger_events.hpc_run(body, "finished", out.get("lineage"), outcome=state.reason)
    return out


def _ended(body: dict[str, Any], status: dict[str, Any], generation: int | None, reason: str,
           message: str) -> dict[str, Any]:
    state = BackendState("failed", reason, message)
    conditions = conditions_for(status.get("conditions") or [], state, generation)
    _announce(body, status.get("conditions") or [], conditions)
    if status.get("jobName") or status.get("backendJobId"):  # it ran: its end is recorded
        ledger_events.hpc_run(body, "finished", status.get("lineage"), outcome=reason)
    return {
        "observedGeneration": generation,
        "conditions": conditions,
        "queuePosition": None,
        "reason": reason,
        "endTime": conditions_time(conditions, "Failed"),
    }


def conditions_time(conditions: Conditions, type_: str) -> str | None:
    found = get_condition(conditions, type_)
    return found.get("lastTransitionTime") if found else None


def _stop(api: Any, body: dict[str, Any], status: dict[str, Any], config: HPCSettings) -> None:
    if status.get("jobName"):
        backends.stop_job(api, body["metadata"]["namespace"], status["jobName"])
    if status.get("backendJobId") and config.slurm is not None:
        slurm.cancel(config.slurm, status["backendJobId"])


def _program(spec: HPCWorkloadSpec, config: HPCSettings) -> tuple[str, tuple[str, ...]]:
    if spec.pipeline:
        pipeline = config.pipelines.get(spec.pipeline)
        if pipeline is None:
            known = ", ".join(sorted(config.pipelines)) or "none"
            raise ValueError(f"pipeline {spec.pipeline!r} is not registered (registered: {known})")
        return pipeline.image, pipeline.command
    return spec.image or "", tuple(spec.command)


def _termination_message(pod: dict[str, Any]) -> str | None:
    for container in (pod.get("status") or {}).get("containerStatuses") or []:
        terminated = (container.get("state") or {}).get("terminated") or {}
        if terminated.get("message"):
            return str(terminated["message"])
    return None


def _describe(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        return "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())[:1000]
    return str(exc)[:1000]


def _announce(body: dict[str, Any], before: Conditions, after: Conditions) -> None:
    """One Kubernetes Event per transition, with the reason a human can act on."""
    for type_ in ("Queued", "Running", "Succeeded", "Failed"):
        old, new = get_condition(before, type_), get_condition(after, type_)
        if new is None:
            continue
        was_true = old is not None and old.get("status") == "True"
        if (type_ == "Queued" and (old is None or was_true) and new["status"] == "False"
                and new["reason"] == "Admitted"):
            kopf.info(body, reason="Admitted", message="admitted to run")
        if new["status"] != "True" or (was_true and old.get("reason") == new["reason"]):
            continue
        post = kopf.warn if type_ == "Failed" else kopf.info
        post(body, reason=new["reason"], message=new.get("message", ""))


def refresh(api: Any, namespace: str, name: str, config: HPCSettings, claims: Any,
            logger: logging.Logger) -> None:
    from kubernetes import client

    objects = client.CustomObjectsApi(api)
    try:
        current = objects.get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name)
    except client.ApiException as exc:
        if exc.status == 404:
            return
        raise
    if current["metadata"].get("deletionTimestamp"):
        return
    status = current.get("status") or {}
    update = converge(current, api, config, claims, logger)
    if not update or all(status.get(k) == v for k, v in update.items()):
        return
    objects.patch_namespaced_custom_object_status(GROUP, VERSION, namespace, PLURAL, name,
                                                  {"status": update})
    logger.debug("status of %s/%s refreshed from its Job", namespace, name)


def publish_tenant(tenant: str, config: HPCSettings, claims: Any, usage: Any) -> None:
    held = list(claims.get(tenant, []))
    totals = list(usage.get(tenant, []))
    decisions = quota.decide(held, config.quota_for(tenant))
    metering.publish(
        tenant,
        hours=sum(h for h, _ in totals),
        estimated_cost=sum(c for _, c in totals),
        currency=config.currency,
        gpus_admitted=quota.in_use(held),
        queued=sum(1 for d in decisions.values() if not d.admitted),
    )
