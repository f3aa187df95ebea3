"""`incisive demo`: the main job, a whole local federation on one machine.

It brings up the federation's clusters (the hub, two hospital sites and the GPU cluster),
installs the charts (CRDs everywhere, the hub chart on the hub and the GPU cluster, the node
chart at each hospital), runs each chart's operator, starts each hospital's appliance and
sends it synthetic studies from a simulated PACS by C-STORE (de-identified and curated on
arrival), records the patients' consent at each hospital, enrols both sites pull-only, fans
a TrainingJob out to them (each site decides under its own policy, then trains a body-part
classifier on the studies it ingested, from consenting patients only), runs an HPCWorkload
on the GPU cluster, and prints a summary with the kubectl commands to look further. Running
it twice works: every step checks what is already there. `incisive testbed down` stops
everything, operators and appliances included.

What stands in for what: pods on kwok nodes start no process, so each chart's operator
Deployment runs here with its own arguments and a token of its own ServiceAccount
(testbed/standin.py), and each appliance runs here beside its site (demo/appliances.py).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from ..api import GROUP
from ..testbed import Cluster, Testbed, TestbedError, helm, standin, toolchain
from ..testbed.processes import Managed
from . import appliances, studies
from . import ledger as demo_ledger

FEDERATION = ("hub", "site-a", "site-b", "gpu")
SITES = {"site-a": "IT", "site-b": "ES"}
POLICIES = {"site-a": ["federated-training"], "site-b": ["federated-training", "central-hpc"]}
STUDIES_PER_SITE = 16
DECLINING = 1  # patients per site who say no to federated training
TRAINING_PURPOSE = "federated-training"
# What the sites train on: their own de-identified stores, labelled by the body part the
# header names, filtered by each patient's consent at every message.
LABELS = "incisive_node.fl.body_part:label_of"
NAMESPACE = "radiology"
RESEARCH = "research"
SYSTEM = "incisive-system"
CHARTS = Path(__file__).resolve().parents[3] / "charts"
STEPS = 10


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

    from ..api.v1alpha1 import KINDS

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

    _step(3, "the ledger: the log at the hub, a witness at each site")
    ledger = demo_ledger.ensure(bed.state_dir / "ledger", clusters["hub"],
                                [clusters[s] for s in SITES],
                                ["hub-operator", "gpu-operator", *SITES])
    print(f"  log {ledger.url}; checkpoints need both sites' cosignatures; submitters: the "
          f"hub and gpu operators and each site's appliance")

    _step(4, "charts: incisive-crds everywhere, incisive-hub on hub and gpu")
    for cluster in clusters.values():
        helm.adopt_crds(cluster, [kind.plural for kind in KINDS], GROUP)
        helm.upgrade_install(tools.helm, cluster, helm.CRDS_RELEASE, CHARTS / "incisive-crds",
                             helm.CRDS_NAMESPACE)
    for name in ("hub", "gpu"):
        helm.upgrade_install(tools.helm, clusters[name], "incisive-hub",
                             CHARTS / "incisive-hub", SYSTEM,
                             {"operator": {"extraArgs": ledger.operator_flags(f"{name}-operator")
                                           + (_fl_flags(clusters[name]) if name == "hub" else [])}})
        log = _ensure_operator(clusters[name], "hub", SYSTEM, "incisive-hub")
        print(f"  {name:7} incisive-hub in {SYSTEM}; its operator runs with the chart's "
              f"ServiceAccount, log: {log}")

    _step(5, "hospital appliances; a PACS at each site sends studies by C-STORE")
    hospitals = {}
    for index, site in enumerate(SITES):
        appliance = appliances.ensure(clusters[site], tools.bao, ledger.env(site))
        hospitals[site] = appliance
        if appliance.total("incisive_ingest_received_total") == 0:
            sent = studies.send(appliance.host, appliances.DICOM_PORT, appliances.AE_TITLE,
                                index, STUDIES_PER_SITE)
            print(f"  {site}: PACS sent {sent.studies} studies, {sent.instances} instances")
        _wait(f"curation of {site}'s series", lambda a=appliance: a.total(
            "incisive_curation_series") >= STUDIES_PER_SITE, timeout=60)
        print(f"  {site}: de-identified and stored "
              f"{appliance.total('incisive_ingest_stored_total'):.0f}, quarantined "
              f"{appliance.total('incisive_ingest_quarantined_total'):.0f}; curation: "
              f"{appliance.total('incisive_curation_instances_total', result='clean'):.0f} "
              f"clean, "
              f"{appliance.total('incisive_curation_instances_total', result='flagged'):.0f}"
              f" flagged; appliance {appliance.host}, log: {appliance.log}")
        permitted, declined = _record_consent(appliance, ledger.env(site))
        print(f"  {site}: consent to {TRAINING_PURPOSE}: {permitted} patients permit, "
              f"{declined} declined (recorded in the appliance's consent registry)")

    _step(6, "enrolment, pull-only: bootstrap token, key made at the site, hub approval")
    hub = clusters["hub"]
    hub_api = hub.api_client()
    objects = client.CustomObjectsApi(hub_api)
    publisher = _publisher(bed.state_dir / "publisher.key")
    for site, country in SITES.items():
        _install_site(clusters[site], hub, tools.helm, country, publisher, hospitals[site])
    for site in SITES:
        _wait(f"the hub to see {site} Ready", lambda s=site: _summary(
            objects.get_cluster_custom_object(GROUP, "v1alpha1", "federatedsites", s),
            "Ready") == "True")
        node = client.CustomObjectsApi(clusters[site].api_client()).get_namespaced_custom_object(
            GROUP, "v1alpha1", NAMESPACE, "datanodes", "radiology")
        print(f"  {site}: enrolment {node['status'].get('enrolment')}, appliance "
              f"{_summary(node, 'Ready')}; hub namespace {node['status'].get('hubNamespace')}")

    _step(7, "federated training: a signed app, each site's decision, a Flower run")
    from ..fl_cli import publish_yaml

    _ensure_namespace(hub_api, RESEARCH)
    job_name = "body-part-ct"
    if not _exists(lambda: objects.get_namespaced_custom_object(
            GROUP, "v1alpha1", RESEARCH, "trainingjobs", job_name)):
        app = yaml.safe_load(publish_yaml(publisher, None))["app"]
        objects.create_namespaced_custom_object(GROUP, "v1alpha1", RESEARCH, "trainingjobs", {
            "apiVersion": f"{GROUP}/v1alpha1", "kind": "TrainingJob",
            "metadata": {"name": job_name},
            "spec": {"app": app, "purpose": TRAINING_PURPOSE, "rounds": 3, "minSites": 2,
                     "localEpochs": 3}})
    job = _wait("both sites' decisions", lambda: (j := objects.get_namespaced_custom_object(
        GROUP, "v1alpha1", RESEARCH, "trainingjobs", job_name)) and len(
        (j.get("status") or {}).get("sites") or []) == 2 and all(
        d["decision"] != "Pending" for d in j["status"]["sites"]) and j)
    for decision in job["status"]["sites"]:
        print(f"  {decision['site']}: {decision['decision']} ({decision['reason']}) "
              f"{decision['message']}")
    shown: set[int] = set()

    def trained() -> dict[str, Any] | None:
        current = objects.get_namespaced_custom_object(GROUP, "v1alpha1", RESEARCH,
                                                       "trainingjobs", job_name)
        for entry in (current.get("status") or {}).get("rounds") or []:
            if entry["round"] not in shown:
                shown.add(entry["round"])
                print(f"  round {entry['round']}: accuracy {entry.get('accuracy') or 0:.3f}, "
                      f"loss {entry.get('loss') or 0:.3f}, sites "
                      f"{', '.join(entry.get('sites') or []) or '-'}", flush=True)
        return current if _summary(current, "Succeeded") in ("True", "False") else None

    job = _wait("the training run (SuperLink at the hub, a SuperNode at each site)", trained,
                timeout=600)
    model = job["status"].get("model") or {}
    print(f"  job: Succeeded={_summary(job, 'Succeeded')} "
          f"({_condition(job, 'Succeeded').get('reason')}); model {model.get('sha256', '-')}")
    if model.get("uri") and model.get("sha256"):
        for site, appliance in hospitals.items():
            print(f"  {site}: {_pre_annotate(appliance, model)}")

    _step(8, "an HPCWorkload on the GPU cluster")
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

    _step(9, "the ledger: every transaction above, verified")
    size, root = demo_ledger.settle(ledger)
    print(f"  {ledger.verify()}")
    print(f"  {size} entries; cosigned root {root}")

    _step(10, "summary")
    stored = sum(a.total("incisive_ingest_stored_total") for a in hospitals.values())
    print(f"  sites enrolled: {', '.join(SITES)}; studies: {STUDIES_PER_SITE * len(SITES)} "
          f"({stored:.0f} instances de-identified); training job {job_name}: "
          f"{len(job['status'].get('rounds') or []) - 1} rounds on the ingested studies of "
          f"consenting patients, body-part accuracy {_final_accuracy(job)}; HPC GPU-hours "
          f"{hpc['status'].get('gpuHours')}; ledger {size} entries, verified, root {root}")
    print(f"  federation up in {time.monotonic() - started:.0f} s. Look further with:")
    for name, cluster in clusters.items():
        print(f"    kubectl --kubeconfig {cluster.kubeconfig} get incisive -A   # {name}")
    if args.down:
        bed.down()
        print("stopped (incisive demo --down)")
    else:
        print("stop everything with: incisive testbed down")
    return 0


def _final_accuracy(job: dict[str, Any]) -> str:
    rounds = (job.get("status") or {}).get("rounds") or []
    accuracies = [r.get("accuracy") for r in rounds if r.get("accuracy") is not None]
    return " -> ".join(f"{a:.2f}" for a in accuracies) if accuracies else "-"


def _fl_host(cluster: Cluster) -> str:
    return cluster.address.rsplit(".", 1)[0] + ".4"


def _fl_flags(cluster: Cluster, store: Path | None = None) -> list[str]:
    """The local Flower runtime (fl/local.py): real SuperLink/SuperNode processes on the
    cluster's own loopback address, their state in the cluster's folder; a site's SuperNodes
    read its appliance's store."""
    flags = [f"--fl-state-dir={cluster.folder / 'fl'}", f"--fl-host={_fl_host(cluster)}"]
    if store is not None:
        flags += [f"--fl-data=store:{store}", f"--fl-labels={LABELS}", "--fl-consent=registry"]
    return flags


def _pre_annotate(appliance: appliances.Appliance, model: dict[str, Any]) -> str:
    """The site's annotation service proposes a label for each of its series with the job's
    model (refused unless the file has the SHA-256 the job recorded); a rerun proposes only
    for series this model has not seen. The proposals are compared with the body part the
    header names, which the model never saw at inference."""
    from urllib.parse import urlparse

    from incisive_node.annotation.records import AnnotationRecords
    from incisive_node.fl.body_part import BODY_PARTS
    from incisive_node.store import Store

    digest = str(model["sha256"]).removeprefix("sha256:")
    done = subprocess.run(
        [sys.executable, "-m", "incisive_node.cli", "annotate", "run", "--store",
         str(appliance.store), "--model", urlparse(model["uri"]).path,
         "--model-sha256", digest],
        capture_output=True, text=True, timeout=300)
    if done.returncode != 0:
        raise TestbedError(f"pre-annotation at {appliance.site} failed: "
                           f"{done.stderr.strip()[-500:]}", "see the message above")
    with Store(appliance.store) as store:
        proposals = [p for p in AnnotationRecords(store.index).queue("classification")
                     if p.model_sha256 == digest and p.label is not None]
        parts = dict(store.index.read("SELECT series_uid, body_part FROM series"))
    agree = sum(BODY_PARTS[p.label] == parts.get(p.series_uid) for p in proposals)
    return (f"the model pre-annotated {len(proposals)} series, {agree} agree with the "
            f"header's body part; review them, most uncertain first: incisive-node annotate "
            f"queue --store {appliance.store}")


def _record_consent(appliance: appliances.Appliance, ledger_env: dict[str, str]) -> tuple[int, int]:
    """The hospital records its patients' decisions, as its consent system would: all permit
    federated training but DECLINING of them. Through the appliance's own command line, so
    each change also goes to the ledger. Done once: a rerun finds the decisions in force."""
    from incisive_node.consent.registry import ConsentRegistry
    from incisive_node.store import Store

    with Store(appliance.store) as store:
        rows = store.index.read("SELECT pseudonym FROM patients")
        patients = sorted(str(row[0]) for row in rows)
        decided = {r.patient for r in ConsentRegistry(store.index).active_for_purpose(
            TRAINING_PURPOSE)}
    if not decided:
        for decision, group in (("deny", patients[:DECLINING]), ("permit", patients[DECLINING:])):
            done = subprocess.run(
                [sys.executable, "-m", "incisive_node.cli", "consent", decision, "--store",
                 str(appliance.store), "--purpose", TRAINING_PURPOSE, "--patient", *group],
                capture_output=True, text=True, env={**os.environ, **ledger_env}, timeout=120)
            if done.returncode != 0:
                raise TestbedError(f"recording consent at {appliance.site} failed: "
                                   f"{done.stderr.strip()[-500:]}", f"see {appliance.log}")
    return len(patients) - DECLINING, DECLINING


