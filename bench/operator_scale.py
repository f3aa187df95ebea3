"""How the site operator scales: N DataNodes from apply to Ready, beside the floor.

For each N, in one run on one fresh testbed cluster:
* floor: a plain script creates the same objects directly (the N DataNodes and every child
  the operator would make, with the same 8-way concurrency the operator uses) and waits
  until every appliance StatefulSet reports a ready replica: what the apiserver, the
  controllers and kwok need, with no operator in the way;
* operator: the N DataNodes are created, `incisive operator run --mode site` converges
  them, and each DataNode's apply→Ready time is taken from when it was created to when its
  Ready condition was first seen True.
Targets at N = 1000: operator total <= 2x the floor, operator peak memory <= 300 MiB.
Exit 1 when a target is missed. Usage: python bench/operator_scale.py [--sizes 200,500,1000]
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from kubernetes import client

from incisive_operator.api import GROUP
from incisive_operator.api.v1alpha1.datanode import DataNodeSpec
from incisive_operator.kube import apply
from incisive_operator.site import appliance
from incisive_operator.testbed import Testbed, ensure

CRDS = Path(__file__).resolve().parents[1] / "crds"
WORKERS = 8
PODS_PER_NODE = 110  # a kubelet's default, and what the testbed's kwok nodes advertise
TARGET_RATIO = 2.0
TARGET_MEMORY_MIB = 300


def deadline_for(n: int) -> float:
    """Give up (and say so) rather than hang when something never becomes Ready."""
    return time.monotonic() + 300 + n


def datanode(name: str) -> dict[str, Any]:
    return {"apiVersion": f"{GROUP}/v1alpha1", "kind": "DataNode",
            "metadata": {"name": name},
            "spec": {"storage": {"size": "1Gi"}, "deidentification": {"vault": {
                "address": "https://vault.example:8200", "project": "bench",
                "tokenSecretRef": {"name": "vault"}}}}}


def make_namespace(api: client.ApiClient, name: str) -> None:
    client.CoreV1Api(api).create_namespace(
        client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))


def drop_namespace(api: client.ApiClient, name: str) -> None:
    core = client.CoreV1Api(api)
    core.delete_namespace(name)
    while True:
        try:
            core.read_namespace(name)
        except client.ApiException:
            return
        time.sleep(1)


def add_nodes(cluster: Any, tools: Any, pods: int) -> None:
    """Enough kwok nodes for `pods` appliance pods: the testbed's one node holds 110, and the
    pods past that would stay Pending ("Too many pods"), floor and operator alike."""
    template = cluster.node_manifests()[0]
    wanted = -(-pods // PODS_PER_NODE)
    extra = []
    for i in range(1, wanted):
        node = json.loads(json.dumps(template))
        node["metadata"]["name"] = f"{cluster.name}-node-{i}"
        node["metadata"]["labels"]["kubernetes.io/hostname"] = node["metadata"]["name"]
        extra.append(node)
    if extra:
        cluster.kubectl(tools, "apply", "--server-side", "-f", "-",
                        stdin="\n---\n".join(json.dumps(n) for n in extra))
    deadline = time.monotonic() + 120
    while len(cluster.ready_nodes()) < wanted:
        if time.monotonic() > deadline:
            raise RuntimeError(f"{wanted} kwok nodes not Ready in 120 s")
        time.sleep(0.5)


def ready_statefulsets(api: client.ApiClient, namespace: str) -> int:
    items = client.AppsV1Api(api).list_namespaced_stateful_set(namespace).items
    return sum(1 for s in items if (s.status.ready_replicas or 0) >= 1)


def floor(api: client.ApiClient, namespace: str, n: int) -> float:
    objects = client.CustomObjectsApi(api)
    spec = DataNodeSpec.model_validate(datanode("template")["spec"])

    def create(i: int) -> None:
        name = f"dn-{i}"
        objects.create_namespaced_custom_object(GROUP, "v1alpha1", namespace, "datanodes",
                                                datanode(name))
        for manifest in appliance.desired(name, namespace, spec):
            apply(api, manifest)

    started = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(WORKERS) as pool:
        list(pool.map(create, range(n)))
    deadline = deadline_for(n)
    while ready_statefulsets(api, namespace) < n:
        if time.monotonic() > deadline:
            raise RuntimeError(f"floor: {n} appliances not ready in time")
        time.sleep(0.5)
    return time.monotonic() - started


def with_operator(
    api: client.ApiClient, kubeconfig: Path, namespace: str, n: int, log: Path
) -> tuple[float, list[float], float]:
    operator = subprocess.Popen(
        [sys.executable, "-m", "incisive_operator.cli", "operator", "run", "--mode", "site",
         "--kubeconfig", str(kubeconfig), "--namespace", namespace, "--liveness", "",
         "--metrics", ""],
        stdout=log.open("w"), stderr=subprocess.STDOUT)
    try:
        time.sleep(3)  # let it connect; its start-up is not what is measured
        objects = client.CustomObjectsApi(api)
        created: dict[str, float] = {}
        started = time.monotonic()
        for i in range(n):
            name = f"dn-{i}"
            objects.create_namespaced_custom_object(GROUP, "v1alpha1", namespace,
                                                    "datanodes", datanode(name))
            created[name] = time.monotonic()
        ready_at: dict[str, float] = {}
        peak = 0.0
        deadline = deadline_for(n)
        while len(ready_at) < n:
            if operator.poll() is not None:
                raise RuntimeError(f"operator exited; see {log}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"{n - len(ready_at)} DataNodes not Ready in time; see {log}")
            now = time.monotonic()
            listing = objects.list_namespaced_custom_object(GROUP, "v1alpha1", namespace,
                                                            "datanodes")["items"]
            for item in listing:
                name = item["metadata"]["name"]
                conditions = (item.get("status") or {}).get("conditions") or []
                if name not in ready_at and any(
                        c["type"] == "Ready" and c["status"] == "True" for c in conditions):
                    ready_at[name] = now
            peak = max(peak, _peak_mib(operator.pid))
            time.sleep(0.5)
        total = time.monotonic() - started
        latencies = sorted(ready_at[name] - created[name] for name in created)
        peak = max(peak, _peak_mib(operator.pid))
        # While the operator still runs: its timers put a finalizer on every DataNode.
        drop_namespace(api, namespace)
        return total, latencies, peak
    finally:
        operator.terminate()
        operator.wait(timeout=30)


def _peak_mib(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def percentile(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1] \
        if len(values) > 1 else values[0]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="200,500,1000")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    tools = ensure(progress=lambda _: None)
    work = Path(tempfile.mkdtemp(prefix="operator-scale-"))
    bed = Testbed(work / "testbed", block=60, progress=lambda _: None)
    rows = []
    try:
        cluster = bed.up(["bench"])[0]
        cluster.kubectl(tools, "apply", "--server-side", *[a for p in sorted(CRDS.glob("*.yaml"))
                                                          for a in ("-f", str(p))])
        add_nodes(cluster, tools, max(sizes))
        api = cluster.api_client()
        for n in sizes:
            make_namespace(api, f"floor-{n}")
            floor_total = floor(api, f"floor-{n}", n)
            drop_namespace(api, f"floor-{n}")
            make_namespace(api, f"operator-{n}")
            total, latencies, peak = with_operator(api, cluster.kubeconfig, f"operator-{n}", n,
                                                   work / f"operator-{n}.log")
            rows.append((n, floor_total, total, percentile(latencies, 50),
                         percentile(latencies, 99), peak))
            print(f"N={n}: floor {floor_total:.1f} s, operator {total:.1f} s", flush=True)
    finally:
        bed.down()
    print(f"\n{'N':>6} {'floor s':>9} {'operator s':>11} {'ratio':>6} {'p50 s':>7} "
          f"{'p99 s':>7} {'peak MiB':>9}")
    for n, floor_total, total, p50, p99, peak in rows:
        print(f"{n:>6} {floor_total:>9.1f} {total:>11.1f} {total / floor_total:>6.2f} "
              f"{p50:>7.1f} {p99:>7.1f} {peak:>9.0f}")
    largest = rows[-1]
    missed = []
    if largest[2] / largest[1] > TARGET_RATIO:
        missed.append(f"total {largest[2] / largest[1]:.2f}x the floor > {TARGET_RATIO}x")
    if largest[5] > TARGET_MEMORY_MIB:
        missed.append(f"peak memory {largest[5]:.0f} MiB > {TARGET_MEMORY_MIB} MiB")
    for line in missed:
        print(f"target missed at N={largest[0]}: {line}")
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
