"""Talking to a Kubernetes API: clients from kubeconfigs, server-side apply of manifests."""

from __future__ import annotations

import threading
from collections.abc import Callable
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


StatusPatch = dict[str, Any] | list[dict[str, Any]]


def swap_status(api: client.ApiClient, group: str, version: str, namespace: str, plural: str,
                name: str, patch_for: Callable[[dict[str, Any]], StatusPatch | None],
                *, attempts: int = 5) -> bool:
    """Write a custom object's status as a compare-and-swap.

    Read the object; `patch_for(current)` says what to write (None: nothing); send it with
    the resourceVersion read as a precondition, so a status another writer landed in
    between is never overwritten with what this one read before it; on a conflict, read
    again. A dict goes as a merge patch, a list as a JSON patch. True when a patch landed;
    False when nothing needed writing, the object is gone, or the conflicts went on."""
    objects = client.CustomObjectsApi(api)
    for _ in range(attempts):
        try:
            current = objects.get_namespaced_custom_object(group, version, namespace, plural,
                                                           name)
        except client.ApiException as exc:
            if exc.status == 404:
                return False
            raise
        patch = patch_for(current)
        if patch is None:
            return False
        version_read = current["metadata"]["resourceVersion"]
        extra: dict[str, Any] = {}
        if isinstance(patch, list):
            patch = [{"op": "replace", "path": "/metadata/resourceVersion",
                      "value": version_read}, *patch]
            extra["_content_type"] = "application/json-patch+json"
        else:
            patch = {**patch, "metadata": {"resourceVersion": version_read}}
        try:
            objects.patch_namespaced_custom_object_status(group, version, namespace, plural,
                                                          name, patch, **extra)
        except client.ApiException as exc:
            if exc.status == 409:
                continue
            if exc.status == 404:
                return False
            raise
        return True
    return False


def owner_reference(body: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": body["apiVersion"],
        "kind": body["kind"],
        "name": body["metadata"]["name"],
        "uid": body["metadata"]["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }
