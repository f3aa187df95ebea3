"""A TrainingJob trains for real across the testbed's hub and two hospital sites.

What stands in for what: the hub and the two sites are real Kubernetes control planes
(the testbed); each runs our operator as a real process. Pods on kwok nodes run no
processes, so the operators' local FL runtime runs the real Flower processes on loopback
instead: the hub operator a `flower-superlink` per job on 127.<block>.200.100 (TLS,
--database, SuperNode authentication), each site operator a `flower-supernode` on its own
127.<block>.200.<n>, dialling out to the hub with a key made at the site and running only
the app it verified. The sites train on synthetic, non-IID images (site index 0 and 1).
Killing a site means SIGKILL to its operator and its SuperNode, as a power cut would.

The federated site names (fl-a, fl-b) and the DataNode namespace differ from
test_enrolment's, so the two modules never share objects.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import math
import os
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from kubernetes import client
from kubernetes.client.rest import ApiException

from incisive_node.fl.processes import session_alive, stop_session
from incisive_node.fl.signing import public_key_base64
from incisive_operator.api import GROUP
from incisive_operator.api.v1alpha1.trainingjob import TrainingJobSpec
from incisive_operator.fl import apps, fleet
from incisive_operator.fl import settings as fl_settings
from incisive_operator.fl.local import RECORD, LocalRuntime
from incisive_operator.fl.progress import fold, summary
from incisive_operator.fl.run_config import InvalidTrainingSpec, training_config
from incisive_operator.fl.settings import DataSource, FlSettings
from incisive_operator.hub import registration
from incisive_operator.testbed import Cluster, Toolchain

from ..conftest import TEST_BLOCK, Federation
from .conftest import apply_crds
from .processes import OperatorProcess, operator_process
from .test_datanode import condition, wait_for

NODE_NAMESPACE = "fl-radiology"
SITES = {"fl-a": "site-a", "fl-b": "site-b"}  # federated site name -> testbed cluster
FL_BLOCK = f"127.{TEST_BLOCK}.200"
HUB_HOST = f"{FL_BLOCK}.100"


# ---- units: no cluster --------------------------------------------------------------


def _spec(**overrides: Any) -> TrainingJobSpec:
    base: dict[str, Any] = {"app": {"reference": "x", "digest": "sha256:" + "0" * 64},
                            "purpose": "federated-training"}
    return TrainingJobSpec.model_validate({**base, **overrides})


def test_spec_maps_onto_the_run_config() -> None:
    config = training_config(_spec(
        rounds=4, minSites=3, localEpochs=2, roundTimeoutSeconds=30,
        strategy={"name": "FedProx", "parameters": {"proximalMu": 0.5, "batchSize": 16}},
        privacy={"differentialPrivacy": {"enabled": True, "clippingNorm": 2.0,
                                         "noiseMultiplier": 1.0}}))
    assert (config.strategy, config.rounds, config.min_sites, config.local_epochs) == (
        "fedprox", 4, 3, 2)
    assert (config.proximal_mu, config.batch_size, config.round_timeout_s) == (0.5, 16, 30.0)
    assert (config.dp, config.dp_clip, config.dp_sensitivity) == ("local", 2.0, 2.0)
    # Gaussian mechanism: noise std = sensitivity * sqrt(2 ln(1.25/delta)) / epsilon, which
    # the mapping makes equal to noiseMultiplier * clippingNorm.
    std = config.dp_sensitivity * math.sqrt(2 * math.log(1.25 / config.dp_delta))
    assert std / config.dp_epsilon == pytest.approx(2.0)


def test_secure_aggregation_maps_onto_the_run_config() -> None:
    config = training_config(_spec(
        minSites=3, privacy={"secureAggregation": True,
                             "differentialPrivacy": {"enabled": True}},
        strategy={"name": "FedProx", "parameters": {"proximalMu": 0.1}}))
    assert (config.secure_aggregation, config.strategy, config.dp) == (True, "fedprox", "local")
    assert not training_config(_spec()).secure_aggregation


@pytest.mark.parametrize(("overrides", "words"), [
    ({"strategy": {"name": "FedAvg", "parameters": {"momentum": 0.9}}}, "momentum"),
    ({"strategy": {"name": "FedAvg", "fractionFit": 0.5}}, "fractionFit"),
    ({"privacy": {"secureAggregation": True}, "minSites": 3,
      "strategy": {"name": "FedAdam"}}, "secure aggregation works with strategy fedavg"),
    ({"privacy": {"secureAggregation": True}, "minSites": 1}, "min_sites >= 2"),
    ({"privacy": {"differentialPrivacy": {"enabled": True, "noiseMultiplier": 0}}},
     "noiseMultiplier"),
])
def test_what_the_run_cannot_do_is_refused_by_name(overrides: dict[str, Any],
                                                   words: str) -> None:
    with pytest.raises(InvalidTrainingSpec, match=words):
        training_config(_spec(**overrides))


def test_events_fold_into_rounds_sites_and_outcome() -> None:
    events = [
        {"event": "started"},
        {"event": "round", "round": 0, "eval_loss": 0.7, "eval_accuracy": 0.5,
         "eval_examples": 40, "sites": ["fl-b", "fl-a"]},
        {"event": "site-dropped", "round": 2, "site": "node-42", "reason": "no reply in time"},
        {"event": "round", "round": 1, "eval_loss": 0.5, "eval_accuracy": 0.8,
         "eval_examples": 40, "train_loss": 0.55, "sites": ["fl-a"]},
        {"event": "completed", "model_sha256": "ab"},
    ]
    progress = fold(events, {42: "fl-b"})
    assert [r["round"] for r in progress.rounds] == [0, 1]
    assert progress.rounds[0]["sites"] == ["fl-a", "fl-b"]
    assert progress.rounds[1] == {"round": 1, "loss": 0.5, "accuracy": 0.8, "examples": 40,
                                  "trainLoss": 0.55, "sites": ["fl-a"]}
    assert progress.participating == ["fl-a", "fl-b"]
    assert progress.dropped == {"fl-b": "dropped in round 2: no reply in time"}
    assert progress.current_round == 1 and progress.finished
    assert "final accuracy 0.800" in summary(progress) and "dropped: fl-b" in summary(progress)
    assert fold([]).current_round is None and not fold(events[:2]).finished


def test_site_data_and_host_settings_are_checked() -> None:
    assert DataSource.parse("synthetic:1/3", samples=50).node_config(2) == {
        "data": "synthetic", "site-index": 1, "site-count": 3, "samples": 50,
        "torch-threads": 2}
    store = DataSource.parse("store:/var/lib/incisive", labels="labels:of",
                             consent="consent:ok")
    assert store.node_config(1)["consent"] == "consent:ok"
    registry = DataSource.parse("store:/s", labels="annotation", consent="registry")
    assert registry.node_config(1) == {"data": "store", "store-dir": "/s", "labels": "annotation",
                                       "consent": "registry", "torch-threads": 1}
    with pytest.raises(ValueError, match="registry or module:function"):
        DataSource.parse("store:/s", labels="annotation", consent="everyone")
    for bad, kwargs in (("synthetic:3/2", {}), ("store:/x", {}), ("s3://bucket", {}),
                        ("store:/x", {"labels": "no-colon"})):
        with pytest.raises(ValueError):
            DataSource.parse(bad, **kwargs)
    with pytest.raises(ValueError, match=r"127\.0\.0\.0/8"):
        FlSettings(Path("/tmp"), "10.0.0.1")
    # The operator's flags: a site must say what it trains on; no state folder, no training.
    from incisive_operator import cli

    assert cli.main(["operator", "run", "--mode", "site", "--fl-state-dir", "/tmp/x"]) == 2
    args = argparse.Namespace(mode="site", fl_state_dir=None)
    assert fl_settings.from_args(args) is None


def test_the_jobs_data_query_becomes_the_sites_node_config() -> None:
    assert fl_settings.data_query_config({}) == {}
    query = {"modalities": ["ct", "MR"], "bodyParts": ["CHEST"], "labels": ["tumour"]}
    assert fl_settings.data_query_config(query) == {"modalities": "CT,MR", "body-parts": "CHEST"}
    # Anything else could not travel in Flower's node config (nor be a header's value).
    with pytest.raises(ValueError, match=r"dataQuery\.bodyParts: 'CHEST\" x=1' is not a DICOM"):
        fl_settings.data_query_config({"bodyParts": ['CHEST" x=1']})


def test_app_checks_on_both_sides(tmp_path: Path) -> None:
    publisher, stranger = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    app = apps.publish(publisher, apps.DEFAULT_REFERENCE)
    trusted = [public_key_base64(publisher.public_key())]
    # Deterministic: what the hub and each site build is what the publisher signed.
    assert apps.build(app["reference"], tmp_path).sha256 == app["digest"].removeprefix("sha256:")
    assert apps.check_digest(app["reference"], app["digest"]) == app["digest"][7:]
    assert apps.verify_for_site(app["reference"], app["digest"], app["signature"],
                                trusted) == app["digest"][7:]

    def refused(*args: Any) -> str:
        with pytest.raises(apps.AppRefused) as error:
            apps.verify_for_site(*args)
        return error.value.reason

    forged = apps.publish(stranger, apps.DEFAULT_REFERENCE)["signature"]
    assert refused(app["reference"], app["digest"], forged, trusted) == "AppNotTrusted"
    assert refused(app["reference"], app["digest"], None, trusted) == "AppNotSigned"
    assert refused(app["reference"], app["digest"], app["signature"], []) == "AppNotTrusted"
    assert refused(app["reference"], app["digest"], app["signature"], ["nope"]) == \
        "InvalidTrustedKey"
    assert refused("someone/else:1", app["digest"], app["signature"], trusted) == "UnknownApp"
    assert refused(app["reference"], "sha256:" + "1" * 64, app["signature"], trusted) == \
        "AppDigestMismatch"
    with pytest.raises(apps.AppRefused) as mismatch:
        apps.check_digest(app["reference"], "sha256:" + "1" * 64)
    assert mismatch.value.reason == "AppDigestMismatch"


def test_fleet_annotation_round_trips() -> None:
    told = fleet.Fleet(address="127.0.0.1:9093", ca_cert="PEM", node_id=7)
    item = {"metadata": {"annotations": fleet.annotation(told)}}
    assert fleet.read(item) == told
    assert fleet.read({"metadata": {"annotations": {fleet.ANNOTATION: "{not json"}}}) is None
    assert fleet.read({"metadata": {}}) is None


def test_publisher_cli_makes_a_key_and_a_signed_app(tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    from incisive_operator import cli

    key = tmp_path / "publisher.key"
    assert cli.main(["fl", "keygen", "--out", str(key)]) == 0
    public = capsys.readouterr().out.strip().rsplit(" ", 1)[-1]
    assert key.stat().st_mode & 0o777 == 0o600
    assert cli.main(["fl", "keygen", "--out", str(key)]) == 2  # never overwrites a key
    capsys.readouterr()
    assert cli.main(["fl", "publish", "--key", str(key)]) == 0
    app = yaml.safe_load(capsys.readouterr().out)["app"]
    assert app["reference"] == apps.DEFAULT_REFERENCE
    assert apps.verify_for_site(app["reference"], app["digest"], app["signature"],
                                [public]) == app["digest"].removeprefix("sha256:")
    assert cli.main(["fl", "publish", "--key", str(tmp_path / "missing.key")]) == 2


# ---- end to end on the testbed -------------------------------------------------------


@pytest.fixture(scope="module")
def publisher() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


@pytest.fixture(scope="module")
def training_federation(
    federation: Federation, tools: Toolchain, tmp_path_factory: pytest.TempPathFactory,
    publisher: Ed25519PrivateKey,
) -> Iterator[dict[str, Any]]:
    """Hub operator and two site operators, all with the local FL runtime; both sites
    enrolled (auto-approved) and trusting `publisher`'s apps."""
    root = tmp_path_factory.mktemp("fl-operators")
    for member in federation.clusters:
        apply_crds(member, tools)
    hub_dir = root / "hub-state"
    hub_flags = ["--fl-state-dir", str(hub_dir), "--fl-host", HUB_HOST]
    hub_api = federation.hub.api_client()
    site_dirs = {name: root / f"{name}-state" for name in SITES}
    with contextlib.ExitStack() as stack:
        hub_op = stack.enter_context(operator_process(
            "hub", federation.hub.kubeconfig, [], root / "hub.log", *hub_flags))
        stack.callback(_stop_everything, [hub_dir, *site_dirs.values()])
        site_ops: dict[str, OperatorProcess] = {}
        for index, (name, cluster) in enumerate(SITES.items()):
            reg = registration.register_site(hub_api, name, "IT", auto_approve=True)
            stack.callback(_cleanup_site, federation, name, cluster)
            flags = ["--fl-state-dir", str(site_dirs[name]), "--fl-host",
                     f"{FL_BLOCK}.{index + 1}", "--fl-data", f"synthetic:{index}/2",
                     "--fl-samples", "200"]
            site_ops[name] = stack.enter_context(operator_process(
                "site", federation.sites[cluster].kubeconfig, [NODE_NAMESPACE],
                root / f"{name}.log", *flags))
            _create_datanode(federation.sites[cluster], federation.hub, reg, publisher,
                             purposes=["federated-training", "tumour-research"]
                             if name == "fl-a" else ["federated-training"])
        for name in SITES:
            wait_for(lambda n=name: (c := condition(_federated_site(federation.hub, n), "Ready"))
                     and c["status"] == "True", timeout=120, what=f"{name} Ready")
        yield {"hub": hub_op, "sites": site_ops, "hub_dir": hub_dir, "site_dirs": site_dirs,
               "logs": root}


