"""Creating and reading HPCWorkloads and the objects around them in a test namespace."""

from __future__ import annotations

from typing import Any

from kubernetes import client

from incisive_operator.api import GROUP

from .conftest import condition

PLURAL = "hpcworkloads"


def donate(api: client.ApiClient, namespace: str, data: dict[str, str]) -> None:
    """The donation register (hpc/datasets.py), here in the test's own namespace."""
    client.CoreV1Api(api).create_namespaced_config_map(namespace, client.V1ConfigMap(
        metadata=client.V1ObjectMeta(name="donated-datasets"), data=data))


def create(api: client.ApiClient, namespace: str, name: str, **spec: Any) -> dict[str, Any]:
    body = {
        "apiVersion": f"{GROUP}/v1alpha1", "kind": "HPCWorkload",
        "metadata": {"name": name},
        "spec": {"image": "registry.example/incisive/segment:1.0", "tenant": "radiology",
                 **spec},
    }
    return client.CustomObjectsApi(api).create_namespaced_custom_object(
        GROUP, "v1alpha1", namespace, PLURAL, body)


def get(api: client.ApiClient, namespace: str, name: str) -> dict[str, Any] | None:
    try:
        return client.CustomObjectsApi(api).get_namespaced_custom_object(
            GROUP, "v1alpha1", namespace, PLURAL, name)
    except client.ApiException as exc:
        if exc.status == 404:
            return None
        raise


def delete(api: client.ApiClient, namespace: str, name: str) -> None:
    client.CustomObjectsApi(api).delete_namespaced_custom_object(
        GROUP, "v1alpha1", namespace, PLURAL, name)


def with_condition(api: client.ApiClient, namespace: str, name: str, type_: str,
                   status: str, reason: str | None = None) -> dict[str, Any] | None:
    """The workload once its condition matches, else None (for wait_for)."""
    found = get(api, namespace, name)
    if found is None:
        return None
    cond = condition(found, type_)
    if cond and cond["status"] == status and (reason is None or cond["reason"] == reason):
        return found
    return None


def events_for(api: client.ApiClient, namespace: str, name: str) -> list[Any]:
    return [e for e in client.CoreV1Api(api).list_namespaced_event(namespace).items
            if e.involved_object.name == name and e.involved_object.kind == "HPCWorkload"]


def pods_of(api: client.ApiClient, namespace: str, name: str) -> list[Any]:
    return client.CoreV1Api(api).list_namespaced_pod(
        namespace, label_selector=f"{GROUP}/hpcworkload={name}").items
