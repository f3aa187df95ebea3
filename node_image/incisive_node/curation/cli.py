"""`incisive-node curate --store STORE_DIR [--series UID]`: series checks on demand (and a
first check of instances stored before curation existed), with a summary."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from incisive_node.curation.curator import Curator
from incisive_node.store import Store


def register(subparsers: Any) -> None:
    curate = subparsers.add_parser(
        "curate", help="run the series quality checks now and print the results",
        description="Check instances never checked, then every pending series (or one)."
        " Prints one JSON line per series: uid, status, score, finding codes.",
    )
    curate.add_argument("--store", type=Path, required=True, metavar="STORE_DIR")
    curate.add_argument("--index", help="PostgreSQL URL for the index (default: SQLite)")
    curate.add_argument("--series", action="append", default=[], metavar="SERIES_UID",
                        help="check this (de-identified) series even if not pending")
    curate.set_defaults(handler=run_curate)


def run_curate(args: argparse.Namespace) -> int:
    with Store(args.store, args.index) as store:
        curator = Curator(store)
        curator.backfill()
        results = [curator.curate_series(uid) for uid in args.series]
        results += curator.curate_pending(quiet_seconds=0)
    for quality in results:
        print(json.dumps({"series": quality.series_uid, "status": quality.status,
                          "score": quality.score,
                          "findings": sorted({f.code for f in quality.findings})}))
    return 0
