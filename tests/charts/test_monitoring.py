"""The charts' alert rules and dashboards: rendered from the charts, checked by promtool,
and read only metrics the code publishes."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from .conftest import CHARTS, ROOT, Helm, one

RULES_TEST = Path(__file__).with_name("rules_test.yaml")
# Where the metrics are declared: the operator's and the appliance's Python sources.
SOURCES = (ROOT / "operator" / "incisive_operator", ROOT / "node_image" / "incisive_node")
DECLARATION = re.compile(r"\b(Counter|Gauge|Histogram|Summary)\(\s*\"(incisive_[a-z_]+)\"")
METRIC = re.compile(r"\b(incisive_[a-z_]+)")


def _promtool() -> str:
    found = shutil.which("promtool")
    if found is None:
        pytest.fail("promtool is missing: `apt-get install -y prometheus` (.ci/run does it)")
    return found


def _rule_groups(helm: Helm, chart: str, release: str, namespace: str) -> dict:
    rule = one(helm.template(CHARTS / chart, release=release, namespace=namespace),
               "PrometheusRule")
    return {"groups": rule["spec"]["groups"]}


@pytest.fixture(scope="module")
def rules_dir(helm: Helm, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The rendered rule groups as plain Prometheus rule files, beside the unit tests."""
    folder = tmp_path_factory.mktemp("rules")
    (folder / "hub-rules.yaml").write_text(yaml.safe_dump(
        _rule_groups(helm, "incisive-hub", "hub", "incisive-system"), sort_keys=False))
    (folder / "node-rules.yaml").write_text(yaml.safe_dump(
        _rule_groups(helm, "incisive-node", "site", "radiology"), sort_keys=False))
    shutil.copy(RULES_TEST, folder / RULES_TEST.name)
    return folder


def test_promtool_accepts_the_rules(rules_dir: Path) -> None:
    for name in ("hub-rules.yaml", "node-rules.yaml"):
        done = subprocess.run([_promtool(), "check", "rules", str(rules_dir / name)],
                              capture_output=True, text=True, check=False, timeout=60)
        assert done.returncode == 0, done.stdout + done.stderr


def test_alert_unit_tests_pass(rules_dir: Path) -> None:
    done = subprocess.run([_promtool(), "test", "rules", RULES_TEST.name], cwd=rules_dir,
                          capture_output=True, text=True, check=False, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr


def test_every_alert_has_a_unit_test(rules_dir: Path) -> None:
    alerts = {rule["alert"] for name in ("hub-rules.yaml", "node-rules.yaml")
              for group in yaml.safe_load((rules_dir / name).read_text())["groups"]
              for rule in group["rules"] if "alert" in rule}
    tested = {case["alertname"] for test in yaml.safe_load(RULES_TEST.read_text())["tests"]
              for case in test.get("alert_rule_test", [])}
    assert alerts == tested


def _published_metrics() -> set[str]:
    """Metric names as Prometheus sees them (counters get _total, histograms _bucket...)."""
    names: set[str] = set()
    for source in SOURCES:
        for path in source.rglob("*.py"):
            for kind, name in DECLARATION.findall(path.read_text()):
                if kind == "Counter":  # prometheus_client strips a given _total, then adds it
                    name = name.removesuffix("_total")
                    names |= {f"{name}_total", f"{name}_created"}
                elif kind in ("Histogram", "Summary"):
                    names |= {f"{name}_bucket", f"{name}_sum", f"{name}_count"}
                else:
                    names.add(name)
    return names


def test_rules_and_dashboards_read_only_published_metrics(rules_dir: Path) -> None:
    published = _published_metrics()
    assert "incisive_operator_reconciles_total" in published, "metric scan found nothing"
    used: set[str] = set()
    for name in ("hub-rules.yaml", "node-rules.yaml"):
        for group in yaml.safe_load((rules_dir / name).read_text())["groups"]:
            for rule in group["rules"]:
                used |= set(METRIC.findall(rule["expr"]))
    for dashboard in (CHARTS / "dashboards").glob("*.json"):
        for panel in json.loads(dashboard.read_text())["panels"]:
            for target in panel["targets"]:
                used |= set(METRIC.findall(target["expr"]))
    assert used - published == set()


def test_dashboards_are_valid_and_shipped_unchanged(helm: Helm) -> None:
    raw = {p.name: p.read_text() for p in (CHARTS / "dashboards").glob("*.json")}
    assert set(raw) == {"incisive-operator.json", "incisive-appliance.json"}
    uids = [json.loads(text)["uid"] for text in raw.values()]
    assert len(set(uids)) == len(uids)
    shipped = {"incisive-hub": {"incisive-operator.json"},
               "incisive-node": {"incisive-operator.json", "incisive-appliance.json"}}
    for chart, names in shipped.items():
        for name in names:
            copy = (CHARTS / chart / "dashboards" / name).read_text()
            assert copy == raw[name], f"{chart}/dashboards/{name} is stale: run charts/sync.sh"
        config_map = one(helm.template(CHARTS / chart), "ConfigMap")
        assert config_map["metadata"]["labels"]["grafana_dashboard"] == "1"
        assert {k: json.loads(v) for k, v in config_map["data"].items()} == \
            {name: json.loads(raw[name]) for name in names}


@pytest.mark.parametrize("chart", ["incisive-hub", "incisive-node"])
def test_monitoring_objects_only_where_the_cluster_serves_them(helm: Helm, chart: str) -> None:
    kinds = {m["kind"] for m in helm.template(CHARTS / chart, monitoring=False)}
    assert not kinds & {"ServiceMonitor", "PrometheusRule"}
    kinds = {m["kind"] for m in helm.template(CHARTS / chart)}
    assert {"ServiceMonitor", "PrometheusRule"} <= kinds
    off = helm.template(CHARTS / chart, "--set", "metrics.serviceMonitor.enabled=false",
                        "--set", "metrics.prometheusRule.enabled=false")
    assert not {m["kind"] for m in off} & {"ServiceMonitor", "PrometheusRule"}
