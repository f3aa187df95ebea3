"""`incisive site register|approve`: the hub operators' side of enrolment."""

from __future__ import annotations

import argparse
from pathlib import Path

import yaml


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("site", help="register and approve hospital sites at the hub")
    parser.add_argument("--kubeconfig", default=None, help="the hub's kubeconfig")
    verbs = parser.add_subparsers(dest="verb", required=True)
    reg = verbs.add_parser("register", help="create a FederatedSite and its bootstrap token")
    reg.add_argument("name")
    reg.add_argument("--country", required=True, help="ISO 3166-1 alpha-2, e.g. IT")
    reg.add_argument("--display-name", default="")
    reg.add_argument("--auto-approve", action="store_true",
                     help="approve the site's certificate request without a human")
    reg.add_argument("--secret-out", type=Path, default=None,
                     help="write the Secret manifest the hospital applies on its cluster")
    approve = verbs.add_parser("approve", help="approve a site's pending enrolment")
    approve.add_argument("name")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from . import kube
    from .hub import registration

    api = kube.api_client(args.kubeconfig)
    if args.verb == "approve":
        registration.approve_site(api, args.name)
        print(f"site {args.name} approved; it enrols on its next attempt (seconds)")
        return 0
    result = registration.register_site(api, args.name, args.country, args.auto_approve,
                                        args.display_name)
    print(f"site {args.name} registered; bootstrap token (shown once): {result.token}")
    if args.secret_out:
        args.secret_out.write_text(yaml.safe_dump(result.site_secret()))
        args.secret_out.chmod(0o600)
        print(f"apply on the hospital's cluster: kubectl apply -f {args.secret_out}")
    return 0
