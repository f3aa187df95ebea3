"""Stand-ins for the processes behind pods on kwok nodes.

kwok plays the kubelet: a chart's Deployment is admitted, scheduled and marked Ready, but no
container starts. To show the real thing working with exactly what the chart grants, its
container command runs here as a process instead: the same arguments, logged in with a
token of the chart's own ServiceAccount, with the pod's 0.0.0.0 listeners moved to a
loopback address of the simulated host. The demo and the chart tests both use this.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from .cluster import Cluster

ALL_ADDRESSES = "0.0.0.0"  # noqa: S104 - what a pod listens on; replaced by a loopback address
TOKEN_SECONDS = 48 * 3600  # the demo may be left running for a while


def service_account_kubeconfig(cluster: Cluster, namespace: str, account: str, folder: Path,
                               seconds: int = TOKEN_SECONDS) -> Path:
    """A kubeconfig that logs in as `namespace/account` with a token from the TokenRequest
    API (bound to the account, expiring), the way a pod's projected token would."""
    from kubernetes import client

    token = client.CoreV1Api(cluster.api_client()).create_namespaced_service_account_token(
        account, namespace, client.AuthenticationV1TokenRequest(
            spec=client.V1TokenRequestSpec(audiences=[], expiration_seconds=seconds))
    ).status.token
    admin = yaml.safe_load(cluster.kubeconfig.read_text())
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{namespace}-{account}.kubeconfig"
    path.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "sa",
        "clusters": [{"name": cluster.name, "cluster": admin["clusters"][0]["cluster"]}],
        "users": [{"name": "sa", "user": {"token": token}}],
        "contexts": [{"name": "sa", "context": {"cluster": cluster.name, "user": "sa"}}],
    }))
    path.chmod(0o600)
    return path


@dataclass(frozen=True)
class OperatorCommand:
    """The operator container's command line, ready to run here."""

    argv: list[str]
    env: dict[str, str]
    liveness: str  # URL of kopf's liveness endpoint
    metrics: str  # URL of the Prometheus endpoint


def operator_command(deployment: dict[str, Any], kubeconfig: Path, host: str) -> OperatorCommand:
    """From a rendered or live operator Deployment: its `incisive ...` command with this
    interpreter, its listeners on `host`, and the given kubeconfig."""
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    if container.get("command") != ["incisive"]:
        raise ValueError(f"{deployment['metadata']['name']}: not an incisive operator "
                         f"container (command {container.get('command')})")
    args = [a.replace(ALL_ADDRESSES, host) for a in container["args"]]
    env = {**os.environ, **{e["name"]: e["value"] for e in container.get("env", [])
                            if "value" in e}}
    env.pop("HOME", None)  # the pod has no home of ours; nothing may read ~/.kube
    argv = [sys.executable, "-m", "incisive_operator.cli", *args, f"--kubeconfig={kubeconfig}"]
    return OperatorCommand(argv, env, _flag(args, "--liveness"),
                           "http://" + _flag(args, "--metrics") + "/metrics")


def _flag(args: list[str], name: str) -> str:
    for index, arg in enumerate(args):
        if arg.startswith(f"{name}="):
            return arg.split("=", 1)[1]
        if arg == name and index + 1 < len(args):
            return args[index + 1]
    raise ValueError(f"the operator's arguments have no {name}")
