"""`incisive-node consent ...`: record, withdraw and show decisions; issue and revoke donor
tokens; verify the audit log. Patients are named by pseudonym only."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from incisive_node.consent.model import ANY_GRANTEE, InvalidConsent
from incisive_node.consent.registry import ConsentRegistry
from incisive_node.consent.tokens import DonorTokens
from incisive_node.store import Store


def register(subparsers: Any) -> None:
    consent = subparsers.add_parser("consent", help="consent decisions and donor tokens")
    sub = consent.add_subparsers(dest="consent_command", required=True)
    for name, helptext in (("permit", "record a permit"), ("deny", "record a deny"),
                           ("withdraw", "withdraw consent (deny from now on)")):
        cmd = sub.add_parser(name, help=helptext)
        _common(cmd, patient=False)
        cmd.add_argument("--patient", required=True, nargs="+", metavar="PSEUDONYM",
                         help="one or more patients (a bulk import from the hospital's "
                         "consent system names many)")
        cmd.add_argument("--purpose", required=True,
                         help="federated-training, central-hpc or project:<slug>")
        cmd.add_argument("--grantee", default=ANY_GRANTEE)
        if name != "withdraw":
            cmd.add_argument("--start", help="ISO date the decision starts")
            cmd.add_argument("--end", help="ISO date it ends (exclusive)")
        cmd.set_defaults(handler=run_decide, decision=name)
    show = sub.add_parser("show", help="a patient's decisions in force")
    _common(show, patient=True)
    show.set_defaults(handler=run_show)
    issue = sub.add_parser("issue-token", help="issue a donor token (printed once)")
    _common(issue, patient=True)
    issue.set_defaults(handler=run_issue)
    revoke = sub.add_parser("revoke-tokens", help="revoke every token of a patient")
    _common(revoke, patient=True)
    revoke.set_defaults(handler=run_revoke)
    verify = sub.add_parser("verify-audit", help="check the audit log's hash chain")
    _common(verify, patient=False)
    verify.set_defaults(handler=run_verify)


def _common(parser: argparse.ArgumentParser, *, patient: bool) -> None:
    parser.add_argument("--store", type=Path, required=True, metavar="STORE_DIR")
    parser.add_argument("--index", help="PostgreSQL URL for the index (default: SQLite)")
    if patient:
        parser.add_argument("--patient", required=True, metavar="PSEUDONYM")


def run_decide(args: argparse.Namespace) -> int:
    """Records each patient's decision in turn; one refused (say, an unknown pseudonym) does
    not stop the others. Prints a consent id per recorded decision; exit 2 if any was
    refused."""
    refusals = 0
    with Store(args.store, args.index) as store:
        registry = ConsentRegistry(store.index)
        for patient in args.patient:
            try:
                if args.decision == "withdraw":
                    record = registry.withdraw(patient, args.purpose, grantee=args.grantee)
                else:
                    record = registry.decide(patient, args.purpose, args.decision,
                                             grantee=args.grantee, start=args.start,
                                             end=args.end)
            except InvalidConsent as refused:
                print(f"refused: {patient}: {refused}", file=sys.stderr)
                refusals += 1
                continue
            print(record.consent_id, flush=True)
    return 2 if refusals else 0


def run_show(args: argparse.Namespace) -> int:
    with Store(args.store, args.index) as store:
        for record in ConsentRegistry(store.index).records(args.patient):
            print(json.dumps({k: getattr(record, k) for k in
                              ("purpose", "grantee", "decision", "start", "end", "source")}))
    return 0


def run_issue(args: argparse.Namespace) -> int:
    with Store(args.store, args.index) as store:
        print(DonorTokens(store.index).issue(args.patient))
    return 0


def run_revoke(args: argparse.Namespace) -> int:
    with Store(args.store, args.index) as store:
        DonorTokens(store.index).revoke_all(args.patient)
    return 0


def run_verify(args: argparse.Namespace) -> int:
    with Store(args.store, args.index) as store:
        intact = ConsentRegistry(store.index).audit.verify()
    print("intact" if intact else "BROKEN")
    return 0 if intact else 1
