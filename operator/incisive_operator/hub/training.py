"""Hub mode: a TrainingJob's federated run, from enough accepting sites to a stored model.

Level-based, one pass per timer tick, safe to restart at any point:

1. The job's app must build to `spec.app.digest` and carry a signature (apps.py).
2. The job has a SuperLink (runtime.superlink: found again after an operator restart, or
   restarted on its `--database`).
3. Every accepting site that published its SuperNode public key in its WorkItem status is
   registered at the SuperLink through the Control API, and told the Fleet address and
   the CA to trust in its WorkItem (fleet.py).
4. Once every registered site's SuperNode is connected (or, after START_GRACE_S, at least
   minSites of them), the run is submitted. The SuperLink's database is the record of it:
   a job's SuperLink serves that job only, so the run is the one it lists, and a restarted
   operator finds it there even if the status never got the run id.
5. The run's metrics.jsonl (progress.py) gives rounds, participating and dropped sites and
   the outcome; a completed run's model goes into the hub's model store by SHA-256.
6. A finished job stops its SuperLink and marks each WorkItem Finished, so the sites stop
   their SuperNodes.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from kubernetes import client

from incisive_node.fl.control import ControlError, RunStatus, SuperLinkUnavailable
from incisive_node.fl.metrics import METRICS_FILE, read_events
from incisive_node.fl.processes import FlowerProcessError

from ..api import GROUP
from ..api.v1alpha1 import VERSION
from ..api.v1alpha1.trainingjob import TrainingJobSpec
from ..conditions import now
from ..fl import apps, fleet
from ..fl.local import Link, LocalRuntime
from ..fl.progress import Progress, fold, summary
from ..fl.run_config import InvalidTrainingSpec, training_config

START_GRACE_S = 60.0  # then start with the connected sites, if there are minSites of them
PROBE_EVERY_S = 10.0  # how often the Control API is asked about the run and the SuperNodes


@dataclass
class Outcome:
    """What a pass found: status fields to write, each site's part, the Succeeded condition."""

    succeeded: tuple[str, str, str]
    status: dict[str, Any] = field(default_factory=dict)
    site_states: dict[str, tuple[str, str]] = field(default_factory=dict)

    @property
    def finished(self) -> bool:
        return self.succeeded[0] != "Unknown"


@dataclass
class _Probe:
    at: float
    run: RunStatus | None
    online: set[int]


_probes: dict[str, _Probe] = {}
_probes_lock = threading.Lock()
# kopf runs a timer beside the other handlers of the same object: one pass per job at a time,
# or two passes could both find no run and both submit one.
_passes: dict[str, threading.Lock] = defaultdict(threading.Lock)


def drive(job: dict[str, Any], workitems: dict[str, dict[str, Any]], accepted: list[str],
          undecided: int, runtime: LocalRuntime, api: Any, logger: logging.Logger) -> Outcome:
    """One pass; `undecided` is how many asked sites have not answered yet."""
    with _passes[job["metadata"]["uid"]]:
        return _drive(job, workitems, accepted, undecided, runtime, api, logger)


def _drive(job: dict[str, Any], workitems: dict[str, dict[str, Any]], accepted: list[str],
           undecided: int, runtime: LocalRuntime, api: Any, logger: logging.Logger) -> Outcome:
    uid = job["metadata"]["uid"]
    status = job.get("status") or {}
    spec = TrainingJobSpec.model_validate(job["spec"])
    try:
        config = training_config(spec)
        apps.parse_signature(spec.app.signature)
        apps.check_digest(spec.app.reference, spec.app.digest)
    except InvalidTrainingSpec as error:
        return Outcome(("False", "InvalidSpec", str(error)))
    except apps.AppRefused as error:
        return Outcome(("False", error.reason, str(error)))

    try:
        link = runtime.superlink(uid)
    except (FlowerProcessError, OSError) as error:
        logger.warning("the job's SuperLink does not start: %s", error)
        return Outcome(("Unknown", "SuperLinkUnavailable",
                        f"the job's SuperLink does not start ({type(error).__name__}); "
                        "retrying"))
    try:
        nodes = _register(job, workitems, accepted, runtime, link, api, logger)
        return _run(job, status, spec, config, workitems, accepted, undecided, nodes, runtime,
                    link, logger)
    except SuperLinkUnavailable:
        return Outcome(("Unknown", "SuperLinkUnavailable",
                        "the job's SuperLink does not answer; retrying"))


