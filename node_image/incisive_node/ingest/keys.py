"""Where the ingest commands get the project's keys and keep the re-identification mapping.

With Vault/OpenBao (`--vault-addr`, token from VAULT_TOKEN): the project secret from KV and
the mapping encrypted by transit into a site-local file. With `--key-file`: offline use only;
the mapping is not kept, so what is ingested that way cannot be re-identified, and the
command says so.
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from incisive_node.deid import Deidentifier, Options, ProjectKeys

# The same spellings as `incisive-node deidentify`, so a site configures both alike.
from incisive_node.deid.cli import OPTION_NAMES
from incisive_node.deid.keys import load_from_vault, load_key_file, vault_client


def add_arguments(parser: argparse.ArgumentParser) -> None:
    keys = parser.add_argument_group("keys and re-identification")
    keys.add_argument(
        "--vault-addr", default=os.environ.get("VAULT_ADDR"),
        help="OpenBao/Vault URL (default: VAULT_ADDR; token from VAULT_TOKEN)",
    )
    keys.add_argument("--project", help="project whose key pseudonymises (with --vault-addr)")
    keys.add_argument(
        "--mapping-db", type=Path,
        help="the transit-encrypted re-identification mapping (with --vault-addr; default "
        "STORE_DIR/reid-mapping.sqlite3)",
    )
    keys.add_argument(
        "--key-file", type=Path, help="offline only: a local project key; nothing re-identifiable"
    )
    parser.add_argument(
        "--option", action="append", default=[], choices=sorted(OPTION_NAMES),
        help="add a PS3.15 option (repeatable)",
    )
    parser.add_argument(
        "--without-option", action="append", default=[], choices=sorted(OPTION_NAMES),
        help="drop an option that is on by default (repeatable)",
    )


def options(args: argparse.Namespace) -> Options:
    changes = {OPTION_NAMES[name]: True for name in args.option}
    changes.update({OPTION_NAMES[name]: False for name in args.without_option})
    return replace(Options(), **changes)


def deidentifier(args: argparse.Namespace) -> tuple[Deidentifier, Callable[[Any], None] | None]:
    """The engine, and where each Result's mapping goes (None: nowhere)."""
    if args.key_file:
        print(
            "incisive-node: using a LOCAL KEY FILE (offline use only, not Vault); the"
            " re-identification mapping is not kept, so these instances cannot be re-identified",
            file=sys.stderr,
        )
        return Deidentifier(load_key_file(args.key_file), options(args)), None
    if not (args.vault_addr and args.project):
        raise SystemExit("keys: give --vault-addr and --project (or --key-file, offline only)")
    client = vault_client(args.vault_addr)
    keys: ProjectKeys = load_from_vault(client, args.project)
    mapping_db = args.mapping_db or Path(args.store) / "reid-mapping.sqlite3"
    return Deidentifier(keys, options(args)), MappingSink(mapping_db, client)


class MappingSink:
    """Hands each Result's mapping to the deid package's MappingStore. That store's SQLite
    connection belongs to the thread that opened it, and the SCP and HTTP server call from
    many threads: each thread gets its own."""

    def __init__(self, path: Path, client: Any) -> None:
        self.path = path
        self.client = client
        self._local = threading.local()

    def __call__(self, result: Any) -> None:
        store = getattr(self._local, "store", None)
        if store is None:
            from incisive_node.deid.mapping import MappingStore

            store = self._local.store = MappingStore(self.path, self.client)
        store.put(result.mapping)
