"""Installing the charts on testbed clusters with the pinned helm (the demo and the tests).

CRDs applied earlier with kubectl (an older demo, a hospital's first install by hand) are
handed to the CRD release first: helm refuses to install over objects it does not own, and
docs/operations.md tells operators to adopt them the same way.
"""

from __future__ import annotations

import subprocess
import tempfile
from pathlib import Path
from typing import Any

import yaml

from .cluster import Cluster
from .errors import TestbedError

CRDS_RELEASE = "incisive-crds"
CRDS_NAMESPACE = "incisive-crds"
RELEASE_ANNOTATION = "meta.helm.sh/release-name"


def adopt_crds(cluster: Cluster, plurals: list[str], group: str,
               release: str = CRDS_RELEASE, namespace: str = CRDS_NAMESPACE) -> None:
    from kubernetes import client

    crds = client.ApiextensionsV1Api(cluster.api_client())
    for plural in plurals:
        try:
            found = crds.read_custom_resource_definition(f"{plural}.{group}")
        except client.ApiException as exc:
            if exc.status == 404:
                continue
            raise
        if (found.metadata.annotations or {}).get(RELEASE_ANNOTATION) == release:
            continue
        crds.patch_custom_resource_definition(f"{plural}.{group}", {"metadata": {
            "labels": {"app.kubernetes.io/managed-by": "Helm"},
            "annotations": {RELEASE_ANNOTATION: release,
                            "meta.helm.sh/release-namespace": namespace}}})


def upgrade_install(helm: Path, cluster: Cluster, release: str, chart: Path, namespace: str,
                    values: dict[str, Any] | None = None, timeout: str = "3m") -> None:
    """`helm upgrade --install --wait`: installs the first time, changes nothing after."""
    with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as file:
        yaml.safe_dump(values or {}, file)
    try:
        done = subprocess.run(
            [str(helm), "upgrade", "--install", release, str(chart), "--namespace", namespace,
             "--create-namespace", "--wait", "--timeout", timeout, "-f", file.name,
             "--kubeconfig", str(cluster.kubeconfig)],
            capture_output=True, text=True, check=False, timeout=600)
    finally:
        Path(file.name).unlink(missing_ok=True)
    if done.returncode != 0:
        raise TestbedError(f"helm could not install {chart.name} as {release} on "
                           f"{cluster.name}: {done.stderr.strip()[-600:]}",
                           "look at the chart's values, or remove the release with "
                           f"`helm uninstall {release} -n {namespace}`")
