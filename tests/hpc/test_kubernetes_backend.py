"""HPCWorkloads on the testbed's GPU cluster: a real apiserver, controller-manager (Job and
garbage-collector controllers) and scheduler, with kwok playing the kubelets of two nodes
that advertise 8 `nvidia.com/gpu` each (product NVIDIA-H100-80GB-HBM3). kwok moves a Job's
pod to Running and then Succeeded at once, so "completion" is real Kubernetes bookkeeping
around a container that never runs.

Failure is produced without touching kwok: a workload asks for a GPU model no node offers
(NVIDIA-B200), so the scheduler never places its pod, and its short time limit
(activeDeadlineSeconds) makes the real Job controller fail the Job with DeadlineExceeded,
exactly as it would on a real cluster where the model is sold out.
"""

from __future__ import annotations

import uuid

import pytest
import yaml
from kubernetes import client

from incisive_operator.hpc.settings import HPCSettings

from . import workloads as wl
from .conftest import CRDS, condition, wait_for

pytestmark = pytest.mark.cluster

H100 = "NVIDIA-H100-80GB-HBM3"
ABSENT_MODEL = "NVIDIA-B200"  # no testbed node has it: the pod stays Pending


def settings(namespace: str, **overrides: object) -> HPCSettings:
    base: dict[str, object] = {
        "donations_namespace": namespace, "requeue_seconds": 1.0,
        "tenant_gpu_quota": {"radiology": 8}, "gpu_hour_price": {H100: 3.0},
    }
    return HPCSettings(**{**base, **overrides})  # type: ignore[arg-type]


@pytest.fixture
def priority_class(gpu_api: client.ApiClient):
    name = f"incisive-hpc-high-{uuid.uuid4().hex[:6]}"
    scheduling = client.SchedulingV1Api(gpu_api)
    scheduling.create_priority_class(client.V1PriorityClass(
        metadata=client.V1ObjectMeta(name=name), value=1000, preemption_policy="Never"))
    yield name
    scheduling.delete_priority_class(name)


def test_workload_completes_with_gpu_hours_cost_and_lineage(
    gpu_api, gpu_namespace, hpc_operator, priority_class
) -> None:
    ns = gpu_namespace
    wl.donate(gpu_api, ns, {"hospital-a.lung-ct": "central-hpc, federated-training"})
    config = settings(ns, priority_classes=((100, priority_class),))
    with hpc_operator(config):
        wl.create(gpu_api, ns, "segment", gpus={"count": 2, "model": H100}, priority=500,
                  timeLimit="30m", command=["python", "-m", "segment"],
                  inputs=[{"dataset": "lung-ct", "site": "hospital-a"}])
        done = wait_for(lambda: wl.with_condition(gpu_api, ns, "segment", "Succeeded", "True"),
                        "the workload to succeed")

    status = done["status"]
    assert condition(done, "Failed")["status"] == "False"
    assert condition(done, "Queued") == {**condition(done, "Queued"), "status": "False",
                                         "reason": "Admitted"}
    assert condition(done, "Running")["status"] == "False"
    assert status["startTime"] and status["endTime"] and status.get("reason") is None

    job = client.BatchV1Api(gpu_api).read_namespaced_job(status["jobName"], ns)
    assert job.metadata.owner_references[0].uid == done["metadata"]["uid"]
    assert job.spec.active_deadline_seconds == 1800 and job.spec.backoff_limit == 0
    assert job.spec.template.spec.node_selector == {"nvidia.com/gpu.product": H100}
    assert "kueue.x-k8s.io/queue-name" not in job.metadata.labels
    # The real scheduler placed the pod on a GPU node; the Priority admission plugin resolved
    # the class we chose from spec.priority.
    [pod] = wl.pods_of(gpu_api, ns, "segment")
    assert pod.spec.priority_class_name == priority_class and pod.spec.priority == 1000
    assert pod.spec.containers[0].resources.limits["nvidia.com/gpu"] == "2"
    assert pod.spec.node_name and pod.status.phase == "Succeeded"

    # GPU-hours: 2 GPUs for as long as the pod held its node (kwok: about no time at all).
    held = (pod.status.container_statuses[0].state.terminated.finished_at
            - pod.status.start_time).total_seconds()
    assert status["gpuHours"] == pytest.approx(2 * held / 3600, abs=1e-6)
    assert status["estimatedCost"] == pytest.approx(status["gpuHours"] * 3.0, abs=1e-4)
    assert status["currency"] == "EUR"

    lineage = status["lineage"]
    assert lineage["inputs"] == [{"dataset": "lung-ct", "site": "hospital-a",
                                  "purpose": "central-hpc"}]
    assert lineage["image"] == "registry.example/incisive/segment:1.0"
    assert lineage["commandSha256"].startswith("sha256:") and len(lineage["commandSha256"]) == 71
    assert lineage["outputs"] == []  # kwok's containers write no termination message

    # Kubernetes Jobs are cleaned up by owner reference: once finished, the workload keeps
    # no finalizer (kopf holds one only while the requeue timer still applies).
    wait_for(lambda: not (wl.get(gpu_api, ns, "segment") or {}).get("metadata", {})
             .get("finalizers"), "the finalizer released after completion", timeout=30)
    reasons = {e.reason for e in wl.events_for(gpu_api, ns, "segment")}
    assert {"Admitted", "Completed"} <= reasons


