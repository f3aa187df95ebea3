"""Talking to a Kubernetes API: clients from kubeconfigs, server-side apply of manifests."""

from __future__ import annotations

import threading
from typing import Any

from kubernetes import client, config
from kubernetes.dynamic import DynamicClient

from .naming import FIELD_MANAGER

_dynamic: dict[int, DynamicClient] = {}
_lock = threading.Lock()


def api_client(kubeconfig: str | None = None) -> client.ApiClient:
    """A client from a kubeconfig file, or the in-cluster service account when none."""
    if kubeconfig:
        return config.new_client_from_config(config_file=kubeconfig)
    configuration = client.Configuration()
    config.load_incluster_config(client_configuration=configuration)
    return client.ApiClient(configuration)


def dynamic(api: client.ApiClient) -> DynamicClient:
    # Discovery is slow; one DynamicClient per ApiClient, shared by every handler thread.
    with _lock:
        if id(api) not in _dynamic:
            _dynamic[id(api)] = DynamicClient(api)
        return _dynamic[id(api)]


def apply(api: client.ApiClient, manifest: dict[str, Any]) -> dict[str, Any]:
    """Server-side apply as the operator: idempotent, and it owns only the fields it sets."""
    resource = dynamic(api).resources.get(
        api_version=manifest["apiVersion"], kind=manifest["kind"]
    )
    result = resource.server_side_apply(
        body=manifest,
        name=manifest["metadata"]["name"],
        namespace=manifest["metadata"].get("namespace"),
        field_manager=FIELD_MANAGER,
        force_conflicts=True,
    )
    return result.to_dict()


def owner_reference(body: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": body["apiVersion"],
        "kind": body["kind"],
        "name": body["metadata"]["name"],
        "uid": body["metadata"]["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }
