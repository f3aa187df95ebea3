"""`incisive testbed ...`: build the toolchain, start, inspect and stop testbed clusters."""

from __future__ import annotations

import argparse
from pathlib import Path

from . import toolchain, versions
from .testbed import Testbed


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("testbed", help="local Kubernetes clusters for development")
    parser.add_argument("--state-dir", type=Path, default=None,
                        help="where clusters keep their state (default: $INCISIVE_TESTBED_DIR "
                             "or ~/.local/state/incisive/testbed)")
    parser.add_argument("--block", type=int, default=None,
                        help="address block: clusters listen on 127.BLOCK.N.1 (default 10)")
    verbs = parser.add_subparsers(dest="verb", required=True)
    build = verbs.add_parser("build", help="build or locate the pinned upstream binaries")
    build.add_argument("--rebuild", action="store_true", help="ignore the cache")
    up = verbs.add_parser("up", help="start clusters (idempotent)")
    up.add_argument("--clusters", default="hub,site-a,site-b",
                    help="comma-separated names; a cluster named gpu gets GPU nodes")
    down = verbs.add_parser("down", help="stop every process the testbed started")
    down.add_argument("--keep", action="store_true", help="keep certificates and etcd data")
    verbs.add_parser("status", help="show clusters and their processes")
    kubeconfig = verbs.add_parser("kubeconfig", help="print the admin kubeconfig path")
    kubeconfig.add_argument("name")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    bed = Testbed(args.state_dir, args.block)
    if args.verb == "build":
        tools = toolchain.ensure(rebuild=args.rebuild)
        print(f"Kubernetes v{versions.KUBERNETES}, kwok v{versions.KWOK}, helm v{versions.HELM}")
        for name, path in tools.as_dict().items():
            print(f"  {name:24} {path}")
    elif args.verb == "up":
        names = [n.strip() for n in args.clusters.split(",") if n.strip()]
        for cluster in bed.up(names):
            print(f"{cluster.name:10} {cluster.server}  kubeconfig: {cluster.kubeconfig}")
    elif args.verb == "down":
        stopped = bed.down(keep=args.keep)
        print(f"stopped: {', '.join(stopped) or 'nothing was running'}")
    elif args.verb == "status":
        rows = bed.status()
        if not rows:
            print(f"no clusters in {bed.state_dir}")
        for row in rows:
            state = "running" if row.running else "degraded"
            if all(c.pid is None for c in row.components):
                state = "stopped"
            print(f"{row.name:10} {state:9} {row.server}  {row.version or '-':9} "
                  f"nodes ready: {row.ready_nodes}")
            for component in row.components:
                print(f"    {component.name:24} {component.pid or 'not running'}")
    elif args.verb == "kubeconfig":
        print(bed.kubeconfig(args.name))
    return 0
