"""The loop closes: after review, a federated round at the site trains on exactly the
labels reviewers settled (accepted and corrected masks; nothing from a rejected proposal).

What stands in for what: a SuperLink on 127.60.3.100 and one site's SuperNode on
127.60.3.1 whose node config reads the site's own store (`data = "store"`,
`labels = "annotation"`). The store holds phantom studies ingested through the real
pipeline; phantoms have no real patients behind them, so the consent hook is
`everyone_consents` (a real site names its consent registry's hook here).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from incisive_node.annotation.labels import ReviewedLabels
from incisive_node.annotation.model_ref import ModelReference, load_model
from incisive_node.annotation.review import Reviews
from incisive_node.annotation.service import Annotator
from incisive_node.deid import Deidentifier
from incisive_node.fl.config import TrainingConfig
from incisive_node.fl.data import everyone_consents, load_site_data
from incisive_node.fl.loopback import LoopbackFederation
from incisive_node.fl.store_dataset import StoreDataset
from incisive_node.store import Store
from tests.annotation.conftest import ModelFiles, ingest_phantoms


def test_next_round_trains_on_the_reviewed_labels(tmp_path: Path, deidentifier: Deidentifier,
                                                  local_segmenter: ModelFiles) -> None:
    store_dir = tmp_path / "site-store"
    with Store(store_dir) as store:
        studies = ingest_phantoms(store, deidentifier, np.random.default_rng(21),
                                  [0.1, 0.3, 0.5, 0.7, 0.9, 0.2], slices=4)
        model = load_model(ModelReference(local_segmenter.path, local_segmenter.sha256))
        proposals = {p.series_uid: p for p in Annotator(store, model).annotate_pending().proposed}
        reviews = Reviews(store)
        for study in studies[:4]:
            reviews.accept(proposals[study.series_uid].proposal_id)
        reviews.reject(proposals[studies[4].series_uid].proposal_id)
        # studies[5] stays pending: no label either.
        reviewed = ReviewedLabels(store, "segmentation")
        expected = load_site_data(
            StoreDataset(store, reviewed.label_of, 32, mask_of=reviewed.mask_of),
            everyone_consents, "federated-training",
        )
    assert expected.train_masks is not None
    labelled = len(expected.train_labels) + len(expected.val_labels)
    assert labelled == 4 * 4  # four reviewed studies of four slices
    assert len(expected.train_labels) > 0

    config = TrainingConfig(task="segmentation", rounds=1, local_epochs=1, min_sites=1,
                            learning_rate=0.01, batch_size=8, image_size=32,
                            site_wait_s=60.0, round_timeout_s=120.0)
    with LoopbackFederation(tmp_path / "fl", site_count=0, block="127.60.3") as federation:
        assert federation.control is not None
        federation.start_site(
            0, data="store", **{"store-dir": str(store_dir), "labels": "annotation",
                                "consent": "incisive_node.fl.data:everyone_consents"},
        )
        federation.control.wait_for_supernodes(1)
        result = federation.run(config, "on-reviewed-labels", timeout_s=180)
    assert result.succeeded, result.reason
    trained = [r for r in result.rounds if r["round"] == 1]
    assert trained and trained[0]["train_examples"] == len(expected.train_labels)
    assert trained[0]["eval_examples"] == len(expected.val_labels)
    assert "eval_dice" in trained[0]
