"""`incisive`: the control plane's command line and developer tooling."""

from __future__ import annotations

import argparse
import sys

from . import access_cli, demo, fl_cli, ledger_cli, operator_cli, registration_cli
from .api import cli as crds_cli
from .testbed import TestbedError
from .testbed import cli as testbed_cli

COMMANDS = (testbed_cli, crds_cli, operator_cli, registration_cli, demo, ledger_cli, access_cli,
            fl_cli)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="incisive", description=__doc__)
    subparsers = parser.add_subparsers(dest="command", required=True)
    for command in COMMANDS:
        command.register(subparsers)
    args = parser.parse_args(argv)
    try:
        return args.run(args)
    except TestbedError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
