"""One number and one status per series, so a researcher can filter on quality.

The score starts at 1 and loses, per finding, its severity's weight: in full for a series
finding, in proportion to the share of instances affected for an instance finding (one
blank slice in three hundred costs little). Status: `fail` on any series-level error or a
score under 0.5 (not offered for training), `flag` on any warning or error, else `pass`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

from incisive_node.curation.findings import CODES, ERROR, INFO, SERIES, WARNING, Finding

WEIGHTS = {ERROR: 0.5, WARNING: 0.15, INFO: 0.0}
PASS, FLAG, FAIL = "pass", "flag", "fail"


def score(series_findings: Iterable[Finding], instance_codes: Counter[str], instances: int,
          ) -> tuple[float, str]:
    found = list(series_findings)
    value = 1.0 - sum(WEIGHTS[f.severity] for f in found)
    for code, affected in instance_codes.items():
        value -= WEIGHTS[CODES[code]] * affected / max(instances, 1)
    value = round(min(1.0, max(0.0, value)), 3)
    severities = {f.severity for f in found} | {CODES[c] for c in instance_codes}
    if value < 0.5 or any(f.severity == ERROR and f.level == SERIES for f in found):
        return value, FAIL
    if severities & {ERROR, WARNING}:
        return value, FLAG
    return value, PASS