def _register(job: dict[str, Any], workitems: dict[str, dict[str, Any]], accepted: list[str],
              runtime: LocalRuntime, link: Link, api: Any,
              logger: logging.Logger) -> dict[str, int | None]:
    """Site -> node id for every accepting site whose key is registered at this SuperLink."""
    objects = client.CustomObjectsApi(api)
    nodes: dict[str, int | None] = {}
    for site in accepted:
        item = workitems.get(site) or {}
        key = (item.get("status") or {}).get("supernodePublicKey")
        if not key:
            continue
        shown = fleet.read(item)
        if shown is not None and shown.address == link.address:
            nodes[site] = shown.node_id
            continue
        try:
            node_id = runtime.register(job["metadata"]["uid"], link, key)
        except ControlError as error:
            logger.warning("registering %s's SuperNode key failed: %s", site, error)
            continue
        told = fleet.Fleet(address=link.address, ca_cert=link.ca_pem, node_id=node_id)
        objects.patch_namespaced_custom_object(
            GROUP, VERSION, item["metadata"]["namespace"], "workitems",
            item["metadata"]["name"], {"metadata": {"annotations": fleet.annotation(told)}})
        logger.info("registered %s's SuperNode (node %s) at %s", site, node_id, link.address)
        nodes[site] = node_id
    return nodes


def _run(job: dict[str, Any], status: dict[str, Any], spec: TrainingJobSpec, config: Any,
         workitems: dict[str, dict[str, Any]], accepted: list[str], undecided: int,
         nodes: dict[str, int | None], runtime: LocalRuntime, link: Link,
         logger: logging.Logger) -> Outcome:
    uid = job["metadata"]["uid"]
    control = link.control()
    run_id = status.get("runId")
    start_time = status.get("startTime")
    if run_id is None:
        probe = _probe(uid, link, force=True)
        if probe.run is not None:  # submitted before, and the status never heard of it
            run_id = str(probe.run.run_id)
        else:
            ready, message = _ready(spec, accepted, undecided, nodes, probe, link)
            if not ready:
                states = _waiting_states(accepted, workitems, nodes, probe)
                return Outcome(("Unknown", "AwaitingSuperNodes", message),
                               site_states=states)
            built = apps.build(spec.app.reference, runtime.job_dir(uid) / "app")
            if apps.digest_text(built.sha256) != spec.app.digest:
                return Outcome(("False", "AppDigestMismatch",
                                "the bundle built for the run differs from spec.app.digest"))
            run_id = str(control.start_run(built.app_dir, config, link.output_dir).run_id)
            logger.info("run %s submitted with %d sites registered", run_id, len(nodes))
        start_time = start_time or now()

    names = {node: site for site, node in nodes.items() if node is not None}
    progress = fold(read_events(link.output_dir / METRICS_FILE), names)
    fields: dict[str, Any] = {
        "runId": run_id, "startTime": start_time,
        "rounds": progress.rounds, "currentRound": progress.current_round,
        "participatingSites": progress.participating,
    }
    states = _run_states(accepted, workitems, nodes, progress)
    if progress.completed is not None:
        event = progress.completed
        try:
            uri = runtime.store_model(link.output_dir / "model.pt", str(event["model_sha256"]))
        except (OSError, ValueError) as error:
            return Outcome(("False", "ModelUnavailable",
                            f"the final model could not be stored: {error}"), fields, states)
        fields["model"] = {"uri": uri, "sha256": f"sha256:{event['model_sha256']}"}
        fields["completionTime"] = status.get("completionTime") or now()
        return Outcome(("True", "Completed", summary(progress)), fields, states)
    if progress.failed is not None:
        fields["completionTime"] = status.get("completionTime") or now()
        reason = str(progress.failed.get("reason", "the run failed"))
        kind = "TooFewSites" if "min_sites" in reason else "RunFailed"
        dropped = "; ".join(f"{s} {why}" for s, why in sorted(progress.dropped.items()))
        message = f"{reason} ({dropped})" if dropped else reason
        return Outcome(("False", kind, message), fields, states)
    ended = _probe(uid, link, force=False).run
    if ended is not None and str(ended.run_id) == run_id and ended.finished:
        # Flower ended the run and the ServerApp left no final event (it crashed or was
        # stopped): a re-read first, as the event may have landed just now.
        again = fold(read_events(link.output_dir / METRICS_FILE), names)
        if not again.finished:
            fields["completionTime"] = status.get("completionTime") or now()
            details = ended.details or "no details"
            return Outcome(("False", "RunEnded",
                            f"Flower reports the run {ended.status} ({details}) and the "
                            "ServerApp left no result"), fields, states)
    last = progress.rounds[-1] if progress.rounds else None
    shown = (f"round {last['round']} of {spec.rounds} reported"
             + (f", accuracy {last['accuracy']:.3f}" if "accuracy" in last else "")
             if last else f"run {run_id} started; waiting for the first round")
    return Outcome(("Unknown", "Training", shown), fields, states)


