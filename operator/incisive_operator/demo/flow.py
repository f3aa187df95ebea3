"""`incisive demo`: the main job, a whole local federation on one machine.

It brings up the federation's clusters (the hub, two hospital sites and the GPU cluster),
installs the CRDs, starts the operators, enrols both sites pull-only, fans a TrainingJob
out to them (each site decides under its own policy), runs an HPCWorkload on the GPU
cluster, and prints a summary with the kubectl commands to look further. Running it twice
works: every step checks what is already there. `incisive testbed down` stops everything,
operators included.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import sys
import time
import urllib.request
from collections.abc import Callable
from typing import Any

import yaml

from .api import GROUP
from .testbed import Cluster, Testbed, TestbedError, toolchain
from .testbed.processes import Managed

FEDERATION = ("hub", "site-a", "site-b", "gpu")
SITES = {"site-a": "IT", "site-b": "ES"}
NAMESPACE = "radiology"
RESEARCH = "research"
STEPS = 8


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("demo", help="run a whole local federation")
    parser.add_argument("--down", action="store_true",
                        help="stop the federation at the end instead of leaving it running")
    parser.set_defaults(run=run)


def _step(number: int, text: str) -> None:
    print(f"\n[{number}/{STEPS}] {text}", flush=True)


def _wait(what: str, check: Callable[[], Any], timeout: float = 120) -> Any:
    started = time.monotonic()
    last_note = started
    while True:
        with contextlib.suppress(Exception):
            value = check()
            if value:
                return value
        now = time.monotonic()
        if now - started > timeout:
            raise TestbedError(f"timed out after {timeout:.0f} s waiting for {what}",
                               "look at the operator logs named above, then rerun the demo")
        if now - last_note > 15:
            print(f"  … still waiting for {what} ({now - started:.0f} s)", flush=True)
            last_note = now
        time.sleep(1)


def run(args: argparse.Namespace) -> int:
    from kubernetes import client

    from .hub import registration

    started = time.monotonic()
    _step(1, "upstream binaries (built once, then cached)")
    tools = toolchain.ensure()
    bed = Testbed()

    _step(2, f"clusters {', '.join(FEDERATION)} on loopback")
    clusters = {c.name: c for c in bed.up(list(FEDERATION))}
    for cluster in clusters.values():
        nodes = cluster.ready_nodes()
        print(f"  {cluster.name:7} {cluster.server}  {cluster.version()}  "
              f"{len(nodes)} Ready node(s): {', '.join(nodes)}")

    _step(3, "CRDs on every cluster")
    for cluster in clusters.values():
        _apply_crds(cluster, tools)
    print("  incisive-project.eu/v1alpha1: DataNode, FederatedSite, WorkItem, TrainingJob, "
          "HPCWorkload")

    _step(4, "operators: hub mode on hub and gpu, site mode at each hospital")
    for name, mode in (("hub", "hub"), ("gpu", "hub"), ("site-a", "site"), ("site-b", "site")):
        log = _ensure_operator(clusters[name], mode)
        print(f"  {name:7} --mode {mode:4}  log: {log}")

    _step(5, "enrolment, pull-only: bootstrap token, key made at the site, hub approval")
    hub = clusters["hub"]
    hub_api = hub.api_client()
    objects = client.CustomObjectsApi(hub_api)
    for site, country in SITES.items():
        if not _exists(lambda s=site: objects.get_cluster_custom_object(
                GROUP, "v1alpha1", "federatedsites", s)):
            reg = registration.register_site(hub_api, site, country, auto_approve=True,
                                             display_name=f"Hospital {site}")
            _site_datanode(clusters[site], hub, reg.site_secret())
    for site in SITES:
        _wait(f"the hub to see {site} Ready", lambda s=site: _summary(
            objects.get_cluster_custom_object(GROUP, "v1alpha1", "federatedsites", s),
            "Ready") == "True")
        node = client.CustomObjectsApi(clusters[site].api_client()).get_namespaced_custom_object(
            GROUP, "v1alpha1", NAMESPACE, "datanodes", "radiology")
        print(f"  {site}: enrolment {node['status'].get('enrolment')}, appliance "
              f"{_summary(node, 'Ready')}; hub namespace {node['status'].get('hubNamespace')}")

    _step(6, "a TrainingJob fans out; each site decides under its own policy")
    _ensure_namespace(hub_api, RESEARCH)
    job_name = "chest-xray"
    if not _exists(lambda: objects.get_namespaced_custom_object(
            GROUP, "v1alpha1", RESEARCH, "trainingjobs", job_name)):
        objects.create_namespaced_custom_object(GROUP, "v1alpha1", RESEARCH, "trainingjobs", {
            "apiVersion": f"{GROUP}/v1alpha1", "kind": "TrainingJob",
            "metadata": {"name": job_name},
            "spec": {"app": {"reference": "incisive/chest-xray-classifier",
                             "digest": "sha256:" + "0" * 64},
                     "purpose": "federated-training", "rounds": 3, "minSites": 1}})
    job = _wait("both sites' decisions", lambda: (j := objects.get_namespaced_custom_object(
        GROUP, "v1alpha1", RESEARCH, "trainingjobs", job_name)) and len(
        (j.get("status") or {}).get("sites") or []) == 2 and all(
        d["decision"] != "Pending" for d in j["status"]["sites"]) and j)
    for decision in job["status"]["sites"]:
        print(f"  {decision['site']}: {decision['decision']} ({decision['reason']}) "
              f"{decision['message']}")
    print(f"  job: Succeeded={_summary(job, 'Succeeded')} "
          f"({_condition(job, 'Succeeded').get('reason')})")

    _step(7, "an HPCWorkload on the GPU cluster")
    gpu_api = clusters["gpu"].api_client()
    gpu_objects = client.CustomObjectsApi(gpu_api)
    _ensure_namespace(gpu_api, RESEARCH)
    workload = "segmentation-pretraining"
    if not _exists(lambda: gpu_objects.get_namespaced_custom_object(
            GROUP, "v1alpha1", RESEARCH, "hpcworkloads", workload)):
        gpu_objects.create_namespaced_custom_object(GROUP, "v1alpha1", RESEARCH, "hpcworkloads", {
            "apiVersion": f"{GROUP}/v1alpha1", "kind": "HPCWorkload",
            "metadata": {"name": workload},
            "spec": {"image": "registry.example/incisive/seg:1.0", "command": ["train"],
                     "gpus": {"count": 2, "model": "NVIDIA-H100-80GB-HBM3"},
                     "tenant": "uni-demo", "timeLimit": "1h"}})
    hpc = _wait("the HPCWorkload to finish", lambda: (w := gpu_objects.get_namespaced_custom_object(
        GROUP, "v1alpha1", RESEARCH, "hpcworkloads", workload)) and _summary(
        w, "Succeeded") in ("True", "False") and w, timeout=180)
    print(f"  {workload}: Succeeded={_summary(hpc, 'Succeeded')}, GPU-hours "
          f"{hpc['status'].get('gpuHours')} (kwok's pods finish at once), tenant "
          f"{hpc['spec']['tenant']}")

    _step(8, "summary")
    print(f"  sites enrolled: {', '.join(SITES)}; training job {job_name}: "
          f"{job['status'].get('acceptedSites')} site(s) accepted; HPC GPU-hours "
          f"{hpc['status'].get('gpuHours')}")
    print(f"  federation up in {time.monotonic() - started:.0f} s. Look further with:")
    for name, cluster in clusters.items():
        print(f"    kubectl --kubeconfig {cluster.kubeconfig} get incisive -A   # {name}")
    print("  not in the demo yet: DICOM ingest at the sites, the Flower training run, the "
          "ledger (their own tests run them: tests/ingest, tests/fl, tests/ledger)")
    if args.down:
        bed.down()
        print("stopped (incisive demo --down)")
    else:
        print("stop everything with: incisive testbed down")
    return 0


def _apply_crds(cluster: Cluster, tools: toolchain.Toolchain) -> None:
    from .api import crdgen

    documents = "\n---\n".join(crdgen.render(r) for r in crdgen.KINDS)
    cluster.kubectl(tools, "apply", "--server-side", "--field-manager=incisive-demo",
                    "-f", "-", stdin=documents)
    names = [f"crd/{r.plural}.{GROUP}" for r in crdgen.KINDS]
    cluster.kubectl(tools, "wait", "--for=condition=Established", "--timeout=60s", *names)


def _ensure_operator(cluster: Cluster, mode: str) -> str:
    """The operator as a background process of the testbed, stopped by `testbed down`."""
    operator = Managed(f"operator-{mode}", cluster.folder)
    liveness = f"http://{cluster.address}:18080/healthz"
    if operator.pid() is None:
        operator.start([sys.executable, "-m", "incisive_operator.cli", "operator", "run",
                        "--mode", mode, "--kubeconfig", str(cluster.kubeconfig),
                        "--liveness", liveness, "--metrics", f"{cluster.address}:19090"])
    _wait(f"the {mode} operator on {cluster.name}", lambda: urllib.request.urlopen(
        liveness, timeout=2).status == 200, timeout=60)
    return str(operator.log)


def _site_datanode(site: Cluster, hub: Cluster, secret: dict[str, Any]) -> None:
    from kubernetes import client

    api = site.api_client()
    _ensure_namespace(api, NAMESPACE)
    core = client.CoreV1Api(api)
    with contextlib.suppress(client.ApiException):
        core.delete_namespaced_secret("hub-bootstrap", NAMESPACE)
    core.create_namespaced_secret(NAMESPACE, secret)
    if not _exists(lambda: core.read_namespaced_secret("vault-token", NAMESPACE)):
        # Pods on kwok nodes run no process: this token is never used, only referenced.
        core.create_namespaced_secret(NAMESPACE, client.V1Secret(
            metadata=client.V1ObjectMeta(name="vault-token"),
            data={"token": base64.b64encode(b"demo-token-not-a-real-vault").decode()}))
    manifest = yaml.safe_load(f"""
