"""`incisive-node fhir export --store STORE_DIR -o bundle.json`."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from incisive_node.fhir.bundle import export
from incisive_node.fhir.validate import InvalidResource
from incisive_node.store import Store


def register(subparsers: Any) -> None:
    fhir = subparsers.add_parser("fhir", help="FHIR R4 views of the store")
    sub = fhir.add_subparsers(dest="fhir_command", required=True)
    out = sub.add_parser("export", help="write the store as a validated FHIR Bundle",
                         description="Patients (pseudonymous), ImagingStudy, Provenance,"
                         " curation Observations and DiagnosticReports, and Consents.")
    out.add_argument("--store", type=Path, required=True, metavar="STORE_DIR")
    out.add_argument("--index", help="PostgreSQL URL for the index (default: SQLite)")
    out.add_argument("-o", "--output", type=Path, required=True, metavar="BUNDLE_JSON")
    out.set_defaults(handler=run_export)


def run_export(args: argparse.Namespace) -> int:
    with Store(args.store, args.index) as store:
        try:
            bundle = export(store)
        except InvalidResource as invalid:
            print(f"not written: {invalid}", file=sys.stderr)
            return 1
    args.output.write_text(json.dumps(bundle, indent=2, sort_keys=True) + "\n")
    print(f"wrote {len(bundle['entry'])} resources to {args.output}", file=sys.stderr)
    return 0
