"""`incisive operator run`: start the operator in hub or site mode."""

from __future__ import annotations

import argparse
import os


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
    _aggregates_arguments(run)
    _ledger_arguments(run)
    _fl_arguments(run)
    parser.set_defaults(run=_run)


def _aggregates_arguments(run: argparse.ArgumentParser) -> None:
    """Site: each DataNode's status.aggregates, read from its appliance's GET /aggregates
    (docs/consent.md)."""
    group = run.add_argument_group("aggregates (site)")
    group.add_argument("--aggregates-interval", type=float, default=60.0, metavar="SECONDS",
                       help="how often each appliance is read (default 60; 0: never)")
    group.add_argument("--appliance-url", default=None, metavar="URL",
                       help="read every DataNode's aggregates from this appliance instead of "
                       "its Service (http://<datanode>-appliance.<namespace>.svc:<port>): the "
                       "stand-in where pods run no process (kwok testbed, demo), or an "
                       "override")


def _fl_arguments(run: argparse.ArgumentParser) -> None:
    """Federated learning (docs/federated-learning.md): off without --fl-state-dir. The local
    runtime runs the real Flower processes on this machine's loopback (the testbed's stand-in
    for a SuperLink Deployment at the hub and SuperNode Deployments at the sites)."""
    fl = run.add_argument_group("federated learning")
    fl.add_argument("--fl-state-dir", default=None,
                    help="folder for SuperLink/SuperNode state, keys, runs and models; "
                    "enables training")
    fl.add_argument("--fl-host", default="127.0.0.1",
                    help="loopback address the hub's SuperLinks (or a site's SuperNodes) "
                    "listen on")
    fl.add_argument("--fl-data", default=None,
                    help="site (required with --fl-state-dir): what it trains on, "
                    "synthetic[:I[/N]] (site I of N, non-IID) or store:DIR (the appliance's "
                    "store)")
    fl.add_argument("--fl-samples", type=int, default=200,
                    help="site: images per synthetic site")
    fl.add_argument("--fl-labels", default=None,
                    help="site, store data: module:function giving an instance's label, "
                    "or annotation (the labels reviewers settled)")
    fl.add_argument("--fl-consent", default=None,
                    help="site, store data: registry (the store's consent registry) or "
                    "module:function consented(pseudonym, purpose); without it nothing is "
                    "trained on")
    fl.add_argument("--fl-torch-threads", type=int, default=1,
                    help="site: CPU threads per training process")


def _ledger_arguments(run: argparse.ArgumentParser) -> None:
    """Where the operator appends its events (docs/ledger.md); off without a URL and a key.
    Each flag defaults to the appliance's environment variable of the same meaning."""
    ledger = run.add_argument_group("ledger")
    for flag, variable, text in (
        ("--ledger-url", "INCISIVE_LEDGER_URL", "the ledger log's URL"),
        ("--ledger-key", "INCISIVE_LEDGER_KEY", "PEM file: the operator's Ed25519 signing key"),
        ("--ledger-cert", "INCISIVE_LEDGER_CERT",
         "PEM file: the certificate whose SHA-256 fingerprint names the operator as actor"),
        ("--ledger-object-key", "INCISIVE_LEDGER_OBJECT_KEY",
         "file: the key for object IDs; without one, derived from the signing key"),
        ("--ledger-spool", "INCISIVE_LEDGER_SPOOL",
         "folder for entries not yet in the log (a persistent volume in a cluster)"),
        ("--ledger-tls-cert", "INCISIVE_LEDGER_TLS_CERT",
         "PEM file: the operator's federation certificate chain, for an https:// log"),
        ("--ledger-tls-key", "INCISIVE_LEDGER_TLS_KEY", "PEM file: its private key"),
        ("--ledger-tls-ca", "INCISIVE_LEDGER_TLS_CA",
         "PEM file: the CA bundle the log's certificate must chain to"),
        ("--ledger-tls-server-name", "INCISIVE_LEDGER_TLS_SERVER_NAME",
         "the name on the log's certificate, when --ledger-url names an address"),
    ):
        ledger.add_argument(flag, default=os.environ.get(variable),
                            help=f"{text} (default: ${variable})")


def _run(args: argparse.Namespace) -> int:
    from . import main  # kopf and the handlers load only when the operator runs

    return main.main(args)
