"""The children a DataNode wants on the hospital's cluster: the appliance and its fences.

Pure functions from a DataNode to manifests; the reconciler applies them with server-side
apply, so applying the same desired state twice (or after a restart) changes nothing.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
from typing import Any
from urllib.parse import urlsplit

from ..api.v1alpha1.datanode import DataNodeSpec
from ..naming import DATANODE_LABEL, MANAGED_BY

DATA_MOUNT = "/var/lib/incisive"
CONFIG_MOUNT = "/etc/incisive"
Manifest = dict[str, Any]
# PS3.15 option names in the DataNode -> `incisive-node serve --option` names.
SERVE_OPTIONS = {
    "RetainLongitudinalTemporalInformationModifiedDates": "retain-longitudinal-modified-dates",
    "RetainPatientCharacteristics": "retain-patient-characteristics",
    "RetainDeviceIdentity": "retain-device-identity",
    "CleanDescriptors": "clean-descriptors",
    "RetainSafePrivate": "retain-safe-private",
}


def names(datanode: str) -> dict[str, str]:
    return {
        "appliance": f"{datanode}-appliance",
        "config": f"{datanode}-appliance-config",
        "data": f"{datanode}-data",
        "policy": f"{datanode}-appliance",
    }


def labels(datanode: str) -> dict[str, str]:
    return {
        "app.kubernetes.io/name": "incisive-node",
        "app.kubernetes.io/instance": datanode,
        "app.kubernetes.io/component": "appliance",
        DATANODE_LABEL: datanode,
        **MANAGED_BY,
    }


def selector(datanode: str) -> dict[str, str]:
    return {"app.kubernetes.io/instance": datanode, DATANODE_LABEL: datanode}


def _meta(name: str, namespace: str, datanode: str) -> dict[str, Any]:
    return {"name": name, "namespace": namespace, "labels": labels(datanode)}


def appliance_config(spec: DataNodeSpec) -> dict[str, Any]:
    """What the appliance reads at start: no secrets, only references to them."""
    return {
        "ingest": spec.ingest.model_dump(by_alias=True, mode="json"),
        "deidentification": spec.deidentification.model_dump(by_alias=True, mode="json"),
        "policy": spec.policy.model_dump(by_alias=True, mode="json"),
        "hub": spec.hub.model_dump(by_alias=True, mode="json") if spec.hub else None,
        "storage": {"path": DATA_MOUNT},
    }


def serve_args(spec: DataNodeSpec) -> list[str]:
    """The appliance's command line: `incisive-node serve`, listening on the pod's address
    (the Service and the NetworkPolicy fence it), metrics and health on the HTTP port."""
    dicom = spec.ingest.dicom
    args = ["serve", "--store", DATA_MOUNT, "--host", "0.0.0.0", "--listen-external",  # noqa: S104
            "--dicom-port", str(dicom.port), "--http-port", str(spec.ingest.dicomweb.port),
            "--ae-title", dicom.ae_title]
    for aet in dicom.allowed_calling_ae_titles:
        args += ["--allow-aet", aet]
    chosen = set(spec.deidentification.options)
    for option, flag in SERVE_OPTIONS.items():
        if option in chosen:
            args += ["--option", flag]
    if "RetainLongitudinalTemporalInformationModifiedDates" not in chosen:
        args += ["--without-option", SERVE_OPTIONS[
            "RetainLongitudinalTemporalInformationModifiedDates"]]
    if spec.deidentification.vault:
        args += ["--vault-addr", spec.deidentification.vault.address,
                 "--project", spec.deidentification.vault.project]
    return args


def desired(name: str, namespace: str, spec: DataNodeSpec) -> list[Manifest]:
    n = names(name)
    config_text = json.dumps(appliance_config(spec), indent=2, sort_keys=True)
    config_hash = hashlib.sha256(config_text.encode()).hexdigest()[:16]
    ports = [{"name": "dicom", "port": spec.ingest.dicom.port, "protocol": "TCP"},
             # DICOMweb, FHIR, /metrics and /healthz share the appliance's HTTP port.
             {"name": "http", "port": spec.ingest.dicomweb.port, "protocol": "TCP"}]
    return [
        {
            "apiVersion": "v1", "kind": "ServiceAccount", "metadata": _meta(n["appliance"],
                                                                            namespace, name),
            # The appliance never talks to its own cluster's API.
            "automountServiceAccountToken": False,
        },
        {
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": _meta(n["config"], namespace, name),
            "data": {"config.json": config_text},
        },
        _pvc(n["data"], namespace, name, spec),
        {
            "apiVersion": "v1", "kind": "Service", "metadata": _meta(n["appliance"], namespace,
                                                                     name),
            "spec": {
                "selector": selector(name),
                "ports": [{**p, "targetPort": p["name"]} for p in ports],
            },
        },
        _statefulset(name, namespace, spec, ports, config_hash),
        _network_policy(name, namespace, spec),
    ]


def _pvc(pvc_name: str, namespace: str, datanode: str, spec: DataNodeSpec) -> Manifest:
    claim: dict[str, Any] = {
        "accessModes": ["ReadWriteOnce"],
        "resources": {"requests": {"storage": str(spec.storage.size)}},
    }
    if spec.storage.storage_class_name:
        claim["storageClassName"] = spec.storage.storage_class_name
    return {"apiVersion": "v1", "kind": "PersistentVolumeClaim",
            "metadata": _meta(pvc_name, namespace, datanode), "spec": claim}


def _statefulset(
    name: str, namespace: str, spec: DataNodeSpec, ports: list[dict[str, Any]], config_hash: str
) -> Manifest:
    n = names(name)
    container: dict[str, Any] = {
        "name": "appliance",
        "image": spec.image,
        "args": serve_args(spec),
        "ports": [{"name": p["name"], "containerPort": p["port"], "protocol": "TCP"}
                  for p in ports],
        "readinessProbe": {"httpGet": {"path": "/healthz", "port": "http"},
                           "periodSeconds": 10},
        "livenessProbe": {"httpGet": {"path": "/healthz", "port": "http"},
                          "periodSeconds": 20, "failureThreshold": 6},
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "capabilities": {"drop": ["ALL"]},
        },
        "volumeMounts": [
            {"name": "config", "mountPath": CONFIG_MOUNT, "readOnly": True},
            {"name": "data", "mountPath": DATA_MOUNT},
        ],
    }
    vault = spec.deidentification.vault
    if vault:
        container["env"] = [{"name": "VAULT_TOKEN", "valueFrom": {"secretKeyRef": {
            "name": vault.token_secret_ref.name, "key": vault.token_secret_ref.key}}}]
    resources = spec.resources.model_dump(by_alias=True, mode="json", exclude_defaults=True)
    if resources:
        container["resources"] = {k: {r: str(q) for r, q in v.items()}
                                  for k, v in resources.items()}
    return {
        "apiVersion": "apps/v1", "kind": "StatefulSet",
        "metadata": _meta(n["appliance"], namespace, name),
        "spec": {
            "replicas": 1,
            "serviceName": n["appliance"],
            "selector": {"matchLabels": selector(name)},
            "template": {
                "metadata": {
                    "labels": labels(name),
                    # A changed configuration rolls the appliance.
                    "annotations": {"incisive-project.eu/config-hash": config_hash},
                },
                "spec": {
                    "serviceAccountName": n["appliance"],
                    "automountServiceAccountToken": False,
                    "securityContext": {
                        "runAsNonRoot": True, "runAsUser": 10001, "fsGroup": 10001,
                        "seccompProfile": {"type": "RuntimeDefault"},
                    },
                    "containers": [container],
                    "volumes": [
                        {"name": "config", "configMap": {"name": n["config"]}},
                        {"name": "data", "persistentVolumeClaim": {"claimName": n["data"]}},
                    ],
                },
            },
        },
    }


def _network_policy(name: str, namespace: str, spec: DataNodeSpec) -> Manifest:
    """Deny by default; allow PACS → ingest ports, metrics scrapes, DNS, and egress to the hub
    and to Vault."""
    http_port = spec.ingest.dicomweb.port
    ingest_ports = [{"protocol": "TCP", "port": spec.ingest.dicom.port}]
    if spec.ingest.dicomweb.enabled:
        ingest_ports.append({"protocol": "TCP", "port": http_port})
    ingress: list[dict[str, Any]] = [
        # Metrics scrapes, health checks and the site operator's read of /aggregates, from
        # the namespace (the HTTP port serves all three).
        {"from": [{"podSelector": {}}], "ports": [{"protocol": "TCP", "port": http_port}]},
    ]
    if spec.ingest.pacs_cidrs:
        ingress.append({
            "from": [{"ipBlock": {"cidr": cidr}} for cidr in spec.ingest.pacs_cidrs],
            "ports": ingest_ports,
        })
    egress: list[dict[str, Any]] = [{
        "to": [{"namespaceSelector": {}, "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}}}],
        "ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}],
    }]
    if spec.hub:
        egress.append(_endpoint_egress(spec.hub.endpoint))
    if spec.deidentification.vault:
        egress.append(_endpoint_egress(spec.deidentification.vault.address))
    return {
        "apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
        "metadata": _meta(names(name)["policy"], namespace, name),
        "spec": {
            "podSelector": {"matchLabels": selector(name)},
            "policyTypes": ["Ingress", "Egress"],
            "ingress": ingress,
            "egress": egress,
        },
    }


def _endpoint_egress(endpoint: str) -> dict[str, Any]:
    parts = urlsplit(endpoint)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    rule: dict[str, Any] = {"ports": [{"protocol": "TCP", "port": port}]}
    try:
        address = ipaddress.ip_address(parts.hostname or "")
    except ValueError:
        return rule  # a host name: NetworkPolicy cannot name hosts, so fence by port only
    rule["to"] = [{"ipBlock": {"cidr": f"{address}/{address.max_prefixlen}"}}]
    return rule
