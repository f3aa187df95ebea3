"""`GET /aggregates` on the appliance's HTTP server: the k-suppressed counts the site
publishes (aggregates.py), and nothing else.

The site operator reads it and writes it into its DataNode's status (docs/consent.md,
"Aggregates for the hub"). Computed on every request from the store as it is now, so a
withdrawal or a new series is in the next answer. What it reads:

* series by modality and body part (store_facts);
* labels: the training labels reviewers settled (annotation_labels), one label per task and
  class, `<task>:<class>`, for a series with at least one instance so labelled;
* patients per consent purpose (federated-training, central-hpc, the site default's and
  every purpose someone decided on), for any grantee (`*`).

Read-only, no authentication: nothing in it is about a patient (no pseudonyms, no UIDs, no
count below k), and the DataNode's NetworkPolicy admits only the namespace and the PACS.
"""

from __future__ import annotations

import json
import re
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from incisive_node.aggregates import DEFAULT_K, SeriesFacts, aggregate, store_facts
from incisive_node.annotation.records import AnnotationRecords
from incisive_node.consent import (
    ANY_GRANTEE,
    CENTRAL_HPC,
    FEDERATED_TRAINING,
    ConsentRegistry,
    permitting,
)
from incisive_node.ingest.routes import Reply, Request

PATH = "/aggregates"
JSON = "application/json"
MIN_K = 2  # k = 1 hides nothing
# A DICOM code string (CS: upper case, digits, space, underscore, at most 16). Cell names
# leave the site even when their counts are hidden, so a header holding anything else
# (free text typed into the wrong field) is published as OTHER, never as itself.
_CODE = re.compile(r"[A-Z0-9 _]{1,16}")
OTHER = "OTHER"


class AggregatesApi:
    name = "aggregates"

    def __init__(self, registry: ConsentRegistry, k: int = DEFAULT_K) -> None:
        if k < MIN_K:
            raise ValueError(f"k must be at least {MIN_K}")
        self.registry = registry
        self.index = registry.index
        self.k = k
        AnnotationRecords(self.index)  # its tables, so a store never annotated reads empty

    def handle(self, request: Request) -> Reply | None:
        if request.path.rstrip("/") != PATH:
            return None
        if request.method != "GET":
            return Reply(405, b'{"error": "GET only"}', JSON, (("Allow", "GET"),))
        body = json.dumps(self.published(), sort_keys=True).encode()
        return Reply(200, body, JSON, (("Cache-Control", "no-store"),))

    def published(self) -> dict[str, Any]:
        facts = [_coded(f) for f in store_facts(self.index, self._labels())]
        purposes = {p: permitting(self.registry, p, ANY_GRANTEE) for p in self._purposes()}
        out = aggregate(facts, purposes, k=self.k)
        out["generated_at"] = datetime.now(UTC).isoformat(timespec="seconds")
        return out

    def _labels(self) -> dict[str, set[str]]:
        rows = self.index.read("SELECT DISTINCT series_uid, task, label FROM annotation_labels")
        labels: dict[str, set[str]] = {}
        for series_uid, task, label in rows:
            labels.setdefault(series_uid, set()).add(f"{task}:{label}")
        return labels

    def _purposes(self) -> list[str]:
        decided = {r.purpose for r in self.registry.all_active()}
        return sorted({FEDERATED_TRAINING, CENTRAL_HPC, *self.registry.policy.purposes(),
                       *decided})


def _coded(facts: SeriesFacts) -> SeriesFacts:
    def code(value: str | None) -> str | None:
        return value if not value or _CODE.fullmatch(value.upper()) else OTHER

    return replace(facts, modality=code(facts.modality), body_part=code(facts.body_part))
