"""`incisive-node pool serve` (at the hub) and `incisive-node pool sync` / `pool status` (at a
site); `add_sync_arguments` and `periodic_sync` put the same sync under `serve`."""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
import threading
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry

from incisive_node.consent import ANY_GRANTEE, ConsentRegistry
from incisive_node.store import Store

DEFAULT_DATASET = "donated"


def register(subparsers: Any) -> None:
    pool = subparsers.add_parser("pool", help="central pool at the hub, and a site's sync to it")
    sub = pool.add_subparsers(dest="pool_command", required=True)

    serve = sub.add_parser(
        "serve", help="run the hub's pool API (mutual TLS)",
        description="Receive de-identified copies donated for central HPC processing from"
        " sites, list and serve them by dataset, delete a withdrawn patient's copies.")
    _store(serve)
    serve.add_argument("--host", default="127.0.0.1",
                       help="listen address (default loopback; others need --listen-external)")
    serve.add_argument("--listen-external", action="store_true",
                       help="allow a non-loopback --host (inside a pod, behind a NetworkPolicy)")
    serve.add_argument("--port", type=int, default=8443)
    serve.add_argument("--tls-cert", type=Path, required=True,
                       help="the pool's federation certificate chain (PEM)")
    serve.add_argument("--tls-key", type=Path, required=True, help="its private key (PEM)")
    serve.add_argument("--trust-anchor", type=Path, required=True,
                       help="the federation root CA (PEM): the only issuer clients may have")
    serve.set_defaults(handler=run_serve)

    sync = sub.add_parser(
        "sync", help="one sync pass: push consented copies, send withdrawals",
        description="Push newly consented, curated instances (central-hpc) to the hub's pool"
        " and send withdrawals as tombstones. Exit 0 when the pass completed, 1 when the pool"
        " could not be reached or refused (the next pass retries; nothing is lost).")
    _store(sync)
    add_sync_arguments(sync, required=True)
    sync.set_defaults(handler=run_sync)

    status = sub.add_parser("status", help="what this site pushed and still has to delete")
    _store(status)
    status.set_defaults(handler=run_status)


def _store(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--store", type=Path, required=True, metavar="STORE_DIR")
    parser.add_argument("--index", help="PostgreSQL URL for the index (default: SQLite)")


def add_sync_arguments(parser: argparse.ArgumentParser, *, required: bool = False) -> None:
    """The pool options, shared by `pool sync` and `serve` (where they are optional: no
    --pool-url, no sync)."""
    group = parser.add_argument_group("central pool (central-hpc donations)")
    group.add_argument("--pool-url", required=required, metavar="https://HOST:PORT",
                       help="the hub's pool API" + ("" if required else
                                                    "; when given, serve syncs periodically"))
    group.add_argument("--pool-cert", type=Path, help="this site's federation certificate chain")
    group.add_argument("--pool-key", type=Path, help="its private key")
    group.add_argument("--pool-trust-anchor", type=Path, help="the federation root CA (PEM)")
    group.add_argument("--pool-server-name",
                       help="the name on the pool's certificate, when --pool-url names an address")
    group.add_argument("--pool-dataset", default=DEFAULT_DATASET,
                       help="the dataset name the copies are filed under (default "
                       f"{DEFAULT_DATASET})")
    group.add_argument("--pool-grantee", default=ANY_GRANTEE,
                       help="whose consent decisions count besides those for anyone (default *)")
    if not required:
        group.add_argument("--pool-interval", type=float, default=60.0,
                           help="seconds between sync passes (default 60)")


def check_sync_arguments(args: argparse.Namespace) -> None:
    """Refuse an incomplete pool configuration before anything starts (SystemExit)."""
    from incisive_node.pool.holdings import Refused, check_name

    if not args.pool_url:
        return
    if not args.pool_url.startswith("https://"):
        raise SystemExit("--pool-url must be https://HOST[:PORT] (the pool speaks mutual TLS)")
    for name in ("cert", "key", "trust-anchor"):
        path = getattr(args, f"pool_{name.replace('-', '_')}")
        if path is None:
            raise SystemExit(f"--pool-url needs --pool-{name}")
        if not Path(path).is_file():
            raise SystemExit(f"--pool-{name}: no such file: {path}")
    try:
        check_name("dataset", args.pool_dataset)
    except Refused as refused:
        raise SystemExit(f"--pool-dataset: {refused}") from None


def _sync(args: argparse.Namespace, store: Store, registry: ConsentRegistry,
          metrics_registry: CollectorRegistry | None = None) -> Any:
    from incisive_node.pool.client import PoolClient, tls_context
    from incisive_node.pool.sync import PoolSync, SyncMetrics

    check_sync_arguments(args)
    context = tls_context(args.pool_cert, args.pool_key, args.pool_trust_anchor)
    client = PoolClient(args.pool_url, context, server_name=args.pool_server_name)
    metrics = SyncMetrics(metrics_registry if metrics_registry is not None
                          else CollectorRegistry())
    return PoolSync(store, registry, client, dataset=args.pool_dataset,
                    grantee=args.pool_grantee, metrics=metrics)


def periodic_sync(args: argparse.Namespace, store: Store, registry: ConsentRegistry,
                  metrics_registry: CollectorRegistry) -> Any:
    """The background sync for `serve`, or None when no pool is configured."""
    if not args.pool_url:
        return None
    from incisive_node.pool.sync import PeriodicSync

    return PeriodicSync(_sync(args, store, registry, metrics_registry), args.pool_interval)


def run_sync(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    check_sync_arguments(args)
    with Store(args.store, args.index) as store:
        report = _sync(args, store, ConsentRegistry(store.index)).run_once()
    print(report.line())
    return 0 if report.complete else 1


def run_status(args: argparse.Namespace) -> int:
    with Store(args.store, args.index) as store:
        from incisive_node.pool.sync import TABLES

        store.index.write([(statement, ()) for statement in TABLES])
        pushed = store.index.read(
            "SELECT pool, state, COUNT(*), COUNT(DISTINCT patient) FROM pool_pushed"
            " GROUP BY pool, state ORDER BY pool, state")
        pending = store.index.read(
            "SELECT pool, COUNT(*) FROM pool_tombstones WHERE sent_at IS NULL GROUP BY pool")
    for pool, state, instances, patients in pushed:
        print(json.dumps({"pool": pool, "state": state, "instances": instances,
                          "patients": patients}))
    for pool, count in pending:
        print(json.dumps({"pool": pool, "pendingDeletions": count}))
    return 0


def run_serve(args: argparse.Namespace) -> int:
    from incisive_node.identity.mtls import CredentialFiles, server_context
    from incisive_node.pool.holdings import PoolHoldings
    from incisive_node.pool.server import PoolServer

    logging.basicConfig(level=logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    tls = server_context(CredentialFiles(args.tls_cert, args.tls_key),
                         args.trust_anchor.read_bytes())
    with Store(args.store, args.index) as store:
        server = PoolServer(PoolHoldings(store), tls, host=args.host, port=args.port,
                            allow_external=args.listen_external)
        server.start()
        print(f"pool serving on {server.url} (mutual TLS)", file=sys.stderr, flush=True)
        try:
            stop.wait()
        finally:
            server.stop()
    return 0