apiVersion: {GROUP}/v1alpha1
kind: DataNode
metadata: {{name: radiology}}
spec:
  ingest:
    dicom: {{aeTitle: INCISIVE, allowedCallingAETitles: [PACS_MAIN]}}
  deidentification:
    vault: {{address: "https://vault.{site.name}.example:8200", project: chest-xray,
             tokenSecretRef: {{name: vault-token}}}}
  policy:
    allowedPurposes: {["federated-training"] if site.name == "site-a" else ["central-hpc"]}
    workApproval: Automatic
  hub: {{endpoint: "{hub.server}", siteName: {site.name},
         bootstrapSecretRef: {{name: hub-bootstrap}}}}
""")
    objects = client.CustomObjectsApi(api)
    with contextlib.suppress(client.ApiException):
        objects.delete_namespaced_custom_object(GROUP, "v1alpha1", NAMESPACE, "datanodes",
                                                "radiology")
        _wait("the old DataNode to go", lambda: not _exists(
            lambda: objects.get_namespaced_custom_object(GROUP, "v1alpha1", NAMESPACE,
                                                         "datanodes", "radiology")))
    objects.create_namespaced_custom_object(GROUP, "v1alpha1", NAMESPACE, "datanodes", manifest)


def _ensure_namespace(api: Any, name: str) -> None:
    from kubernetes import client

    core = client.CoreV1Api(api)
    if not _exists(lambda: core.read_namespace(name)):
        core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))


def _exists(read: Callable[[], Any]) -> bool:
    from kubernetes import client

    try:
        read()
    except client.ApiException as exc:
        if exc.status == 404:
            return False
        raise
    return True


def _condition(obj: dict[str, Any], type_: str) -> dict[str, Any]:
    return next((c for c in (obj.get("status") or {}).get("conditions") or []
                 if c.get("type") == type_), {})


def _summary(obj: dict[str, Any], type_: str) -> str | None:
    return _condition(obj, type_).get("status")