def _create_datanode(site: Cluster, hub: Cluster, reg: registration.Registration,
                     publisher: Ed25519PrivateKey, purposes: list[str]) -> None:
    core = client.CoreV1Api(site.api_client())
    with contextlib.suppress(ApiException):
        core.create_namespace(client.V1Namespace(
            metadata=client.V1ObjectMeta(name=NODE_NAMESPACE)))
    core.create_namespaced_secret(NODE_NAMESPACE, reg.site_secret())
    client.CustomObjectsApi(site.api_client()).create_namespaced_custom_object(
        GROUP, "v1alpha1", NODE_NAMESPACE, "datanodes", {
            "apiVersion": f"{GROUP}/v1alpha1", "kind": "DataNode",
            "metadata": {"name": "radiology"},
            "spec": {"hub": {"endpoint": hub.server, "siteName": reg.site,
                             "bootstrapSecretRef": {"name": "hub-bootstrap"}},
                     "deidentification": {"vault": {
                         "address": "https://vault.hospital.example:8200",
                         "project": "chest-xray", "tokenSecretRef": {"name": "vault"}}},
                     "policy": {"allowedPurposes": purposes, "workApproval": "Automatic",
                                "trustedAppSigningKeys": [
                                    public_key_base64(publisher.public_key())]}},
        })


