"""Lineage: which inputs, which code, which outputs. Kept in the workload's status, and
committed to in the ledger's `hpc-run` entries (its SHA-256 only; ledger_events.py).

Outputs are reported by the workload itself: its container writes a JSON document
`{"outputs": [{"path": ..., "sha256": "sha256:<hex>"}]}` to its termination message
(`/dev/termination-log`), which Kubernetes keeps in the pod's status after it exits. Entries
that are not well formed are dropped rather than trusted.
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any

from ..api.v1alpha1.hpcworkload import HPCWorkloadSpec
from .datasets import CENTRAL_HPC

_SHA256 = re.compile(r"^sha256:[0-9a-f]{64}$")


def command_sha256(command: list[str] | tuple[str, ...]) -> str:
    # JSON keeps argument boundaries, so ["a b"] and ["a", "b"] hash differently.
    return "sha256:" + hashlib.sha256(json.dumps(list(command)).encode()).hexdigest()


def outputs_from_message(message: str | None) -> list[dict[str, str]]:
    try:
        document = json.loads(message or "")
    except ValueError:
        return []
    if not isinstance(document, dict):
        return []
    outputs = []
    for entry in document.get("outputs") or []:
        if (isinstance(entry, dict) and isinstance(entry.get("path"), str)
                and isinstance(entry.get("sha256"), str) and _SHA256.match(entry["sha256"])):
            outputs.append({"path": entry["path"][:1024], "sha256": entry["sha256"]})
    return outputs


def image_digest(image: str | None, pods: list[dict[str, Any]]) -> str | None:
    if image and "@sha256:" in image:
        return image.split("@", 1)[1]
    for pod in pods:
        for status in (pod.get("status") or {}).get("containerStatuses") or []:
            image_id = status.get("imageID") or ""
            if "sha256:" in image_id:
                return "sha256:" + image_id.rsplit("sha256:", 1)[1]
    return None


def record(spec: HPCWorkloadSpec, image: str | None, command: tuple[str, ...],
           digest: str | None, outputs: list[dict[str, str]]) -> dict[str, Any]:
    return {
        "inputs": [{"dataset": i.dataset, **({"site": i.site} if i.site else {}),
                    "purpose": CENTRAL_HPC} for i in spec.inputs],
        "image": image,
        "imageDigest": digest,
        "commandSha256": command_sha256(command),
        "pipeline": spec.pipeline,
        "outputs": outputs,
    }
