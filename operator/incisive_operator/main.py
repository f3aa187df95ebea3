"""`incisive operator run --mode hub|site`: one process, the handlers its mode needs.

Handlers register into an explicit kopf registry per operator, so a process can run more
than one operator in its event loop (a site agent watches its own cluster and, once
enrolled, its namespace on the hub).
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import re
import sys
import threading
from collections.abc import Collection, Iterator
from typing import Any, Literal

import kopf

from . import kube, ledger_events, metrics
from .api.v1alpha1 import (
    AccessReview,
    DataAccessRequest,
    DataNode,
    FederatedSite,
    HPCWorkload,
    TrainingJob,
    WorkItem,
)
from .fl import settings as fl_settings
from .fl.local import LocalRuntime
from .fl.settings import FlSettings
from .handlers import (
    aggregates,
    dataaccessrequest,
    datanode,
    enrolment,
    federatedsite,
    hpcworkload,
    objects,
    trainingjob,
)
from .naming import ANNOTATION_PREFIX, FINALIZER

Mode = Literal["hub", "site"]
# A namespace name, as opposed to one of kopf's patterns (globs, negations, lists).
_NAMESPACE_NAME = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")


def settings_for(name: str, namespaces: Collection[str] = ()) -> kopf.OperatorSettings:
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
    # Keep retrying the API for as long as it is away (a hub restart, a network cut):
    # kopf gives up on a watch once its backoffs run out, and never resumes it.
    settings.networking.error_backoffs = _Forever((1, 2, 5, 10), then=30)
    settings.execution.max_workers = 8
    if namespaces and all(_NAMESPACE_NAME.fullmatch(ns) for ns in namespaces):
        # kopf follows the namespaces to start and stop its watch-streams, and takes a
        # Terminating namespace whose conditions are all False for gone. The namespace
        # controller writes exactly that after its first pass, seconds before it marks the
        # custom objects in it; kopf then stops the streams there for good and never sees
        # those objects' deletion, so our finalizer stays and the namespace hangs in
        # Terminating (a restart does not help: a Terminating namespace is never watched
        # again). Named namespaces need no following: a watch on one works whether it exists
        # yet, still, or again. The cost: CRDs are discovered once, at start.
        settings.scanning.disabled = True
    return settings


class _Forever:
    """A re-iterable, endless backoff sequence (each request starts from the beginning)."""

    def __init__(self, first: tuple[float, ...], then: float) -> None:
        self.first, self.then = first, then

    def __iter__(self) -> Iterator[float]:
        return itertools.chain(self.first, itertools.repeat(self.then))


def site_registry(aggregates_interval: float = aggregates.DEFAULT_INTERVAL
                  ) -> kopf.OperatorRegistry:
    registry = kopf.OperatorRegistry()
    datanode.register(registry)
    enrolment.register(registry)
    aggregates.register(registry, interval=aggregates_interval)
    objects.register(registry, (DataNode,))
    return registry


def hub_registry() -> kopf.OperatorRegistry:
    registry = kopf.OperatorRegistry()
    federatedsite.register(registry)
    trainingjob.register(registry)
    # The hub is also the GPU cluster here; a separate GPU cluster runs the same mode.
    hpcworkload.register(registry, memo_key="hub_api")
    dataaccessrequest.register(registry)
    objects.register(registry, (FederatedSite, TrainingJob, HPCWorkload, WorkItem))
    objects.register(registry, (DataAccessRequest, AccessReview))
    return registry


async def run(
    mode: Mode,
    kubeconfig: str | None,
    liveness: str | None,
    metrics_address: str | None,
    namespaces: list[str],
    stop_flag: threading.Event | None = None,
    fl: FlSettings | None = None,
    appliance_url: str | None = None,
    aggregates_interval: float = aggregates.DEFAULT_INTERVAL,
) -> None:
    api = kube.api_client(kubeconfig)
    registry = site_registry(aggregates_interval) if mode == "site" else hub_registry()

    @kopf.on.login(registry=registry)
    def login(**_: Any) -> kopf.ConnectionInfo | None:
        return _connection_info(api)

    if metrics_address:
        metrics.serve(metrics_address)
    await kopf.operator(
        registry=registry,
        settings=settings_for(mode, namespaces),
        memo=kopf.Memo(site_api=api, hub_api=api,
                       fl_runtime=LocalRuntime(fl) if fl is not None else None,
                       appliance_url=appliance_url),
        liveness_endpoint=liveness,
        clusterwide=not namespaces,
        namespaces=namespaces,
        stop_flag=stop_flag,
    )


def _connection_info(api: Any) -> kopf.ConnectionInfo:
    """kopf's credentials, taken from the same kubernetes client configuration we use."""
    configuration = api.configuration
    # The client keeps a token under "BearerToken" (in-cluster, and kubeconfigs with a
    # token) or "authorization"; asking through the getter also runs its refresh hook, so
    # a rotated service-account token is picked up at each re-login.
    bearer = configuration.get_api_key_with_prefix("BearerToken", alias="authorization") or ""
    token = bearer.removeprefix("Bearer ").strip() or None
    return kopf.ConnectionInfo(
        server=configuration.host,
        ca_path=configuration.ssl_ca_cert,
        insecure=not configuration.verify_ssl,
        certificate_path=configuration.cert_file,
        private_key_path=configuration.key_file,
        scheme="Bearer" if token else None,
        token=token,
    )


def main(args: Any) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    try:
        fl = fl_settings.from_args(args)
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    try:
        ledger_events.configure(args.ledger_url, args.ledger_key, certificate=args.ledger_cert,
                                object_key=args.ledger_object_key, spool=args.ledger_spool,
                                tls_cert=args.ledger_tls_cert, tls_key=args.ledger_tls_key,
                                tls_ca=args.ledger_tls_ca,
                                tls_server_name=args.ledger_tls_server_name)
    except (ValueError, OSError) as error:  # an unreadable key or spool: say which
        print(f"error: ledger: {error}", file=sys.stderr)
        return 2
    try:
        asyncio.run(run(args.mode, args.kubeconfig, args.liveness or None, args.metrics or None,
                        args.namespace, fl=fl, appliance_url=args.appliance_url,
                        aggregates_interval=args.aggregates_interval))
    finally:
        ledger_events.close()
    return 0
