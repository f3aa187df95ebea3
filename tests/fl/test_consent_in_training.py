"""Training asks the site's consent registry at the moment of use (`consent = "registry"`).

What stands in for what: a site's store holds phantom CT studies (one patient each) that went
through the real ingest pipeline and de-identification; the hospital's consent decisions are
recorded through the real `incisive-node consent` command line; a SuperLink on 127.0.48.100
and the site's SuperNode on 127.0.48.1 are real Flower processes whose ClientApp reads that
store with the body-part label hook.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
from flwr.app import Context, RecordDict

from incisive_node.deid import Deidentifier
from incisive_node.fl import client_app
from incisive_node.fl.body_part import BODY_PARTS, label_of
from incisive_node.fl.config import TrainingConfig
from incisive_node.fl.loopback import LoopbackFederation
from incisive_node.store import Store
from tests.annotation.conftest import ingest_phantoms
from tests.ingest.conftest import deidentifier  # noqa: F401

PURPOSE = "federated-training"
SLICES = 3


def _consent(store_dir: Path, decision: str, patients: list[str],
             purpose: str = PURPOSE) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "incisive_node.cli", "consent", decision, "--store",
         str(store_dir), "--purpose", purpose, "--patient", *patients],
        capture_output=True, text=True, timeout=120)


def _site(store_dir: Path, engine: Deidentifier, patients: int) -> list[str]:
    with Store(store_dir) as store:
        ingest_phantoms(store, engine, np.random.default_rng(5),
                        [0.2 + 0.1 * n for n in range(patients)], slices=SLICES)
        return sorted(str(row[0]) for row in store.index.read("SELECT pseudonym FROM patients"))


def _examples(store_dir: Path, **query: str) -> int:
    node = {"data": "store", "store-dir": str(store_dir), "consent": "registry",
            "labels": "incisive_node.fl.body_part:label_of", **query}
    data = client_app.site_data(_context(node), TrainingConfig(image_size=16))
    return len(data.train_labels) + len(data.val_labels)


def _context(node: dict[str, object]) -> Context:
    return Context(run_id=0, node_id=0, node_config=node, state=RecordDict(), run_config={})


def test_registry_hook_follows_decisions_at_the_moment_of_use(
        tmp_path: Path, deidentifier: Deidentifier  # noqa: F811
) -> None:
    store_dir = tmp_path / "store"
    patients = _site(store_dir, deidentifier, 4)
    assert _examples(store_dir) == 0  # no decision yet: the site default denies

    permitted = _consent(store_dir, "permit", patients)
    assert permitted.returncode == 0, permitted.stderr
    assert len(permitted.stdout.split()) == 4  # one consent id per patient, in one command
    assert _examples(store_dir) == 4 * SLICES

    withdrawn = _consent(store_dir, "withdraw", patients[:1])
    assert withdrawn.returncode == 0, withdrawn.stderr
    assert _examples(store_dir) == 3 * SLICES
    # Consent for another purpose does not count for training.
    assert _consent(store_dir, "permit", patients[:1], "central-hpc").returncode == 0
    assert _examples(store_dir) == 3 * SLICES

    # The job's dataQuery (the site operator puts it in the node config) narrows further;
    # the phantoms are abdominal CTs.
    assert _examples(store_dir, modalities="CT", **{"body-parts": "ABDOMEN,CHEST"}) == 3 * SLICES
    assert _examples(store_dir, **{"body-parts": "chest"}) == 0
    assert _examples(store_dir, modalities="MR") == 0

    unknown = _consent(store_dir, "permit", ["no-such-pseudonym", patients[0]])
    assert unknown.returncode == 2 and "refused: no-such-pseudonym" in unknown.stderr
    assert len(unknown.stdout.split()) == 1  # the known patient was still recorded


def test_body_part_labels() -> None:
    assert BODY_PARTS.index("ABDOMEN") == 1

    class Record:
        def __init__(self, part: str | None) -> None:
            self.body_part = part

    assert [label_of(Record(p)) for p in ("CHEST", "abdomen ", "HEAD", None)] == [0, 1, None,
                                                                                  None]


def test_withdrawal_reaches_the_next_run(tmp_path: Path,
                                         deidentifier: Deidentifier) -> None:  # noqa: F811
    store_dir = tmp_path / "store"
    patients = _site(store_dir, deidentifier, 6)
    assert _consent(store_dir, "permit", patients).returncode == 0
    config = TrainingConfig(rounds=1, local_epochs=1, min_sites=1, image_size=16,
                            batch_size=8, final_evaluation=False, site_wait_s=60.0,
                            round_timeout_s=120.0)
    with LoopbackFederation(tmp_path / "fl", site_count=0, block="127.0.48") as federation:
        assert federation.control is not None
        federation.start_site(0, data="store", **{
            "store-dir": str(store_dir), "consent": "registry",
            "labels": "incisive_node.fl.body_part:label_of"})
        federation.control.wait_for_supernodes(1)
        before = federation.run(config, "all-consented", timeout_s=180)
        assert before.succeeded, before.reason
        assert _consent(store_dir, "withdraw", patients[:2]).returncode == 0
        after = federation.run(config, "two-withdrew", timeout_s=180)
        assert after.succeeded, after.reason

    # Round 1's reply carries the training count and the pre-training validation count.
    [first] = [r for r in before.rounds if r["round"] == 0]
    assert int(first["eval_examples"]) + _train(before) == 6 * SLICES
    [second] = [r for r in after.rounds if r["round"] == 0]
    assert int(second["eval_examples"]) + _train(after) == 4 * SLICES


def _train(result: object) -> int:
    [trained] = [r for r in result.rounds if r["round"] == 1]  # type: ignore[attr-defined]
    return int(trained["train_examples"])