def _cleanup_site(federation: Federation, name: str, cluster: str) -> None:
    objects = client.CustomObjectsApi(federation.hub.api_client())
    with contextlib.suppress(ApiException):
        objects.delete_cluster_custom_object(GROUP, "v1alpha1", "federatedsites", name)
    with contextlib.suppress(ApiException):
        client.CoreV1Api(federation.sites[cluster].api_client()).delete_namespace(
            NODE_NAMESPACE)


def _stop_everything(state_dirs: list[Path]) -> None:
    """Whatever Flower process a failed test left behind (each leads its own session)."""
    for state in state_dirs:
        for record in state.rglob(RECORD):
            pid = int(json.loads(record.read_text())["pid"])
            if session_alive(pid, str(record.parent)):
                stop_session(pid)


def _federated_site(hub: Cluster, name: str) -> dict[str, Any]:
    return client.CustomObjectsApi(hub.api_client()).get_cluster_custom_object(
        GROUP, "v1alpha1", "federatedsites", name)


def _job(hub: Cluster, namespace: str, name: str) -> dict[str, Any]:
    return client.CustomObjectsApi(hub.api_client()).get_namespaced_custom_object(
        GROUP, "v1alpha1", namespace, "trainingjobs", name)


def _create_job(hub: Cluster, namespace: str, name: str, app: dict[str, str],
                **spec: Any) -> dict[str, Any]:
    return client.CustomObjectsApi(hub.api_client()).create_namespaced_custom_object(
        GROUP, "v1alpha1", namespace, "trainingjobs", {
            "apiVersion": f"{GROUP}/v1alpha1", "kind": "TrainingJob",
            "metadata": {"name": name},
            "spec": {"app": app, "purpose": "federated-training", **spec}})


