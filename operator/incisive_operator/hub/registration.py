"""Registering a site at the hub: a FederatedSite and the bootstrap token it enrols with.

The token is a Kubernetes bootstrap token (kube-system/bootstrap-token-<id>), so the hub's
apiserver itself authenticates the site's first request and records which token made it.
It can only ask for a certificate, and it expires.
"""

from __future__ import annotations

import base64
import datetime as dt
import secrets
import string
from dataclasses import dataclass
from typing import Any

from kubernetes import client

from ..api import GROUP
from ..api.v1alpha1 import VERSION
from .approval import APPROVED_ANNOTATION
from .sites import BOOTSTRAP_GROUP

_ALPHABET = string.ascii_lowercase + string.digits


@dataclass(frozen=True)
class Registration:
    site: str
    token: str  # "<id>.<secret>": show once, hand to the hospital out of band
    hub_ca: bytes

    def site_secret(self, name: str = "hub-bootstrap") -> dict[str, Any]:
        """The Secret the hospital applies on its own cluster for its DataNode."""
        return {
            "apiVersion": "v1", "kind": "Secret", "type": "Opaque",
            "metadata": {"name": name},
            "data": {"token": base64.b64encode(self.token.encode()).decode(),
                     "ca.crt": base64.b64encode(self.hub_ca).decode()},
        }


def register_site(
    api: client.ApiClient, site: str, country: str, auto_approve: bool,
    display_name: str = "", valid_for: dt.timedelta = dt.timedelta(hours=24),
) -> Registration:
    token_id = "".join(secrets.choice(_ALPHABET) for _ in range(6))
    token_secret = "".join(secrets.choice(_ALPHABET) for _ in range(16))
    expires = (dt.datetime.now(dt.UTC) + valid_for).strftime("%Y-%m-%dT%H:%M:%SZ")
    client.CoreV1Api(api).create_namespaced_secret("kube-system", client.V1Secret(
        metadata=client.V1ObjectMeta(name=f"bootstrap-token-{token_id}",
                                     labels={f"{GROUP}/site": site}),
        type="bootstrap.kubernetes.io/token",
        string_data={
            "token-id": token_id, "token-secret": token_secret,
            "usage-bootstrap-authentication": "true",
            "auth-extra-groups": BOOTSTRAP_GROUP,
            "expiration": expires,
            "description": f"enrolment of INCISIVE site {site}",
        },
    ))
    client.CustomObjectsApi(api).create_cluster_custom_object(GROUP, VERSION, "federatedsites", {
        "apiVersion": f"{GROUP}/{VERSION}", "kind": "FederatedSite",
        "metadata": {"name": site},
        "spec": {"displayName": display_name, "country": country,
                 "autoApprove": auto_approve, "bootstrapTokenId": token_id},
    })
    return Registration(site, f"{token_id}.{token_secret}", _hub_ca(api))


def approve_site(api: client.ApiClient, site: str) -> None:
    client.CustomObjectsApi(api).patch_cluster_custom_object(
        GROUP, VERSION, "federatedsites", site,
        {"metadata": {"annotations": {APPROVED_ANNOTATION: "true"}}})


def _hub_ca(api: client.ApiClient) -> bytes:
    path = api.configuration.ssl_ca_cert
    if not path:
        raise ValueError("the hub kubeconfig names no certificate authority")
    with open(path, "rb") as handle:
        return handle.read()