def _publisher(path: Path) -> Any:
    """The demo's app publisher key (made once per testbed)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from ..fl_cli import load_publisher_key

    if not path.exists():
        path.write_bytes(Ed25519PrivateKey.generate().private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption()))
        path.chmod(0o600)
    return load_publisher_key(path)


def _operator_host(cluster: Cluster) -> str:
    return cluster.address.rsplit(".", 1)[0] + ".3"


def _ensure_operator(cluster: Cluster, mode: str, namespace: str, release: str) -> str:
    """The chart's operator Deployment, run here as a testbed process (stopped by `testbed
    down`) with its own arguments and a token of its ServiceAccount."""
    from kubernetes import client

    operator = Managed(f"operator-{mode}", cluster.folder)
    deployment = client.AppsV1Api(cluster.api_client()).read_namespaced_deployment(
        release, namespace)
    body = cluster.api_client().sanitize_for_serialization(deployment)
    account = body["spec"]["template"]["spec"]["serviceAccountName"]
    kubeconfig = standin.service_account_kubeconfig(cluster, namespace, account,
                                                    cluster.folder / "standin")
    command = standin.operator_command(body, kubeconfig, _operator_host(cluster))
    if operator.pid() is None:
        operator.start(command.argv, env=command.env)
    _wait(f"the {mode} operator on {cluster.name}", lambda: urllib.request.urlopen(  # noqa: S310
        command.liveness, timeout=2).status == 200, timeout=60)
    return str(operator.log)


def _install_site(site: Cluster, hub: Cluster, helm_binary: Path, country: str,
                  publisher: Any, appliance: appliances.Appliance) -> None:
    """Register the site at the hub (once), hand its bootstrap Secret to the hospital, and
    install the node chart with the site's DataNode; then run the chart's operator."""
    from kubernetes import client

    from incisive_node.fl.signing import public_key_base64

    from ..hub import registration

    api = site.api_client()
    _ensure_namespace(api, NAMESPACE)
    core = client.CoreV1Api(api)
    hub_objects = client.CustomObjectsApi(hub.api_client())
    if not _exists(lambda: hub_objects.get_cluster_custom_object(
            GROUP, "v1alpha1", "federatedsites", site.name)):
        reg = registration.register_site(hub.api_client(), site.name, country,
                                         auto_approve=True, display_name=f"Hospital {site.name}")
        with contextlib.suppress(client.ApiException):
            core.delete_namespaced_secret("hub-bootstrap", NAMESPACE)
        core.create_namespaced_secret(NAMESPACE, reg.site_secret())
        # A new registration needs a new enrolment: the site's old hub credentials go.
        with contextlib.suppress(client.ApiException):
            core.delete_namespaced_secret("radiology-hub-credentials", NAMESPACE)
    if not _exists(lambda: core.read_namespaced_secret("vault-token", NAMESPACE)):
        # The appliance pod (on kwok) never reads it; the appliance process here has its own.
        core.create_namespaced_secret(NAMESPACE, client.V1Secret(
            metadata=client.V1ObjectMeta(name="vault-token"),
            string_data={"token": "held-by-the-appliance-process"}))
    host = appliances.host_of(site)
    spec = {
        "ingest": {"dicom": {"aeTitle": appliances.AE_TITLE,
                             "allowedCallingAETitles": [studies.PACS_AE]}},
        "deidentification": {"vault": {
            "address": f"http://{host}:{appliances.VAULT_PORT}",
            "project": appliances.PROJECT, "tokenSecretRef": {"name": "vault-token"}}},
        "policy": {"allowedPurposes": POLICIES[site.name], "workApproval": "Automatic",
                   "trustedAppSigningKeys": [public_key_base64(publisher.public_key())]},
        "hub": {"endpoint": hub.server, "siteName": site.name,
                "bootstrapSecretRef": {"name": "hub-bootstrap"}},
    }
    # What each site trains on is its own choice, made here: its appliance's store. The
    # appliance pod runs nothing (kwok): the operator reads the aggregates from the process.
    flags = [*_fl_flags(site, appliance.store),
             "--appliance-url", f"http://{appliance.host}:{appliances.HTTP_PORT}"]
    helm.upgrade_install(helm_binary, site, "incisive-node", CHARTS / "incisive-node",
                         NAMESPACE, {"dataNode": {"create": True, "spec": spec},
                                     "operator": {"extraArgs": flags}})
    log = _ensure_operator(site, "site", NAMESPACE, "incisive-node")
    print(f"  {site.name}: incisive-node in {NAMESPACE} with DataNode radiology; its operator "
          f"runs with the chart's ServiceAccount, log: {log}")


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
