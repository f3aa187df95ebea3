"""`incisive ledger verify|prove|tail`: audit a ledger database from the command line."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from incisive_node.ledger import audit, trust
from incisive_node.ledger.note import NoteError
from incisive_node.ledger.postgres import is_postgres_target
from incisive_node.ledger.store import StoreError, open_store


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("ledger", help="verify and query the tamper-evident ledger")
    verbs = parser.add_subparsers(dest="verb", required=True)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--db", required=True, metavar="PATH_OR_URL",
                        help="the log's store: an SQLite file, or a postgresql:// URL")
    trusted = argparse.ArgumentParser(add_help=False)
    trusted.add_argument("--trust", type=Path, required=True,
                         help="JSON: log vkey, witness vkeys, quorum, submitter keys")
    verbs.add_parser("verify", parents=[common, trusted],
                     help="recompute the tree, check every checkpoint and its quorum")
    prove = verbs.add_parser("prove", parents=[common, trusted],
                             help="inclusion proof for an entry against the latest checkpoint")
    prove.add_argument("entry", metavar="ENTRY", help="a position or a 64-hex leaf hash")
    tail = verbs.add_parser("tail", parents=[common], help="the latest entries")
    tail.add_argument("-n", "--count", type=int, default=10)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    if not is_postgres_target(args.db) and not Path(args.db).is_file():
        print(f"error: no ledger database at {args.db}", file=sys.stderr)
        return 2
    try:
        store = open_store(args.db)
    except StoreError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    try:
        if args.verb == "tail":
            print(json.dumps(audit.tail(store, args.count), indent=2))
            return 0
        config = trust.load(args.trust)
        if args.verb == "verify":
            report = audit.verify(store, config.policy, config.submitters)
            for problem in report.problems:
                print(f"FAIL {problem}")
            state = "OK" if report.ok else "TAMPERED"
            print(f"{state}: {report.size} entries, {report.checkpoints} accepted checkpoints, "
                  f"{report.covered} entries covered")
            return 0 if report.ok else 1
        print(json.dumps(audit.prove(store, args.entry, config.policy), indent=2))
        return 0
    except (audit.AuditError, NoteError, StoreError, ValueError, KeyError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    finally:
        store.close()
