"""`incisive operator run`: start the operator in hub or site mode."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("operator", help="run the kopf operator")
    verbs = parser.add_subparsers(dest="verb", required=True)
    run = verbs.add_parser("run", help="run until interrupted")
    run.add_argument("--mode", choices=["hub", "site"], required=True)
    run.add_argument("--kubeconfig", default=None,
                     help="default: the in-cluster service account")
    run.add_argument("--namespace", action="append", default=[],
                     help="watch only these namespaces (repeatable); default: cluster-wide")
    run.add_argument("--liveness", default="http://127.0.0.1:8080/healthz",
                     help="liveness endpoint URL, or '' to disable")
    run.add_argument("--metrics", default="127.0.0.1:9090",
                     help="host:port for Prometheus /metrics, or '' to disable")
    parser.set_defaults(run=_run)


def _run(args: argparse.Namespace) -> int:
    from . import main  # kopf and the handlers load only when the operator runs

    return main.main(args)