def _workitems(hub: Cluster, job_uid: str) -> list[dict[str, Any]]:
    return client.CustomObjectsApi(hub.api_client()).list_cluster_custom_object(
        GROUP, "v1alpha1", "workitems",
        label_selector=f"{GROUP}/job-uid={job_uid}")["items"]


def _finished(hub: Cluster, namespace: str, name: str, timeout: float) -> dict[str, Any]:
    return wait_for(lambda: (j := _job(hub, namespace, name))
                    and (c := condition(j, "Succeeded")) and c["status"] != "Unknown" and j,
                    timeout=timeout, what=f"{name} finished")


def _site(job: dict[str, Any], site: str) -> dict[str, Any]:
    return next(s for s in job["status"]["sites"] if s["site"] == site)


def _kill_site(ops: dict[str, Any], name: str) -> None:
    """SIGKILL the site's operator and its SuperNodes: the whole hospital goes dark."""
    ops["sites"][name].kill()
    for record in ops["site_dirs"][name].rglob(RECORD):
        pid = int(json.loads(record.read_text())["pid"])
        if session_alive(pid, str(record.parent)):
            os.killpg(pid, signal.SIGKILL)


@pytest.mark.cluster
def test_declining_sites_show_their_reasons(
    federation: Federation, training_federation: dict[str, Any], namespace: str,
    publisher: Ed25519PrivateKey,
) -> None:
    hub = federation.hub
    app = apps.publish(publisher, apps.DEFAULT_REFERENCE)
    # fl-b's policy does not allow this purpose; fl-a's does.
    uids = [_create_job(hub, namespace, "other-purpose", app, purpose="tumour-research",
                        minSites=2)["metadata"]["uid"]]
    # A bundle signed by a key neither site trusts.
    forged = apps.publish(Ed25519PrivateKey.generate(), apps.DEFAULT_REFERENCE)
    uids.append(_create_job(hub, namespace, "untrusted", forged, minSites=1)["metadata"]["uid"])

    job = _finished(hub, namespace, "other-purpose", 90)
    assert _site(job, "fl-b")["reason"] == "PurposeNotAllowed"
    assert "tumour-research" in _site(job, "fl-b")["message"]
    assert _site(job, "fl-a")["decision"] == "Accepted"
    failed = condition(job, "Succeeded")
    assert (failed["status"], failed["reason"]) == ("False", "InsufficientSites")
    assert "fl-b: PurposeNotAllowed" in failed["message"]

    job = _finished(hub, namespace, "untrusted", 90)
    for site in SITES:
        assert _site(job, site)["decision"] == "Declined"
        assert _site(job, site)["reason"] == "AppNotTrusted"
        assert "not trusted" in _site(job, site)["message"]
    assert "fl-a: AppNotTrusted" in condition(job, "Succeeded")["message"]
    # Nothing ran: no SuperLink was ever started for either job, and fl-a, which accepted
    # the first, is told it is over.
    for uid in uids:
        assert not (training_federation["hub_dir"] / "hub" / "jobs" / uid).exists()
    wait_for(lambda: all((w.get("status") or {}).get("training") == "Stopped"
                         for w in _workitems(hub, uids[0])
                         if (w.get("status") or {}).get("decision") == "Accepted"),
             timeout=30, what="fl-a stopped waiting for a run that never starts")


@pytest.mark.cluster
def test_training_job_trains_across_sites_and_survives_a_hub_operator_restart(
    federation: Federation, training_federation: dict[str, Any], namespace: str,
    publisher: Ed25519PrivateKey,
) -> None:
    hub = federation.hub
    app = apps.publish(publisher, apps.DEFAULT_REFERENCE)
    uid = _create_job(hub, namespace, "chest", app, minSites=2, rounds=3, localEpochs=3,
                      roundTimeoutSeconds=60)["metadata"]["uid"]

    # Mid-run (a round reported), the hub operator dies and a new one takes over.
    wait_for(lambda: (_job(hub, namespace, "chest").get("status") or {}).get("rounds"),
             timeout=240, what="the first round in the status")
    hub_op = training_federation["hub"]
    hub_op.kill()
    hub_op.start()

    job = _finished(hub, namespace, "chest", 300)
    status = job["status"]
    succeeded = condition(job, "Succeeded")
    assert (succeeded["status"], succeeded["reason"]) == ("True", "Completed"), succeeded
    assert [r["round"] for r in status["rounds"]] == [0, 1, 2, 3]
    accuracy = [r["accuracy"] for r in status["rounds"]]
    assert accuracy[-1] > 0.65, accuracy  # two classes: chance is 0.5
    assert accuracy[-1] > accuracy[0] + 0.1, accuracy
    assert all("trainLoss" in r for r in status["rounds"][1:])
    assert status["currentRound"] == 3
    assert status["participatingSites"] == ["fl-a", "fl-b"]
    assert status["runId"] and status["startTime"] and status["completionTime"]
    for site in SITES:
        assert _site(job, site)["state"] == "Completed"
    # The final model is in the hub's model store, under the hash the status names.
    model = Path(status["model"]["uri"].removeprefix("file://"))
    assert status["model"]["sha256"] == "sha256:" + hashlib.sha256(model.read_bytes()).hexdigest()
    assert model.parent == training_federation["hub_dir"] / "hub" / "models"

    # The job is over: its SuperLink stopped, each site told so and its SuperNode stopped.
    hub_runtime = LocalRuntime(FlSettings(training_federation["hub_dir"], HUB_HOST))
    assert hub_runtime.running_superlink(uid) is None
    items = wait_for(lambda: (i := _workitems(hub, uid)) and all(
        (w.get("status") or {}).get("training") == "Stopped" for w in i) and i,
        timeout=60, what="sites stopped their SuperNodes")
    for item in items:
        told = fleet.read(item)
        assert told is not None and told.phase == "Finished"
        assert item["status"]["supernodePublicKey"].startswith("ecdsa-sha2-nistp384 ")
    for name, state in training_federation["site_dirs"].items():
        site_runtime = LocalRuntime(FlSettings(state, "127.0.0.1"))
        assert site_runtime.running_supernodes(f"{NODE_NAMESPACE}.radiology") == {}, name
        # The private key never left the site: it is only in the site's own state folder.
        assert (state / "site" / f"{NODE_NAMESPACE}.radiology" / "keys" / "supernode_key").is_file()

    client.CustomObjectsApi(hub.api_client()).delete_namespaced_custom_object(
        GROUP, "v1alpha1", namespace, "trainingjobs", "chest")
    wait_for(lambda: not _workitems(hub, uid), what="work items withdrawn with the job")


