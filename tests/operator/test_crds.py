"""The CRDs are generated from the models, and the apiserver itself rejects bad manifests."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client
from kubernetes.client.rest import ApiException

from incisive_operator.api import GROUP, crdgen
from incisive_operator.testbed import Cluster

SAMPLES = Path(__file__).resolve().parents[2] / "crds" / "samples"


def test_crds_directory_matches_the_models() -> None:
    assert crdgen.stale(SAMPLES.parent) == [], "run `incisive crds generate`"


def test_printer_columns_read_conditions_by_type() -> None:
    for resource in crdgen.KINDS:
        columns = crdgen.crd(resource)["spec"]["versions"][0]["additionalPrinterColumns"]
        paths = [c["jsonPath"] for c in columns]
        assert f'.status.conditions[?(@.type=="{resource.summary_condition}")].status' in paths
        assert not any("[-1]" in p for p in paths)


def _sample(kind: str) -> dict[str, Any]:
    for path in SAMPLES.glob("*.yaml"):
        for document in yaml.safe_load_all(path.read_text()):
            if document and document["kind"] == kind:
                return document
    raise LookupError(kind)


def _set(document: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    changed = copy.deepcopy(document)
    node = changed
    keys = path.split(".")
    for key in keys[:-1]:
        node = node.setdefault(key, {})
    if value is _DELETE:
        node.pop(keys[-1], None)
    else:
        node[keys[-1]] = value
    return changed


_DELETE = object()
DATANODE = {
    "apiVersion": f"{GROUP}/v1alpha1", "kind": "DataNode", "metadata": {"name": "dn"},
    "spec": {},
}
TRAINING = {
    "apiVersion": f"{GROUP}/v1alpha1", "kind": "TrainingJob", "metadata": {"name": "tj"},
    "spec": {"app": {"reference": "chest-xray-classifier", "digest": "sha256:" + "a" * 64},
             "purpose": "federated-training"},
}
HPC = {
    "apiVersion": f"{GROUP}/v1alpha1", "kind": "HPCWorkload", "metadata": {"name": "hpc"},
    "spec": {"image": "registry.example/seg:1", "tenant": "uni-pisa"},
}
SITE = {
    "apiVersion": f"{GROUP}/v1alpha1", "kind": "FederatedSite", "metadata": {"name": "site-x"},
    "spec": {"country": "IT", "bootstrapTokenId": "abcdef"},
}

# (manifest, text the apiserver's message must contain)
INVALID = [
    (_set(DATANODE, "spec.ingest.dicom.aeTitle", "lower case"), "spec.ingest.dicom.aeTitle"),
    (_set(DATANODE, "spec.ingest.dicom.aeTitle", "A" * 17), "spec.ingest.dicom.aeTitle"),
    (_set(DATANODE, "spec.ingest.dicom.port", 80), "spec.ingest.dicom.port"),
    (_set(DATANODE, "spec.ingest.dicomweb.port", 11112), "spec.ingest.dicomweb.port"),
    (_set(DATANODE, "spec.deidentification.options", ["KeepEverything"]),
     "spec.deidentification.options"),
    (_set(DATANODE, "spec.policy.workApproval", "Sometimes"), "spec.policy.workApproval"),
    (_set(DATANODE, "spec.policy.allowedPurposes", ["Federated Training"]),
     "spec.policy.allowedPurposes"),
    (_set(DATANODE, "spec.hub", {"endpoint": "http://hub:6443", "siteName": "a",
                                 "bootstrapSecretRef": {"name": "b"}}), "spec.hub.endpoint"),
    (_set(TRAINING, "spec.rounds", 0), "spec.rounds"),
    (_set(TRAINING, "spec.minSites", 0), "spec.minSites"),
    (_set(TRAINING, "spec.strategy", {"name": "FedProx"}), "spec.strategy.parameters"),
    (_set(TRAINING, "spec.strategy", {"name": "FedSGD"}), "spec.strategy.name"),
    (_set(TRAINING, "spec.app.digest", "md5:abc"), "spec.app.digest"),
    (_set(TRAINING, "spec.purpose", _DELETE), "spec.purpose"),
    (_set(HPC, "spec.pipeline", "lung-seg"), "set exactly one of image and pipeline"),
    (_set(HPC, "spec.image", _DELETE), "set exactly one of image and pipeline"),
    (_set(HPC, "spec.gpus", {"model": "NVIDIA-H100-80GB-HBM3"}), "spec.gpus.model"),
    (_set(HPC, "spec.timeLimit", "2 hours"), "spec.timeLimit"),
    (_set(HPC, "spec.backend", "lsf"), "spec.backend"),
    (_set(HPC, "spec.tenant", _DELETE), "spec.tenant"),
    (_set(SITE, "spec.country", "Italy"), "spec.country"),
    (_set(SITE, "spec.bootstrapTokenId", "ABC"), "spec.bootstrapTokenId"),
]


def _create(cluster: Cluster, namespace: str, manifest: dict[str, Any],
            dry_run: bool = True) -> dict[str, Any]:
    objects = client.CustomObjectsApi(cluster.api_client())
    group, version = manifest["apiVersion"].split("/")
    plural = next(r.plural for r in crdgen.KINDS if r.kind == manifest["kind"])
    kwargs = {"dry_run": "All"} if dry_run else {}
    if manifest["kind"] == "FederatedSite":
        return objects.create_cluster_custom_object(group, version, plural, manifest, **kwargs)
    return objects.create_namespaced_custom_object(group, version, namespace, plural, manifest,
                                                   **kwargs)


@pytest.mark.cluster
@pytest.mark.parametrize(("manifest", "names"), INVALID,
                         ids=[f"{m['kind']}-{n}" for m, n in INVALID])
def test_the_apiserver_rejects_invalid_manifests_naming_the_field(
    crds_on_hub: Cluster, namespace: str, manifest: dict[str, Any], names: str
) -> None:
    with pytest.raises(ApiException) as rejected:
        _create(crds_on_hub, namespace, manifest)
    assert rejected.value.status == 422, rejected.value.body
    assert names in rejected.value.body


@pytest.mark.cluster
@pytest.mark.parametrize("manifest", [DATANODE, TRAINING, HPC, SITE],
                         ids=lambda m: m["kind"])
def test_minimal_manifests_are_accepted_and_defaulted(
    crds_on_hub: Cluster, namespace: str, manifest: dict[str, Any]
) -> None:
    created = _create(crds_on_hub, namespace, manifest)
    if manifest["kind"] == "DataNode":
        assert created["spec"]["ingest"]["dicom"]["port"] == 11112
        assert created["spec"]["policy"]["workApproval"] == "Manual"
    if manifest["kind"] == "TrainingJob":
        assert created["spec"]["strategy"]["name"] == "FedAvg"
        assert created["spec"]["rounds"] == 3


@pytest.mark.cluster
def test_site_name_is_immutable_once_set(crds_on_hub: Cluster, namespace: str) -> None:
    hub = {"endpoint": "https://127.0.0.1:6443", "siteName": "site-a",
           "bootstrapSecretRef": {"name": "bootstrap"}}
    created = _create(crds_on_hub, namespace, _set(DATANODE, "spec.hub", hub), dry_run=False)
    objects = client.CustomObjectsApi(crds_on_hub.api_client())
    created["spec"]["hub"]["siteName"] = "site-b"
    with pytest.raises(ApiException) as rejected:
        objects.replace_namespaced_custom_object(GROUP, "v1alpha1", namespace, "datanodes",
                                                 "dn", created)
    assert rejected.value.status == 422
    assert "hub.siteName cannot change" in rejected.value.body


@pytest.mark.cluster
def test_training_spec_is_immutable_after_start(crds_on_hub: Cluster, namespace: str) -> None:
    objects = client.CustomObjectsApi(crds_on_hub.api_client())
    _create(crds_on_hub, namespace, TRAINING, dry_run=False)
    objects.patch_namespaced_custom_object_status(
        GROUP, "v1alpha1", namespace, "trainingjobs", "tj",
        {"status": {"startTime": "2026-01-01T00:00:00Z"}},
    )
    with pytest.raises(ApiException) as rejected:
        objects.patch_namespaced_custom_object(GROUP, "v1alpha1", namespace, "trainingjobs",
                                               "tj", {"spec": {"rounds": 9}})
    assert rejected.value.status == 422
    assert "immutable once the job has started" in rejected.value.body
