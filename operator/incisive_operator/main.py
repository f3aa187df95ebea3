"""`incisive operator run --mode hub|site`: one process, the handlers its mode needs.

Handlers register into an explicit kopf registry per operator, so a process can run more
than one operator in its event loop (a site agent watches its own cluster and, once
enrolled, its namespace on the hub).
"""

from __future__ import annotations

import asyncio
import logging
import threading
from typing import Any, Literal

import kopf

from . import kube, metrics
from .handlers import datanode
from .naming import ANNOTATION_PREFIX, FINALIZER

Mode = Literal["hub", "site"]


def settings_for(name: str) -> kopf.OperatorSettings:
    settings = kopf.OperatorSettings()
    settings.persistence.finalizer = FINALIZER
    # Our annotations, not kopf's defaults, and none of kopf's bookkeeping in status
    # (the structural schemas would prune it anyway).
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(
        prefix=ANNOTATION_PREFIX
    )
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix=ANNOTATION_PREFIX, key="last-handled-configuration"
    )
    settings.peering.standalone = True
    settings.posting.level = logging.INFO
    settings.watching.server_timeout = 300
    settings.networking.error_backoffs = [1, 2, 5, 10]
    settings.execution.max_workers = 8
    return settings


def site_registry() -> kopf.OperatorRegistry:
    registry = kopf.OperatorRegistry()
    datanode.register(registry)
    return registry


async def run(
    mode: Mode,
    kubeconfig: str | None,
    liveness: str | None,
    metrics_address: str | None,
    namespaces: list[str],
    stop_flag: threading.Event | None = None,
) -> None:
    if mode != "site":
        raise NotImplementedError("hub mode arrives with the enrolment work")
    site_api = kube.api_client(kubeconfig)
    registry = site_registry()

    @kopf.on.login(registry=registry)
    def login(**_: Any) -> kopf.ConnectionInfo | None:
        return _connection_info(site_api)

    if metrics_address:
        metrics.serve(metrics_address)
    await kopf.operator(
        registry=registry,
        settings=settings_for("site"),
        memo=kopf.Memo(site_api=site_api),
        liveness_endpoint=liveness,
        clusterwide=not namespaces,
        namespaces=namespaces,
        stop_flag=stop_flag,
    )


def _connection_info(api: Any) -> kopf.ConnectionInfo:
    """kopf's credentials, taken from the same kubernetes client configuration we use."""
    configuration = api.configuration
    return kopf.ConnectionInfo(
        server=configuration.host,
        ca_path=configuration.ssl_ca_cert,
        insecure=not configuration.verify_ssl,
        certificate_path=configuration.cert_file,
        private_key_path=configuration.key_file,
        scheme="Bearer" if configuration.api_key.get("authorization") else None,
        token=(configuration.api_key.get("authorization") or "").removeprefix("Bearer ") or None,
    )


def main(args: Any) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    asyncio.run(run(args.mode, args.kubeconfig, args.liveness, args.metrics, args.namespace))
    return 0
