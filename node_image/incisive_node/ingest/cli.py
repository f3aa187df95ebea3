"""`incisive-node ingest` and `incisive-node serve`: the folder door, and the SCP and HTTP
doors as a long-running service. `register(subparsers)` adds both to the appliance's CLI."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry

from incisive_node.aggregates import DEFAULT_K
from incisive_node.aggregates_api import MIN_K, AggregatesApi
from incisive_node.consent import ConsentRegistry, DonorTokens
from incisive_node.consent.donor_api import DonorApi
from incisive_node.curation import Curator, Sweeper
from incisive_node.dicomweb.api import DicomWebApi
from incisive_node.fhir.api import FhirApi
from incisive_node.ingest import keys
from incisive_node.ingest.folder import import_folder
from incisive_node.ingest.http_server import IngestHttpServer
from incisive_node.ingest.pipeline import Pipeline
from incisive_node.ingest.scp import StorageScp
from incisive_node.ledger import events as ledger_events
from incisive_node.pool import cli as pool_cli
from incisive_node.store import Store


def register(subparsers: Any) -> None:
    ingest = subparsers.add_parser(
        "ingest", help="de-identify a folder tree into the store",
        description="Import every file under SRC_DIR: de-identified into the store, or"
        " quarantined with a reason. Exit 0 when every file is accounted for.",
    )
    ingest.add_argument("src_dir", type=Path, metavar="SRC_DIR")
    _store_arguments(ingest)
    keys.add_arguments(ingest)
    ingest.set_defaults(handler=run_ingest)

    serve = subparsers.add_parser(
        "serve", help="run the C-STORE SCP and the STOW-RS/metrics HTTP server",
        description="Receive DICOM over C-STORE and STOW-RS, de-identify it into the store.",
    )
    _store_arguments(serve)
    serve.add_argument("--host", default="127.0.0.1",
                       help="listen address (default loopback; others need --listen-external)")
    serve.add_argument("--listen-external", action="store_true",
                       help="allow a non-loopback --host: inside a pod, behind the DataNode's "
                       "NetworkPolicy")
    serve.add_argument("--dicom-port", type=int, default=11112)
    serve.add_argument("--http-port", type=int, default=8080)
    serve.add_argument("--ae-title", default="INCISIVE", help="our AE title")
    serve.add_argument(
        "--series-quiet-seconds", type=float, default=60.0,
        help="run a series' checks once no instance has arrived for this long",
    )
    serve.add_argument(
        "--allow-aet", action="append", default=[], metavar="AET",
        help="a calling AE title allowed to send (repeatable; nobody else may; with none, "
        "the C-STORE door stays closed)",
    )
    serve.add_argument(
        "--aggregates-k", type=int, default=DEFAULT_K, metavar="K",
        help=f"GET /aggregates hides every count of fewer than K series or patients "
        f"(default {DEFAULT_K}, at least {MIN_K})",
    )
    keys.add_arguments(serve)
    pool_cli.add_sync_arguments(serve)
    serve.set_defaults(handler=run_serve)


def _store_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--store", type=Path, required=True, metavar="STORE_DIR")
    parser.add_argument(
        "--index", help="PostgreSQL URL for the index (default: SQLite in STORE_DIR)"
    )


def run_ingest(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    deidentifier, keep_mapping = keys.deidentifier(args)
    with Store(args.store, args.index) as store:
        curator = Curator(store)
        pipeline = Pipeline(store, deidentifier, keep_mapping=keep_mapping, curator=curator)
        summary = import_folder(pipeline, args.src_dir, show_progress=True)
        curator.curate_pending()  # the folder is read: its series are complete
        ledger_events.register_datasets_now(store.index)  # no-op without a ledger recorder
    for line in summary.lines():
        print(line)
    return 0 if summary.accounted_for else 1


def run_serve(args: argparse.Namespace) -> int:
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    pool_cli.check_sync_arguments(args)  # before anything starts
    if args.aggregates_k < MIN_K:
        print(f"error: --aggregates-k must be at least {MIN_K}", file=sys.stderr)
        return 2
    deidentifier, keep_mapping = keys.deidentifier(args)
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    with Store(args.store, args.index) as store:
        registry = CollectorRegistry()
        # First: it installs the process's ledger recorder, which ConsentRegistry picks up.
        ledger = ledger_events.ApplianceLedger(store.index, registry).start()
        curator = Curator(store, registry=registry)
        pipeline = Pipeline(
            store, deidentifier, registry=registry, keep_mapping=keep_mapping, curator=curator
        )
        consents = ConsentRegistry(store.index)
        # The review API for annotation proposals (`incisive-node annotate run` makes them);
        # imported here, as highdicom is slow to import for the other commands.
        from incisive_node.annotation.metrics import AnnotationCollector
        from incisive_node.annotation.review_api import ReviewApi

        review = ReviewApi(store)
        registry.register(AnnotationCollector(review.records))
        apps = (FhirApi(store, consents), DicomWebApi(store, consents),
                DonorApi(consents, DonorTokens(store.index)), review,
                AggregatesApi(consents, k=args.aggregates_k))
        sweeper = Sweeper(curator, quiet_seconds=args.series_quiet_seconds)
        pool_sync = pool_cli.periodic_sync(args, store, consents, registry)  # None: no pool
        # No allowed sender, no SCP: pynetdicom would read an empty list as "anyone".
        scp = StorageScp(
            pipeline, allowed_calling_aets=args.allow_aet, ae_title=args.ae_title,
            host=args.host, port=args.dicom_port, allow_external=args.listen_external,
        ) if args.allow_aet else None
        http = IngestHttpServer(pipeline, host=args.host, port=args.http_port, apps=apps,
                                allow_external=args.listen_external)
        if scp is not None:
            scp.start()
        http.start()
        sweeper.start()
        if pool_sync is not None:
            pool_sync.start()
        dicom = (f"DICOM {args.ae_title}@{args.host}:{scp.port}" if scp is not None
                 else "DICOM closed (no --allow-aet)")
        print(
            f"serving: {dicom}, HTTP {http.url}"
            " (DICOMweb /studies, FHIR /fhir, donor /donor, /aggregates, /metrics,"
            " /healthz)",
            file=sys.stderr, flush=True,
        )
        try:
            stop.wait()
        finally:
            if scp is not None:
                scp.stop()
            http.stop()
            sweeper.stop()
            if pool_sync is not None:
                pool_sync.stop()
            ledger.stop()
    totals = pipeline.totals.snapshot()
    print(f"received {totals['received']}, stored {totals['stored']},"
          f" quarantined {totals['quarantined']}", file=sys.stderr)
    return 0


def main(argv: list[str] | None = None) -> int:
    """Run the two commands alone (tests, and until the appliance CLI registers them)."""
    parser = argparse.ArgumentParser(prog="incisive-node")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return args.handler(args)
