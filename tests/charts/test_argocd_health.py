"""Argo CD health checks for our kinds (charts/argocd/health/*.lua), run on objects whose
conditions come from the operator's own code.

Argo CD runs these scripts in gopher-lua, a Lua 5.1, with `obj` set to the object and no
os/io/require; the tests run them in Lua 5.1 (lupa) with those globals removed too.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest
import yaml
from lupa import lua51

from incisive_operator.conditions import set_condition
from incisive_operator.hpc.outcome import BackendState, conditions_for

from .conftest import CHARTS, ROOT

HEALTH = CHARTS / "argocd" / "health"
SAMPLES = ROOT / "crds" / "samples"
KINDS = ("DataNode", "FederatedSite", "WorkItem", "TrainingJob", "HPCWorkload")


def health(kind: str, obj: dict[str, Any]) -> tuple[str, str]:
    lua = lua51.LuaRuntime(unpack_returned_tuples=True)
    lua.execute("os, io, require, dofile, loadfile, load, loadstring = nil")
    lua.globals().obj = lua.table_from(obj, recursive=True)
    result = lua.execute((HEALTH / f"incisive-project.eu_{kind}.lua").read_text())
    assert result.status in ("Healthy", "Progressing", "Degraded", "Suspended", "Missing")
    return result.status, result.message


def conditions(*entries: tuple[str, bool | str, str, str]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for type_, status, reason, message in entries:
        out = set_condition(out, type_, status, reason, message, 1)
    return out


def with_status(obj: dict[str, Any], **status: Any) -> dict[str, Any]:
    obj = copy.deepcopy(obj)
    obj["metadata"]["generation"] = 1
    obj["status"] = {"observedGeneration": 1, **status}
    return obj


def test_one_script_per_kind() -> None:
    assert sorted(p.stem for p in HEALTH.glob("*.lua")) == \
        sorted(f"incisive-project.eu_{k}" for k in KINDS)


DATANODE = yaml.safe_load((SAMPLES / "datanode.yaml").read_text())
READY = ("Ready", True, "ApplianceReady", "the appliance is running and ready")


@pytest.mark.parametrize("status,expected,says", [
    (None, "Progressing", "waiting for the site operator"),
    ({"conditions": conditions(("Ready", False, "ApplianceStarting", "waiting for the pod"))},
     "Progressing", "ApplianceStarting"),
    ({"conditions": conditions(READY), "enrolment": "Disabled"}, "Healthy", "ApplianceReady"),
    ({"conditions": conditions(("Ready", False, "InvalidSpec", "storage.size: bad"))},
     "Degraded", "storage.size"),
    ({"conditions": conditions(READY, ("Enrolled", False, "BootstrapRejected", "ask again"),
                               ("HubReachable", True, "Reachable", "the hub answers")),
      "enrolment": "Pending"}, "Degraded", "BootstrapRejected"),
    ({"conditions": conditions(READY, ("Enrolled", False, "WrongSubject", "refused"),
                               ("HubReachable", True, "Reachable", "the hub answers")),
      "enrolment": "Denied"}, "Degraded", "refused"),
    ({"conditions": conditions(READY, ("Enrolled", False, "AwaitingApproval", "waits"),
                               ("HubReachable", True, "Reachable", "the hub answers")),
      "enrolment": "Pending"}, "Healthy", "enrolment pending"),
    # The hub is away: the site keeps working on its own, which is healthy.
    ({"conditions": conditions(READY, ("Enrolled", True, "CertificateValid", "enrolled"),
                               ("HubReachable", False, "HubUnreachable", "cannot reach")),
      "enrolment": "Enrolled"}, "Healthy", "working locally"),
])
def test_datanode(status: dict[str, Any] | None, expected: str, says: str) -> None:
    obj = copy.deepcopy(DATANODE) if status is None else with_status(DATANODE, **status)
    state, message = health("DataNode", obj)
    assert (state, says in message) == (expected, True), message


def test_datanode_with_a_newer_spec_is_progressing() -> None:
    obj = with_status(DATANODE, conditions=conditions(READY))
    obj["metadata"]["generation"] = 2
    assert health("DataNode", obj)[0] == "Progressing"


SITE = {"apiVersion": "incisive-project.eu/v1alpha1", "kind": "FederatedSite",
        "metadata": {"name": "hospital-a"},
        "spec": {"country": "IT", "bootstrapTokenId": "abcdef"}}


@pytest.mark.parametrize("entries,expected,says", [
    ((("Joined", False, "AwaitingRequest", "not yet"),
      ("Ready", False, "AwaitingHeartbeat", "no heartbeat yet")), "Progressing", "not yet"),
    ((("Joined", False, "AwaitingApproval", "approve it with `incisive site approve`"),
      ("Ready", False, "AwaitingHeartbeat", "no heartbeat")), "Progressing", "site approve"),
    ((("Joined", False, "WrongBootstrapToken", "requested by someone else"),
      ("Ready", False, "AwaitingHeartbeat", "no heartbeat")), "Degraded", "WrongBootstrapToken"),
    ((("Joined", True, "CertificateIssued", "enrolled"),
      ("Ready", True, "Heartbeat", "last heartbeat 3 s ago")), "Healthy", "Heartbeat"),
    ((("Joined", True, "CertificateIssued", "enrolled"),
      ("Ready", "Unknown", "HeartbeatMissed", "no heartbeat for 60 s")), "Degraded", "60 s"),
])
def test_federated_site(entries: tuple, expected: str, says: str) -> None:
    state, message = health("FederatedSite", with_status(SITE, conditions=conditions(*entries)))
    assert (state, says in message) == (expected, True), message


def test_federated_site_before_the_operator() -> None:
    assert health("FederatedSite", copy.deepcopy(SITE))[0] == "Progressing"


WORKITEM = {"apiVersion": "incisive-project.eu/v1alpha1", "kind": "WorkItem",
            "metadata": {"name": "tj-1", "namespace": "site-hospital-a"},
            "spec": {"purpose": "federated-training"}}


@pytest.mark.parametrize("status,expected,says", [
    (None, "Progressing", "waiting for the site"),
    ({"decision": "Pending"}, "Progressing", "waiting for the site"),
    ({"decision": "Accepted", "conditions": conditions(("Decided", True, "Accepted", "ok"))},
     "Healthy", "Accepted"),
    ({"decision": "Declined", "reason": "PurposeNotAllowed",
      "conditions": conditions(("Decided", True, "Declined", "purpose not allowed"))},
     "Healthy", "Declined: PurposeNotAllowed"),
    ({"conditions": conditions(("Decided", False, "AwaitingApproval", "a human decides"))},
     "Progressing", "a human decides"),
])
def test_work_item(status: dict[str, Any] | None, expected: str, says: str) -> None:
    obj = copy.deepcopy(WORKITEM) if status is None else with_status(WORKITEM, **status)
    state, message = health("WorkItem", obj)
    assert (state, says in message) == (expected, True), message


HPC = yaml.safe_load((SAMPLES / "hpcworkload.yaml").read_text())


@pytest.mark.parametrize("state,extra,expected,says", [
    (BackendState("queued", "QuotaExhausted", "waiting for GPUs", position=2),
     {"queuePosition": 2}, "Progressing", "position 2"),
    (BackendState("queued", "KueuePending", "waiting for quota"), {}, "Progressing",
     "KueuePending"),
    (BackendState("running", "PodsRunning", "1 pod running"), {}, "Progressing", "running"),
    (BackendState("succeeded", "Completed", "the Job completed"), {}, "Healthy", "Completed"),
    (BackendState("failed", "DeadlineExceeded", "ran past its time limit"), {}, "Degraded",
     "DeadlineExceeded"),
    (BackendState("failed", "InputsNotDonated", "not donated"), {}, "Degraded",
     "InputsNotDonated"),
])
def test_hpc_workload(state: BackendState, extra: dict[str, Any], expected: str,
                      says: str) -> None:
    obj = with_status(HPC, conditions=conditions_for([], state, 1), **extra)
    found, message = health("HPCWorkload", obj)
    assert (found, says in message) == (expected, True), message


def test_hpc_workload_before_the_operator() -> None:
    assert health("HPCWorkload", copy.deepcopy(HPC))[0] == "Progressing"


TRAINING = {"apiVersion": "incisive-project.eu/v1alpha1", "kind": "TrainingJob",
            "metadata": {"name": "lung-nodules", "namespace": "research"},
            "spec": {"rounds": 5, "purpose": "federated-training"}}


@pytest.mark.parametrize("entries,extra,expected,says", [
    ((), {}, "Progressing", "waiting for the hub operator"),
    ((("Succeeded", "Unknown", "WaitingForSites", "2 of 3 sites accepted"),
      ("Running", False, "WaitingForSites", "")), {}, "Progressing", "2 of 3"),
    ((("Succeeded", "Unknown", "Training", "training"), ("Running", True, "Training", "")),
     {"currentRound": 3}, "Progressing", "round 3 of 5"),
    ((("Succeeded", True, "Completed", "model stored"), ("Running", False, "Finished", "")),
     {}, "Healthy", "model stored"),
    ((("Succeeded", False, "TooFewSites", "1 site accepted, 2 needed"),
      ("Failed", True, "TooFewSites", "1 site accepted, 2 needed")), {}, "Degraded",
     "TooFewSites"),
])
def test_training_job(entries: tuple, extra: dict[str, Any], expected: str, says: str) -> None:
    obj = with_status(TRAINING, conditions=conditions(*entries), **extra) if entries \
        else copy.deepcopy(TRAINING)
    state, message = health("TrainingJob", obj)
    assert (state, says in message) == (expected, True), message