@pytest.mark.cluster
def test_deleting_a_job_stops_its_superlink_and_the_sites_supernodes(
    federation: Federation, training_federation: dict[str, Any], namespace: str,
    publisher: Ed25519PrivateKey,
) -> None:
    hub = federation.hub
    app = apps.publish(publisher, apps.DEFAULT_REFERENCE)
    uid = _create_job(hub, namespace, "cancelled", app, minSites=2, rounds=50,
                      roundTimeoutSeconds=60)["metadata"]["uid"]
    hub_runtime = LocalRuntime(FlSettings(training_federation["hub_dir"], HUB_HOST))
    site_runtimes = [LocalRuntime(FlSettings(state, "127.0.0.1"))
                     for state in training_federation["site_dirs"].values()]
    datanode = f"{NODE_NAMESPACE}.radiology"
    wait_for(lambda: (c := condition(_job(hub, namespace, "cancelled"), "Succeeded"))
             and c["reason"] == "Training"
             and all(uid in r.running_supernodes(datanode) for r in site_runtimes),
             timeout=120, what="the run under way at both sites")
    assert hub_runtime.running_superlink(uid) is not None

    client.CustomObjectsApi(hub.api_client()).delete_namespaced_custom_object(
        GROUP, "v1alpha1", namespace, "trainingjobs", "cancelled")
    wait_for(lambda: hub_runtime.running_superlink(uid) is None, timeout=60,
             what="the job's SuperLink stopped")
    # The sites see their WorkItems gone at their next poll and stop their SuperNodes.
    wait_for(lambda: all(uid not in r.running_supernodes(datanode) for r in site_runtimes),
             timeout=60, what="the sites' SuperNodes stopped")


