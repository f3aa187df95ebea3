"""`incisive-node`: the appliance's command line."""

from __future__ import annotations

import argparse
import sys

from .consent import cli as consent_cli
from .curation import cli as curation_cli
from .deid import cli as deid_cli
from .fhir import cli as fhir_cli
from .ingest import cli as ingest_cli


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="incisive-node", description=__doc__)
    parser.add_argument("--version", action="store_true", help="print the version and exit")
    sub = parser.add_subparsers(dest="command")
    deid_cli.add_parsers(sub)
    ingest_cli.register(sub)
    for package_cli in (curation_cli, fhir_cli, consent_cli):
        package_cli.register(sub)
    args = parser.parse_args(argv)
    if args.version:
        from importlib.metadata import version

        print(version("incisive"))
        return 0
    if not args.command:
        parser.print_help()
        return 0
    return args.handler(args)


if __name__ == "__main__":
    sys.exit(main())