def test_quota_queues_the_second_workload_until_the_first_fails(
    gpu_api, gpu_namespace, hpc_operator
) -> None:
    ns = gpu_namespace
    with hpc_operator(settings(ns)):
        # First: all 8 of the tenant's GPUs, on a model no node has; it fails by deadline.
        wl.create(gpu_api, ns, "first", gpus={"count": 8, "model": ABSENT_MODEL},
                  timeLimit="12s")
        wait_for(lambda: (wl.get(gpu_api, ns, "first") or {}).get("status", {}).get("jobName"),
                 "the first workload to be admitted")
        wl.create(gpu_api, ns, "second", gpus={"count": 4, "model": H100}, timeLimit="10m")
        # Created later but more urgent: priority orders the queue before age does.
        wl.create(gpu_api, ns, "urgent", gpus={"count": 4, "model": H100}, timeLimit="10m",
                  priority=10)

        queued = wait_for(lambda: wl.with_condition(gpu_api, ns, "second", "Queued", "True"),
                          "the second workload to be queued")
        urgent = wait_for(lambda: wl.with_condition(gpu_api, ns, "urgent", "Queued", "True"),
                          "the urgent workload to be queued")
        queued = wait_for(lambda: wl.with_condition(gpu_api, ns, "second", "Queued", "True")
                          if (wl.get(gpu_api, ns, "second") or {}).get("status", {}).get(
                              "queuePosition") == 2 else None, "second to be behind urgent")
        assert urgent["status"]["queuePosition"] == 1
        assert condition(queued, "Queued")["reason"] == "QuotaExhausted"
        assert "holds 8 of its 8" in condition(queued, "Queued")["message"]
        assert condition(queued, "Succeeded")["status"] == "Unknown"
        assert client.BatchV1Api(gpu_api).list_namespaced_job(ns).items[0].metadata.name \
            == "first"

        failed = wait_for(lambda: wl.with_condition(gpu_api, ns, "first", "Failed", "True"),
                          "the first workload to fail", timeout=60)
        for name in ("second", "urgent"):
            wait_for(lambda n=name: wl.with_condition(gpu_api, ns, n, "Succeeded", "True"),
                     f"{name} to be admitted and succeed", timeout=60)
        final = {n: wl.get(gpu_api, ns, n) for n in ("second", "urgent")}

    assert failed["status"]["reason"] == "DeadlineExceeded"
    assert condition(failed, "Succeeded") == {**condition(failed, "Succeeded"),
                                              "status": "False", "reason": "DeadlineExceeded"}
    assert failed["status"]["gpuHours"] == 0  # its pod never got a node, so never a GPU
    assert failed["status"]["endTime"]
    for name, body in final.items():
        assert body["status"].get("queuePosition") is None, name
        assert condition(body, "Queued")["reason"] == "Admitted"
    first_reasons = {(e.type, e.reason) for e in wl.events_for(gpu_api, ns, "first")}
    assert ("Warning", "DeadlineExceeded") in first_reasons
    assert "QuotaExhausted" in {e.reason for e in wl.events_for(gpu_api, ns, "second")}


def test_workload_asking_more_than_the_tenant_quota_is_rejected(
    gpu_api, gpu_namespace, hpc_operator
) -> None:
    ns = gpu_namespace
    with hpc_operator(settings(ns)):
        wl.create(gpu_api, ns, "too-big", gpus={"count": 16})
        body = wait_for(lambda: wl.with_condition(gpu_api, ns, "too-big", "Failed", "True"),
                        "the workload to be rejected")
    assert body["status"]["reason"] == "ExceedsTenantQuota"
    assert client.BatchV1Api(gpu_api).list_namespaced_job(ns).items == []


