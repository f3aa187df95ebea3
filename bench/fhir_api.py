"""FHIR REST API benchmark: requests per second before and after the resource cache, side by
side in one run, over one store.

Ingests `--studies` synthetic studies (one series of two CT, MR or MG slices each; two
studies per patient) through the real pipeline (de-identifier and curator), records a few
consent decisions, then serves the same store from two appliance HTTP servers on loopback:

* **before**: the handler as it was before the cache (commit f2f2614), kept below as
  `RebuiltEachRequest`: every request rebuilds every resource of the store, filters, and
  encodes the Bundle;
* **after**: `incisive_node.fhir.api.FhirApi` (resources kept until the store's generation
  moves; a request reads the generation, matches, and joins JSON made once).

Each query is sent `--requests` times in a row over one keep-alive connection after one
warm-up request (which builds the cache on the "after" side). Prints a table with the ratio.
Both sides must answer the same Bundle, which is checked.

    .venv/bin/python bench/fhir_api.py [--studies 1000] [--requests 30] [--host 127.0.0.1]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import requests

from incisive_node.consent import CENTRAL_HPC, FEDERATED_TRAINING, PERMIT, ConsentRegistry
from incisive_node.curation import Curator
from incisive_node.deid import Deidentifier, ProjectKeys
from incisive_node.fhir import bundle, search
from incisive_node.fhir.api import FhirApi
from incisive_node.ingest.http_server import IngestHttpServer
from incisive_node.ingest.pipeline import Pipeline
from incisive_node.ingest.routes import Reply, Request
from incisive_node.store import Store

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.curation import samples  # the tests' synthetic series

KINDS = (("CT", "CHEST"), ("MR", "KNEE"), ("MG", "BREAST"))


class RebuiltEachRequest:
    """The FHIR handler before the cache, as the baseline (search and read only)."""

    name = "fhir-before"

    def __init__(self, store: Store, registry: ConsentRegistry) -> None:
        self.store, self.registry = store, registry

    def handle(self, request: Request) -> Reply | None:
        kind, _, ident = request.path.removeprefix("/fhir/").partition("/")
        resources = [r for r in bundle.all_resources(self.store, self.registry)
                     if r["resourceType"] == kind]
        if ident:
            found = [r for r in resources if r["id"] == ident]
            return Reply(200 if found else 404, json.dumps(found[0] if found else {}).encode(),
                         "application/fhir+json")
        hits = [r for r in resources if kind != "ImagingStudy"
                or search.matches(r, request.query, self.registry)]
        return Reply(200, json.dumps(bundle.bundle(hits, "searchset")).encode(),
                     "application/fhir+json")


def fill(store: Store, studies: int) -> None:
    deidentifier = Deidentifier(ProjectKeys(project="bench", secret=b"b" * 32))
    curator = Curator(store)
    pipeline = Pipeline(store, deidentifier, curator=curator)
    for n in range(studies):
        modality, part = KINDS[n % len(KINDS)]
        spec = samples.spec(slices=2, modality=modality, body_part=part,
                            patient_id=f"BENCH-{n // 2}")
        for data in samples.series(spec):
            if not pipeline.ingest(data, "bench").stored:
                raise SystemExit("a synthetic instance was not stored")
    curator.curate_pending(0)
    registry = ConsentRegistry(store.index)
    patients = [row[0] for row in store.index.read("SELECT pseudonym FROM patients ORDER BY 1")]
    for i, patient in enumerate(patients):
        registry.decide(patient, FEDERATED_TRAINING if i % 2 else CENTRAL_HPC, PERMIT)


def rate(session: requests.Session, url: str, count: int) -> tuple[float, Any]:
    first = session.get(url, timeout=600)
    first.raise_for_status()
    started = time.perf_counter()
    for _ in range(count):
        session.get(url, timeout=600).raise_for_status()
    return count / (time.perf_counter() - started), first.json()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--studies", type=int, default=1000)
    parser.add_argument("--requests", type=int, default=30)
    parser.add_argument("--host", default="127.0.0.1", help="loopback address to serve on")
    parser.add_argument("--tmp", type=Path, help="where the store goes (default: system tmp)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=args.tmp) as folder, Store(Path(folder)) as store:
        started = time.perf_counter()
        fill(store, args.studies)
        print(f"store: {args.studies} studies, {store.index.counts().instances} instances, "
              f"ingested in {time.perf_counter() - started:.1f} s", flush=True)
        registry = ConsentRegistry(store.index)
        pipeline = Pipeline(store, Deidentifier(ProjectKeys(project="bench", secret=b"b" * 32)))
        servers = {name: IngestHttpServer(pipeline, host=args.host, port=0, apps=[app])
                   for name, app in (("before", RebuiltEachRequest(store, registry)),
                                     ("after", FhirApi(store, registry)))}
        for server in servers.values():
            server.start()
        some_study = store.index.read("SELECT study_uid FROM studies ORDER BY 1 LIMIT 1")[0][0]
        queries = ("ImagingStudy?modality=CT", f"ImagingStudy?consent-purpose={CENTRAL_HPC}",
                   "ImagingStudy?bodysite=BREAST&started=ge1900-01-01",
                   f"ImagingStudy/{some_study}", "Patient")
        print(f"\n{'query':60} {'before req/s':>13} {'after req/s':>12} {'ratio':>8}")
        try:
            for query in queries:
                results = {}
                for name, server in servers.items():
                    with requests.Session() as session:
                        results[name] = rate(session, f"{server.url}/fhir/{query}",
                                             args.requests)
                if results["before"][1] != results["after"][1]:
                    print(f"{query}: the two sides answered differently", file=sys.stderr)
                    return 1
                before, after = results["before"][0], results["after"][0]
                print(f"{query:60} {before:13.1f} {after:12.1f} {after / before:7.1f}x",
                      flush=True)
        finally:
            for server in servers.values():
                server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
