"""Helpers for the chart tests: the pinned helm from the testbed toolchain, rendering."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from incisive_operator.testbed import Toolchain
from incisive_operator.testbed.versions import KUBERNETES

ROOT = Path(__file__).resolve().parents[2]
CHARTS = ROOT / "charts"
CHART_NAMES = ("incisive-crds", "incisive-hub", "incisive-node")
# Offline `helm template` knows no cluster; these make it render the Prometheus Operator
# objects, which are guarded by .Capabilities.APIVersions.
MONITORING_APIS = ("monitoring.coreos.com/v1/ServiceMonitor",
                   "monitoring.coreos.com/v1/PrometheusRule")


class Helm:
    def __init__(self, binary: Path) -> None:
        self.binary = binary

    def run(self, *args: str, check: bool = True,
            timeout: float = 300) -> subprocess.CompletedProcess:
        done = subprocess.run([str(self.binary), *args], capture_output=True, text=True,
                              check=False, timeout=timeout)
        if check and done.returncode != 0:
            raise AssertionError(f"helm {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}")
        return done

    def template(self, chart: Path | str, *args: str, release: str = "incisive",
                 namespace: str = "incisive-system",
                 monitoring: bool = True) -> list[dict[str, Any]]:
        extra = [arg for api in MONITORING_APIS for arg in ("--api-versions", api)] \
            if monitoring else []
        out = self.run("template", release, str(chart), "--namespace", namespace,
                       "--kube-version", KUBERNETES, *extra, *args).stdout
        return [d for d in yaml.safe_load_all(out) if d]


@pytest.fixture(scope="session")
def helm(tools: Toolchain) -> Helm:
    return Helm(tools.helm)


def by_kind(manifests: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [m for m in manifests if m["kind"] == kind]


def one(manifests: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    found = by_kind(manifests, kind)
    assert len(found) == 1, f"expected one {kind}, found {len(found)}"
    return found[0]


def pod_spec(manifest: dict[str, Any]) -> dict[str, Any]:
    return manifest["spec"]["template"]["spec"]


def dump(value: Any) -> str:
    return json.dumps(value, indent=1, sort_keys=True)
