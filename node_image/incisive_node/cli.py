"""`incisive-node`: the appliance's command line (its roles arrive with later issues)."""

from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="incisive-node", description=__doc__)
    parser.add_argument("--version", action="store_true", help="print the version and exit")
    args = parser.parse_args(argv)
    if args.version:
        from importlib.metadata import version

        print(version("incisive"))
        return 0
    parser.print_help()
    return 0


if __name__ == "__main__":
    sys.exit(main())
