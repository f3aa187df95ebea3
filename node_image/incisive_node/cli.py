"""`incisive-node`: the appliance's command line."""

from __future__ import annotations

import argparse
import importlib
import sys

# Every subcommand, in the order `--help` lists them: (module, its registration function,
# [(command, help)]). The modules import pydicom, pynetdicom, the store... (0.3-1 s), so only
# the chosen command's module is imported; the others are listed from here. The names and
# help texts must match what the modules register (tests/deid/test_cli.py checks that).
COMMANDS: tuple[tuple[str, str, tuple[tuple[str, str], ...]], ...] = (
    ("incisive_node.deid.cli", "add_parsers", (
        ("deidentify", "de-identify a folder tree of DICOM files"),
        ("reidentify", "look up the originals behind pseudonyms"),
        ("keygen", "create a project key file (offline use only)"),
    )),
    ("incisive_node.ingest.cli", "register", (
        ("ingest", "de-identify a folder tree into the store"),
        ("serve", "run the C-STORE SCP and the STOW-RS/metrics HTTP server"),
    )),
    ("incisive_node.curation.cli", "register", (
        ("curate", "run the series quality checks now and print the results"),
    )),
    ("incisive_node.fhir.cli", "register", (
        ("fhir", "FHIR R4 views of the store"),
    )),
    ("incisive_node.consent.cli", "register", (
        ("consent", "consent decisions and donor tokens"),
    )),
    ("incisive_node.pool.cli", "register", (
        ("pool", "central pool at the hub, and a site's sync to it"),
    )),
    ("incisive_node.annotation.cli", "register", (
        ("annotate", "ML-assisted annotation: proposals, review, the review API"),
    )),
    ("incisive_node.ledger.cli", "register", (
        ("ledger", "run the ledger log or a witness; make ledger keys"),
    )),
)


def _chosen(argv: list[str]) -> str | None:
    """The subcommand named on the command line: the first word that is not an option (the
    top-level options, -h and --version, take no value)."""
    return next((word for word in argv if not word.startswith("-")), None)


def build_parser(argv: list[str]) -> argparse.ArgumentParser:
    """The full parser for the command `argv` names; every other command is a placeholder
    with its help text, enough for `--help` and for argparse's choice of command."""
    parser = argparse.ArgumentParser(prog="incisive-node", description=__doc__)
    parser.add_argument("--version", action="store_true", help="print the version and exit")
    sub = parser.add_subparsers(dest="command")
    chosen = _chosen(argv)
    for module, register, commands in COMMANDS:
        if any(name == chosen for name, _ in commands):
            getattr(importlib.import_module(module), register)(sub)
        else:
            for name, text in commands:
                sub.add_parser(name, help=text)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser(argv)
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