def test_deleting_a_running_workload_cancels_its_job(gpu_api, gpu_namespace,
                                                     hpc_operator) -> None:
    ns = gpu_namespace
    with hpc_operator(settings(ns)):
        wl.create(gpu_api, ns, "cancel-me", gpus={"count": 1, "model": ABSENT_MODEL},
                  timeLimit="1h")
        wait_for(lambda: wl.pods_of(gpu_api, ns, "cancel-me"), "the Job's pod")
        wl.delete(gpu_api, ns, "cancel-me")
        wait_for(lambda: wl.get(gpu_api, ns, "cancel-me") is None, "the workload to go")
    # The garbage collector follows the owner reference: Job first, then its pod.
    wait_for(lambda: not client.BatchV1Api(gpu_api).list_namespaced_job(ns).items,
             "the Job to be garbage-collected")
    wait_for(lambda: not wl.pods_of(gpu_api, ns, "cancel-me"), "the pod to be deleted")


def test_inputs_not_donated_for_central_hpc_are_rejected(gpu_api, gpu_namespace,
                                                         hpc_operator) -> None:
    ns = gpu_namespace
    # Donated, but only for federated training: not for central processing.
    wl.donate(gpu_api, ns, {"hospital-a.lung-ct": "federated-training",
                            "public-xray": "central-hpc"})
    with hpc_operator(settings(ns)):
        wl.create(gpu_api, ns, "greedy", gpus={"count": 1},
                  inputs=[{"dataset": "public-xray"},
                          {"dataset": "lung-ct", "site": "hospital-a"}])
        body = wait_for(lambda: wl.with_condition(gpu_api, ns, "greedy", "Failed", "True"),
                        "the workload to be rejected")
    assert body["status"]["reason"] == "InputsNotDonated"
    message = condition(body, "Succeeded")["message"]
    assert "hospital-a.lung-ct" in message and "public-xray" not in message
    assert condition(body, "Queued")["reason"] == "NotAdmitted"
    assert client.BatchV1Api(gpu_api).list_namespaced_job(ns).items == []
    assert ("Warning", "InputsNotDonated") in {
        (e.type, e.reason) for e in wl.events_for(gpu_api, ns, "greedy")}


def test_withdrawn_donation_stops_the_running_job(gpu_api, gpu_namespace,
                                                  hpc_operator) -> None:
    ns = gpu_namespace
    wl.donate(gpu_api, ns, {"lung-ct": "central-hpc"})
    with hpc_operator(settings(ns)):
        wl.create(gpu_api, ns, "consented", gpus={"count": 1, "model": ABSENT_MODEL},
                  timeLimit="1h", inputs=[{"dataset": "lung-ct"}])
        wait_for(lambda: wl.pods_of(gpu_api, ns, "consented"), "the Job's pod")
        client.CoreV1Api(gpu_api).patch_namespaced_config_map(
            "donated-datasets", ns, {"data": {"lung-ct": "federated-training"}})
        body = wait_for(lambda: wl.with_condition(gpu_api, ns, "consented", "Failed", "True"),
                        "the workload to stop")
        wait_for(lambda: not client.BatchV1Api(gpu_api).list_namespaced_job(ns).items,
                 "the Job to be deleted")
    assert body["status"]["reason"] == "DonationWithdrawn"
    assert condition(body, "Queued")["reason"] == "Admitted"


def test_kueue_mode_creates_a_suspended_job_for_kueue_to_admit(
    gpu_api, gpu_namespace, hpc_operator
) -> None:
    # Kueue is not installed on the testbed: this checks our half of the contract (the Job
    # Kueue would manage, and what the workload says while no Workload exists), not Kueue.
    ns = gpu_namespace
    with hpc_operator(settings(ns, kueue=True)):
        wl.create(gpu_api, ns, "via-kueue", gpus={"count": 8}, queue="gpu-queue")
        body = wait_for(lambda: wl.with_condition(gpu_api, ns, "via-kueue", "Queued", "True",
                                                  "WaitingForKueue"), "the workload to wait")
    job = client.BatchV1Api(gpu_api).read_namespaced_job(body["status"]["jobName"], ns)
    assert job.spec.suspend is True
    assert job.metadata.labels["kueue.x-k8s.io/queue-name"] == "gpu-queue"
    assert not wl.pods_of(gpu_api, ns, "via-kueue")
    assert "LocalQueue 'gpu-queue'" in condition(body, "Queued")["message"]


def test_the_sample_is_accepted_by_the_apiserver(gpu_api, gpu_namespace) -> None:
    sample = yaml.safe_load((CRDS / "samples" / "hpcworkload.yaml").read_text())
    created = client.CustomObjectsApi(gpu_api).create_namespaced_custom_object(
        "incisive-project.eu", "v1alpha1", gpu_namespace, "hpcworkloads", sample, dry_run="All")
    assert created["spec"]["gpus"] == {"count": 2, "model": "NVIDIA-H100-80GB-HBM3"}
