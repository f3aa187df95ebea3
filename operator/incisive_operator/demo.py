"""`incisive demo`: the main job, a whole local federation on one machine.

Today it brings up the federation's clusters (the hub, two hospital sites and the GPU
cluster) and shows each cluster's nodes; later steps add the charts, data, enrolment,
training, HPC and the ledger.
"""

from __future__ import annotations

import argparse
import time

from .testbed import Testbed, toolchain

FEDERATION = ("hub", "site-a", "site-b", "gpu")


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("demo", help="run a whole local federation")
    parser.add_argument("--down", action="store_true",
                        help="stop the federation at the end instead of leaving it running")
    parser.set_defaults(run=run)


def _step(number: int, total: int, text: str) -> None:
    print(f"\n[{number}/{total}] {text}", flush=True)


def run(args: argparse.Namespace) -> int:
    started = time.monotonic()
    total = 3
    _step(1, total, "upstream binaries (built once, then cached)")
    tools = toolchain.ensure()
    bed = Testbed()
    _step(2, total, f"clusters {', '.join(FEDERATION)} on loopback")
    clusters = bed.up(list(FEDERATION))
    _step(3, total, "nodes of each cluster")
    for cluster in clusters:
        print(f"\n--- {cluster.name} ({cluster.server}, Kubernetes {cluster.version()})")
        print(cluster.kubectl(tools, "get", "nodes", "-o", "wide").rstrip())
    print(f"\nfederation up in {time.monotonic() - started:.0f} s. Look further with:")
    for cluster in clusters:
        print(f"  kubectl --kubeconfig {cluster.kubeconfig} get nodes")
    if args.down:
        bed.down()
        print("stopped (incisive demo --down)")
    else:
        print("stop everything with: incisive testbed down")
    return 0
