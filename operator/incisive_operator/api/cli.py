"""`incisive crds generate|check`: write crds/ from the models, or fail when it is stale."""

from __future__ import annotations

import argparse
from pathlib import Path

from . import crdgen

DEFAULT_DIR = Path("crds")


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("crds", help="CustomResourceDefinitions from the models")
    parser.add_argument("verb", choices=["generate", "check"])
    parser.add_argument("--out", type=Path, default=DEFAULT_DIR, help="default: ./crds")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    if args.verb == "generate":
        for path in crdgen.generate(args.out):
            print(path)
        return 0
    differing = crdgen.stale(args.out)
    for name in differing:
        print(f"stale: {args.out / name} (run `incisive crds generate`)")
    return 1 if differing else 0
