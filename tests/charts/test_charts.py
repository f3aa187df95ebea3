"""What the rendered charts contain: CRDs equal to crds/, Pod Security `restricted`,
RBAC that covers what the operator's code grants to others, fences around the operator."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from incisive_operator.hub import sites

from .conftest import CHARTS, ROOT, Helm, by_kind, one, pod_spec

CRDS = ROOT / "crds"


# --- CRDs --------------------------------------------------------------------------------

def test_crd_chart_ships_crds_unchanged() -> None:
    generated = {p.name: p.read_text() for p in CRDS.glob("*.yaml")}
    shipped = {p.name: p.read_text() for p in (CHARTS / "incisive-crds" / "files").glob("*.yaml")}
    assert generated, "crds/ is empty"
    stale = sorted(n for n in generated.keys() | shipped.keys()
                   if generated.get(n) != shipped.get(n))
    assert not stale, f"incisive-crds/files differs from crds/ in {stale}: run charts/sync.sh"


def test_rendered_crds_equal_crds_but_for_helm_metadata(helm: Helm) -> None:
    rendered = {m["metadata"]["name"]: m for m in helm.template(CHARTS / "incisive-crds")}
    for path in CRDS.glob("*.yaml"):
        source = yaml.safe_load(path.read_text())
        mine = rendered.pop(source["metadata"]["name"])
        assert mine["spec"] == source["spec"]
        assert {k: v for k, v in mine.items() if k != "metadata"} == \
            {k: v for k, v in source.items() if k != "metadata"}
        assert source["metadata"]["labels"].items() <= mine["metadata"]["labels"].items()
        # Uninstalling the chart must not delete every DataNode and, through owner
        # references, the appliances' data volumes.
        assert mine["metadata"]["annotations"] == {"helm.sh/resource-policy": "keep"}
    assert rendered == {}


def test_crds_can_be_released_without_keep(helm: Helm) -> None:
    for crd in helm.template(CHARTS / "incisive-crds", "--set", "keep=false"):
        assert "annotations" not in crd["metadata"]


# --- Pod Security `restricted` -----------------------------------------------------------

VALUE_SETS = {
    "incisive-hub": [[], ["--set", "operator.watchNamespaces={a,b}"],
                     ["--set", "runAsUser=null", "--set", "runAsGroup=null"]],
    "incisive-node": [[], ["--set", "operator.clusterWide=true"],
                      ["--set", "dataNode.create=true"]],
}
RESTRICTED_VOLUMES = {"configMap", "csi", "downwardAPI", "emptyDir", "ephemeral",
                      "persistentVolumeClaim", "projected", "secret"}


def assert_restricted(pod: dict[str, Any]) -> None:
    """The Pod Security Standard `restricted` (v1.36), checked field by field."""
    for field in ("hostNetwork", "hostPID", "hostIPC", "hostUsers"):
        assert field not in pod or (field == "hostUsers" and pod[field] is False)
    context = pod.get("securityContext") or {}
    assert context.get("runAsNonRoot") is True
    assert context.get("runAsUser", 1) != 0
    assert (context.get("seccompProfile") or {}).get("type") == "RuntimeDefault"
    for volume in pod.get("volumes") or []:
        assert set(volume) - {"name"} <= RESTRICTED_VOLUMES, volume
    for container in pod.get("initContainers", []) + pod["containers"]:
        own = container.get("securityContext") or {}
        assert own.get("allowPrivilegeEscalation") is False
        assert own.get("privileged") is not True
        assert own.get("readOnlyRootFilesystem") is True  # ours, beyond the standard
        assert own.get("capabilities", {}).get("drop") == ["ALL"]
        assert not own.get("capabilities", {}).get("add")
        assert own.get("runAsUser", 1) != 0
        assert own.get("seccompProfile", {"type": "RuntimeDefault"})["type"] == "RuntimeDefault"
        for port in container.get("ports") or []:
            assert "hostPort" not in port


@pytest.mark.parametrize("chart", ["incisive-hub", "incisive-node"])
def test_operator_pods_meet_restricted(helm: Helm, chart: str) -> None:
    for values in VALUE_SETS[chart]:
        deployment = one(helm.template(CHARTS / chart, *values), "Deployment")
        assert_restricted(pod_spec(deployment))


@pytest.mark.parametrize("chart", ["incisive-hub", "incisive-node"])
def test_one_operator_at_a_time(helm: Helm, chart: str) -> None:
    deployment = one(helm.template(CHARTS / chart), "Deployment")
    # kopf runs standalone: a rolling update would briefly run two operators.
    assert deployment["spec"]["replicas"] == 1
    assert deployment["spec"]["strategy"] == {"type": "Recreate"}


@pytest.mark.parametrize("chart,mode", [("incisive-hub", "hub"), ("incisive-node", "site")])
def test_operator_command_line(helm: Helm, chart: str, mode: str) -> None:
    container = pod_spec(one(helm.template(CHARTS / chart), "Deployment"))["containers"][0]
    assert container["command"] == ["incisive"]
    assert container["args"][:3] == ["operator", "run", f"--mode={mode}"]
    assert "--liveness=http://0.0.0.0:8080/healthz" in container["args"]
    assert "--metrics=0.0.0.0:9090" in container["args"]
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        assert container[probe]["httpGet"] == {"path": "/healthz", "port": "health"}
    assert container["image"] == "ghcr.io/incisive-project/incisive-node:0.1.0"
    digest = "sha256:" + "ab" * 32
    pinned = pod_spec(one(helm.template(CHARTS / chart, "--set", f"image.digest={digest}"),
                          "Deployment"))["containers"][0]
    assert pinned["image"] == f"ghcr.io/incisive-project/incisive-node@{digest}"


# --- RBAC --------------------------------------------------------------------------------

def _covers(held: list[dict[str, Any]], wanted: dict[str, Any]) -> list[str]:
    """What in `wanted` no rule of `held` grants (the apiserver's escalation check)."""
    missing = []
    for group in wanted.get("apiGroups", []):
        for resource in wanted.get("resources", []):
            for verb in wanted.get("verbs", []):
                for name in wanted.get("resourceNames") or [None]:
                    if not any(group in r.get("apiGroups", []) and resource in r["resources"]
                               and verb in r["verbs"]
                               and (not r.get("resourceNames") or name in r["resourceNames"])
                               for r in held):
                        missing.append(f"{verb} {group}/{resource}{'/' + name if name else ''}")
    return missing


def _hub_rules(helm: Helm) -> list[dict[str, Any]]:
    return one(helm.template(CHARTS / "incisive-hub"), "ClusterRole")["rules"]


def test_hub_holds_every_rule_it_grants_sites(helm: Helm) -> None:
    """The operator writes these Roles; without escalate/bind it must hold each rule."""
    held = _hub_rules(helm)
    granted = [m for m in sites.site_manifests("any") + sites.bootstrap_rbac()
               if m["kind"] in ("Role", "ClusterRole")]
    assert granted
    for role in granted:
        for rule in role["rules"]:
            assert _covers(held, rule) == [], role["metadata"]["name"]


def test_hub_rbac_is_narrow(helm: Helm) -> None:
    rules = _hub_rules(helm)
    for rule in rules:
        for field in ("apiGroups", "resources", "verbs"):
            assert "*" not in rule[field], rule
        # Neither escalate nor bind nor impersonate: see the chart's rbac.yaml.
        assert not {"escalate", "bind", "impersonate"} & set(rule["verbs"]), rule
    approve = [r for r in rules if "approve" in r["verbs"]]
    assert approve == [{"apiGroups": ["certificates.k8s.io"], "resources": ["signers"],
                        "resourceNames": ["kubernetes.io/kube-apiserver-client"],
                        "verbs": ["approve"]}]
    secrets = [r for r in rules if "secrets" in r["resources"]]
    assert secrets == [], "the hub operator reads no Secrets"
    cluster_rbac = [r for r in rules
                    if {"clusterroles", "clusterrolebindings"} & set(r["resources"])]
    assert all(r.get("resourceNames") == ["incisive:site-bootstrapper"] for r in cluster_rbac)


def test_site_rbac_stays_in_watched_namespaces(helm: Helm) -> None:
    manifests = helm.template(CHARTS / "incisive-node", "--namespace", "radiology",
                              "--set", "operator.watchNamespaces={radiology,cardiology}")
    roles = by_kind(manifests, "Role")
    assert sorted(r["metadata"]["namespace"] for r in roles) == ["cardiology", "radiology"]
    assert sorted(b["metadata"]["namespace"] for b in by_kind(manifests, "RoleBinding")) == \
        ["cardiology", "radiology"]
    (observe,) = by_kind(manifests, "ClusterRole")
    assert {r for rule in observe["rules"] for r in rule["resources"]} == \
        {"namespaces", "customresourcedefinitions"}
    assert {v for rule in observe["rules"] for v in rule["verbs"]} == {"list", "watch"}
    container = pod_spec(one(manifests, "Deployment"))["containers"][0]
    assert [a for a in container["args"] if a.startswith("--namespace")] == \
        ["--namespace=radiology", "--namespace=cardiology"]
    default = helm.template(CHARTS / "incisive-node", "--namespace", "radiology")
    assert [r["metadata"]["namespace"] for r in by_kind(default, "Role")] == ["radiology"]
    wide = helm.template(CHARTS / "incisive-node", "--set", "operator.clusterWide=true")
    assert by_kind(wide, "Role") == []
    assert len(by_kind(wide, "ClusterRole")) == 2
    args = pod_spec(one(wide, "Deployment"))["containers"][0]["args"]
    assert not [a for a in args if a.startswith("--namespace")]


# --- NetworkPolicies and the DataNode from values ----------------------------------------

@pytest.mark.parametrize("chart", ["incisive-hub", "incisive-node"])
def test_operator_is_fenced(helm: Helm, chart: str) -> None:
    manifests = helm.template(CHARTS / chart)
    policy = one(manifests, "NetworkPolicy")
    pod_labels = one(manifests, "Deployment")["spec"]["template"]["metadata"]["labels"]
    assert policy["spec"]["podSelector"]["matchLabels"].items() <= pod_labels.items()
    assert policy["spec"]["policyTypes"] == ["Ingress", "Egress"]
    (ingress,) = policy["spec"]["ingress"]
    assert ingress["ports"] == [{"protocol": "TCP", "port": 9090}]
    egress_ports = {p["port"] for rule in policy["spec"]["egress"] for p in rule["ports"]}
    # The site operator also reads its appliances' aggregates on their HTTP port.
    assert egress_ports == {53, 443, 6443} | ({8080} if chart == "incisive-node" else set())
    pinned = one(helm.template(CHARTS / chart, "--set",
                               "networkPolicy.apiServer.cidrs={10.0.0.1/32}"), "NetworkPolicy")
    assert {"ipBlock": {"cidr": "10.0.0.1/32"}} in pinned["spec"]["egress"][1]["to"]
    assert not by_kind(helm.template(CHARTS / chart, "--set", "networkPolicy.enabled=false"),
                       "NetworkPolicy")


def test_datanode_from_values(helm: Helm, tmp_path: Path) -> None:
    values = tmp_path / "values.yaml"
    spec = yaml.safe_load((CRDS / "samples" / "datanode.yaml").read_text())["spec"]
    values.write_text(yaml.safe_dump({"dataNode": {"create": True, "name": "radiology",
                                                   "spec": spec}}))
    manifests = helm.template(CHARTS / "incisive-node", "-f", str(values),
                              "--namespace", "radiology")
    datanode = one(manifests, "DataNode")
    assert datanode["metadata"]["namespace"] == "radiology"
    assert datanode["spec"] == spec
    assert datanode["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
    refused = helm.run("template", "x", str(CHARTS / "incisive-node"), "--kube-version",
                       "1.36.3", "--namespace", "radiology", "--set", "dataNode.create=true",
                       "--set", "operator.watchNamespaces={cardiology}", check=False)
    assert refused.returncode != 0
    assert "operator.watchNamespaces leaves out" in refused.stderr
