"""Every chart lints clean and renders for the pinned Kubernetes, with the pinned helm."""

from __future__ import annotations

import pytest

from incisive_operator.testbed.versions import KUBERNETES

from .conftest import CHART_NAMES, CHARTS, Helm

pytestmark = pytest.mark.parametrize("chart", CHART_NAMES)


def test_lint_strict(helm: Helm, chart: str) -> None:
    helm.run("lint", "--strict", str(CHARTS / chart), "--kube-version", KUBERNETES)


def test_template_renders_for_pinned_kubernetes(helm: Helm, chart: str) -> None:
    manifests = helm.template(CHARTS / chart)
    assert manifests
    for manifest in manifests:
        assert manifest["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "Helm"


def test_values_schema_rejects_unknown_keys(helm: Helm, chart: str) -> None:
    done = helm.run("template", "x", str(CHARTS / chart), "--kube-version", KUBERNETES,
                    "--set", "noSuchValue=1", check=False)
    assert done.returncode != 0
    assert "noSuchValue" in done.stderr
    assert "additional properties" in done.stderr