@pytest.mark.cluster
def test_a_killed_site_is_dropped_and_the_job_goes_on_or_fails_clearly(
    federation: Federation, training_federation: dict[str, Any], namespace: str,
    publisher: Ed25519PrivateKey,
) -> None:
    hub = federation.hub
    app = apps.publish(publisher, apps.DEFAULT_REFERENCE)
    # Two runs at once on a shared machine: the first round, which starts a ClientApp process
    # per site and run, can take half a minute; a dead site is dropped after a minute. Rounds
    # of a few seconds' training each, and five of them: Flower's own part of a round is
    # about a second now, and the kill must land while both runs still have rounds to go.
    common = {"rounds": 5, "localEpochs": 200, "roundTimeoutSeconds": 60,
              "siteWaitSeconds": 30}
    _create_job(hub, namespace, "tolerant", app, minSites=1, **common)
    strict_uid = _create_job(hub, namespace, "strict", app, minSites=2,
                             **common)["metadata"]["uid"]

    # Both runs have had both sites in a round; then fl-b goes dark.
    for name in ("tolerant", "strict"):
        wait_for(lambda n=name: (r := (_job(hub, namespace, n).get("status") or {})
                                 .get("rounds")) and r[0]["sites"] == ["fl-a", "fl-b"],
                 timeout=240, what=f"{name}: a round with both sites")
    _kill_site(training_federation, "fl-b")
    try:
        # A site killed while it uploads its reply leaves a half-pushed message; the
        # ServerApp's pull of it then waits until Flower expires the dead node (minutes,
        # not roundTimeoutSeconds), hence the long wait.
        strict = _finished(hub, namespace, "strict", 420)
        failed = condition(strict, "Succeeded")
        assert (failed["status"], failed["reason"]) == ("False", "TooFewSites"), failed
        assert "fewer than min_sites=2" in failed["message"]
        assert "fl-b dropped in round" in failed["message"]
        assert _site(strict, "fl-b")["state"] == "Dropped"
        assert strict["status"]["completionTime"]

        tolerant = _finished(hub, namespace, "tolerant", 420)
        succeeded = condition(tolerant, "Succeeded")
        assert (succeeded["status"], succeeded["reason"]) == ("True", "Completed"), succeeded
        rounds = tolerant["status"]["rounds"]
        assert [r["round"] for r in rounds] == [0, 1, 2, 3, 4, 5]
        assert rounds[-1]["sites"] == ["fl-a"]
        assert _site(tolerant, "fl-b")["state"] == "Dropped"
        assert "no reply in time" in _site(tolerant, "fl-b")["stateMessage"]
        assert _site(tolerant, "fl-a")["state"] == "Completed"
        assert "dropped: fl-b" in succeeded["message"]
        assert tolerant["status"]["model"]["sha256"].startswith("sha256:")
        hub_runtime = LocalRuntime(FlSettings(training_federation["hub_dir"], HUB_HOST))
        assert hub_runtime.running_superlink(strict_uid) is None
    finally:
        training_federation["sites"]["fl-b"].start()  # the hospital comes back