def _probe(uid: str, link: Link, force: bool) -> _Probe:
    """The run's status and the connected SuperNodes, asked at most every PROBE_EVERY_S
    (each asks the SuperLink's Control API twice) unless `force`."""
    with _probes_lock:
        cached = _probes.get(uid)
    if cached is not None and not force and time.monotonic() - cached.at < PROBE_EVERY_S:
        return cached
    with link.control() as control:
        runs = control.runs()
        nodes = control.supernodes()
    online = {int(n["node-id"]) for n in nodes if n.get("status") == "online"}
    probe = _Probe(time.monotonic(), max(runs, key=lambda r: r.run_id) if runs else None, online)
    with _probes_lock:
        _probes[uid] = probe
    return probe


def _ready(spec: TrainingJobSpec, accepted: list[str], undecided: int,
           nodes: dict[str, int | None], probe: _Probe, link: Link) -> tuple[bool, str]:
    """Start when every asked site has answered and every accepting one is connected, or,
    after START_GRACE_S (a site awaiting a local approver, a SuperNode that never comes),
    with the connected ones if they are at least minSites. A site that connects later still
    joins the rounds after it (each round goes to every live site)."""
    connected = [s for s, n in nodes.items() if n is not None and n in probe.online]
    waited = time.time() - link.started_at
    message = (f"{len(nodes)} of {len(accepted)} accepting sites registered at the SuperLink, "
               f"{len(connected)} connected, {undecided} undecided; the run starts when all "
               f"have answered and connected (or after {START_GRACE_S:.0f} s with at least "
               f"minSites={spec.min_sites})")
    if len(connected) < spec.min_sites:
        return False, message
    everyone = undecided == 0 and len(connected) == len(accepted)
    return everyone or waited >= START_GRACE_S, message


def _waiting_states(accepted: list[str], workitems: dict[str, dict[str, Any]],
                    nodes: dict[str, int | None], probe: _Probe) -> dict[str, tuple[str, str]]:
    states = {}
    for site in accepted:
        reported = (workitems.get(site) or {}).get("status") or {}
        if reported.get("training") == "Failed":
            states[site] = ("SiteError", reported.get("trainingMessage") or "")
        elif site not in nodes:
            states[site] = ("AwaitingKey", "the site has not published its SuperNode key")
        elif nodes[site] is not None and nodes[site] in probe.online:
            states[site] = ("Connected", "the site's SuperNode is connected")
        else:
            states[site] = ("Registered", "the site's key is registered; its SuperNode has "
                            "not connected yet")
    return states


def _run_states(accepted: list[str], workitems: dict[str, dict[str, Any]],
                nodes: dict[str, int | None], progress: Progress) -> dict[str, tuple[str, str]]:
    last = set(progress.rounds[-1]["sites"]) if progress.rounds else set()
    states = {}
    for site in accepted:
        if site in progress.dropped:
            states[site] = ("Dropped", progress.dropped[site])
        elif site not in nodes:
            states[site] = ("AwaitingKey", "not registered when the run started")
        elif progress.completed is not None:
            states[site] = (("Completed", "trained to the end") if site in last else
                            ("Stopped", "not in the final round"))
        elif progress.failed is not None:
            states[site] = ("Stopped", "the run failed")
        else:
            states[site] = ("Training", "in the run")
    return states


def wind_down(job: dict[str, Any], workitems: dict[str, dict[str, Any]],
              runtime: LocalRuntime, api: Any, logger: logging.Logger) -> None:
    """A finished job: its SuperLink stopped, and each site told to stop its SuperNode."""
    uid = job["metadata"]["uid"]
    if runtime.stop_superlink(uid):
        logger.info("stopped the job's SuperLink")
    with _probes_lock:
        _probes.pop(uid, None)
    objects = client.CustomObjectsApi(api)
    for item in workitems.values():
        shown = fleet.read(item) or fleet.Fleet()
        if shown.phase == "Finished":
            continue
        finished = shown.model_copy(update={"phase": "Finished"})
        objects.patch_namespaced_custom_object(
            GROUP, VERSION, item["metadata"]["namespace"], "workitems",
            item["metadata"]["name"], {"metadata": {"annotations": fleet.annotation(finished)}})


def forget(job_uid: str, runtime: LocalRuntime) -> None:
    """The job is being deleted: stop its SuperLink (its files stay, for the record)."""
    runtime.stop_superlink(job_uid)
    with _probes_lock:
        _probes.pop(job_uid, None)
    _passes.pop(job_uid, None)
