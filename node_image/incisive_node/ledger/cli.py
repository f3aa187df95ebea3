"""`incisive-node ledger serve|witness|keygen`: the hub's log, a site's witness, their keys."""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
import threading
from pathlib import Path
from typing import Any

from .service import (
    ROLES,
    ServiceError,
    certificate_fingerprint,
    describe_key,
    parse_witness_server_names,
    parse_witness_urls,
    read_key,
    run_until,
    start_log,
    start_witness,
    summary,
    write_key,
)
from .store import StoreError
from .tls import TlsConfigError, tls_files

HELP = "run the ledger log or a witness; make ledger keys"


def register(subparsers: Any) -> None:
    ledger = subparsers.add_parser("ledger", help=HELP)
    verbs = ledger.add_subparsers(dest="ledger_command", required=True)

    serve = verbs.add_parser("serve", help="run the log: append entries, publish checkpoints "
                                           "cosigned by witnesses")
    serve.add_argument("--store", required=True, metavar="PATH_OR_URL",
                       help="SQLite file, or a postgresql:// URL (a database of its own)")
    serve.add_argument("--key", type=Path, required=True, help="the log's Ed25519 key (PEM)")
    serve.add_argument("--trust", type=Path, required=True,
                       help="trust file: log vkey, witness vkeys, quorum, submitters "
                            "(re-read when it changes)")
    serve.add_argument("--witness-url", action="append", default=[], metavar="NAME=URL",
                       help="where to reach a witness named in the trust file (repeatable); "
                            "https:// witnesses are reached with --tls-cert/--tls-key/--tls-ca")
    serve.add_argument("--witness-server-name", action="append", default=[],
                       metavar="NAME=DNS",
                       help="the DNS name on a witness's certificate, when its URL names an "
                            "address (repeatable)")
    serve.add_argument("--interval", type=float, default=10.0,
                       help="seconds between checkpoints when the log has grown")
    _listen(serve, 8700, "every client certificate, and every https:// witness's "
                         "certificate, must chain to")
    serve.set_defaults(handler=run_serve)

    witness = verbs.add_parser("witness", help="run a witness: cosign a log's checkpoints "
                                               "(c2sp.org/tlog-witness)")
    witness.add_argument("--key", type=Path, required=True,
                         help="the witness's Ed25519 key (PEM)")
    witness.add_argument("--name", required=True, help="the witness's key name")
    witness.add_argument("--log", action="append", default=[], required=True, metavar="VKEY",
                         help="vkey of a log to witness (repeatable)")
    witness.add_argument("--db", type=Path, required=True,
                         help="SQLite file: the latest cosigned checkpoint, conflicts")
    _listen(witness, 8701, "every client certificate (the log's) must chain to")
    witness.set_defaults(handler=run_witness)

    keygen = verbs.add_parser("keygen", help="make an Ed25519 key; print what others trust")
    keygen.add_argument("--role", choices=ROLES, required=True)
    keygen.add_argument("--name", help="log origin or witness name (log and witness keys)")
    keygen.add_argument("--cert", type=Path,
                        help="submitter: the X.509 certificate the key signs for")
    keygen.add_argument("--out", type=Path, required=True, help="PEM file to create (0600)")
    keygen.set_defaults(handler=run_keygen)


def _listen(parser: argparse.ArgumentParser, port: int, ca_help: str) -> None:
    parser.add_argument("--host", default="127.0.0.1",
                        help="an IP address; without TLS, a loopback one (plain HTTP is for "
                             "loopback testbeds only)")
    parser.add_argument("--port", type=int, default=port)
    tls = parser.add_argument_group("mutual TLS (all three, or none for plain HTTP on loopback)")
    tls.add_argument("--tls-cert", type=Path,
                     help="this service's federation certificate chain (PEM)")
    tls.add_argument("--tls-key", type=Path, help="its private key (PEM)")
    tls.add_argument("--tls-ca", "--trust-anchor", dest="tls_ca", type=Path,
                     help=f"the federation CA bundle (PEM) {ca_help}")


def _stop_on_signals() -> threading.Event:
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    return stop


def run_serve(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    stop = _stop_on_signals()
    try:
        urls = parse_witness_urls(args.witness_url)
        service = start_log(args.store, read_key(args.key), args.trust, urls, host=args.host,
                            port=args.port, interval=args.interval,
                            tls=tls_files(args.tls_cert, args.tls_key, args.tls_ca),
                            witness_server_names=parse_witness_server_names(
                                args.witness_server_name, urls))
    except (ServiceError, TlsConfigError, StoreError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(summary(service), file=sys.stderr, flush=True)
    run_until(stop, service)
    return 0


def run_witness(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    stop = _stop_on_signals()
    try:
        service = start_witness(read_key(args.key), args.name, args.log, args.db,
                                host=args.host, port=args.port,
                                tls=tls_files(args.tls_cert, args.tls_key, args.tls_ca))
    except (ServiceError, OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(summary(service), file=sys.stderr, flush=True)
    run_until(stop, service)
    return 0


def run_keygen(args: argparse.Namespace) -> int:
    try:
        if args.role != "submitter" and not args.name:
            raise ServiceError("--name is required for a log or witness key")
        actor = certificate_fingerprint(args.cert) if args.cert else None
        key = write_key(args.out)
        print(json.dumps(describe_key(args.role, key, args.name, actor)))
    except (ServiceError, OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0
