"""Fast checks of the pieces: config, data and consent, signing, the guard hook, errors."""

from __future__ import annotations

import hashlib
import socket
from pathlib import Path

import numpy as np
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from incisive_node.fl import guard
from incisive_node.fl.bundle import build_bundle
from incisive_node.fl.config import TrainingConfig
from incisive_node.fl.control import Control, SuperLinkUnavailable
from incisive_node.fl.data import everyone_consents, load_site_data
from incisive_node.fl.processes import PortInUse, SuperLink, check_port_free, format_node_config
from incisive_node.fl.signing import AppNotTrusted, AppSignature, sign_app, verify_app
from incisive_node.fl.synthetic import SyntheticSite


def test_run_config_round_trip() -> None:
    config = TrainingConfig(strategy="fedadam", rounds=5, dp="local", learning_rate=0.1)
    assert TrainingConfig.from_run_config(config.to_run_config()) == config
    # TOML may hand an int where a float is declared.
    assert TrainingConfig.from_run_config({"learning-rate": 1}).learning_rate == 1.0
    with pytest.raises(ValueError, match="strategy"):
        TrainingConfig(strategy="sgd")


def test_secure_aggregation_settings_are_checked() -> None:
    secure = TrainingConfig(secure_aggregation=True, strategy="fedprox", min_sites=3)
    assert TrainingConfig.from_run_config(secure.to_run_config()) == secure
    assert secure.to_run_config()["secagg-quantization-range"] == 2**22  # Flower's default
    for bad, words in (({"strategy": "fedadam"}, "fedavg or fedprox"),
                       ({"min_sites": 1}, "min_sites >= 2"),
                       ({"secagg_quantization_range": 2**32}, "quantization"),
                       ({"secagg_max_weight": 0.0}, "positive")):
        with pytest.raises(ValueError, match=words):
            TrainingConfig(secure_aggregation=True, **bad)


def test_consent_is_asked_per_patient_at_load_time() -> None:
    site = SyntheticSite(0, 2, samples=80)
    asked: list[tuple[str, str]] = []

    def odd_patients_only(patient: str, purpose: str) -> bool:
        asked.append((patient, purpose))
        return int(patient.rsplit("-", 1)[1]) % 2 == 1

    data = load_site_data(site, odd_patients_only, "federated-training")
    patients = {p for p, _ in asked}
    assert len(asked) == len(patients) == 20  # once per patient, 4 images each
    assert {purpose for _, purpose in asked} == {"federated-training"}
    assert data.excluded == 40
    assert len(data.train_labels) + len(data.val_labels) == 40


def test_synthetic_sites_are_non_iid() -> None:
    shares = []
    for index in range(2):
        data = load_site_data(SyntheticSite(index, 2, samples=400), everyone_consents, "x")
        shares.append(np.mean(data.train_labels == 0))
    assert shares[0] > 0.7 and shares[1] < 0.3


def test_signed_bundle_is_accepted(tmp_path: Path) -> None:
    bundle = build_bundle(tmp_path)
    publisher = Ed25519PrivateKey.generate()
    signature = sign_app(bundle.fab, bundle.fab_id, bundle.version, publisher)
    signature = AppSignature.from_json(signature.to_json())  # as it travels
    assert verify_app(bundle.fab, signature, [publisher.public_key()]) == bundle.sha256
    # The same app built again is the same bytes, so the signature still holds.
    assert build_bundle(tmp_path / "again").sha256 == bundle.sha256


def test_unsigned_or_altered_bundles_are_refused(tmp_path: Path) -> None:
    bundle = build_bundle(tmp_path)
    publisher, stranger = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    signature = sign_app(bundle.fab, bundle.fab_id, bundle.version, publisher)
    with pytest.raises(AppNotTrusted, match="not trusted"):
        verify_app(bundle.fab, signature, [stranger.public_key()])
    with pytest.raises(AppNotTrusted, match="SHA-256"):
        verify_app(bundle.fab + b"\0", signature, [publisher.public_key()])
    forged = sign_app(bundle.fab, bundle.fab_id, bundle.version, stranger)
    relabelled = AppSignature(**{**forged.__dict__, "key_id": signature.key_id})
    with pytest.raises(AppNotTrusted, match="does not verify"):
        verify_app(bundle.fab, relabelled, [publisher.public_key()])
    renamed = AppSignature(**{**signature.__dict__, "version": "9.9.9"})
    with pytest.raises(AppNotTrusted, match="does not verify"):
        verify_app(bundle.fab, renamed, [publisher.public_key()])


def test_guard_hooks_the_clientapp_runner(monkeypatch: pytest.MonkeyPatch) -> None:
    # The guard wraps this function of the pinned flwr; if Flower renames it, fail here.
    from flwr.supernode.runtime import run_clientapp

    assert callable(run_clientapp.install_from_fab)
    installed: list[bytes] = []
    checked = guard._checked_install(lambda fab, **kw: installed.append(fab) or "done")
    monkeypatch.setenv(guard.ALLOWED_ENV, "ab" * 32)
    with pytest.raises(guard.FabNotAllowed):
        checked(b"some other app", skip_prompt=True)
    assert installed == []
    monkeypatch.setenv(guard.ALLOWED_ENV, hashlib.sha256(b"our app").hexdigest())
    assert checked(b"our app", skip_prompt=True) == "done"


def test_port_in_use_is_reported_clearly(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.41.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(PortInUse, match=f"127.0.41.1:{port} is already in use"):
            check_port_free("127.0.41.1", port)
        with pytest.raises(PortInUse):
            SuperLink.start(tmp_path / "hub", host="127.0.41.1", port=port)


def test_servers_stay_on_loopback(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"127\.0\.0\.0/8"):
        SuperLink.start(tmp_path, host="10.0.0.1")


def test_dead_superlink_is_reported_clearly(tmp_path: Path) -> None:
    link = SuperLink.start(tmp_path / "hub", host="127.0.41.2", port=9093)
    control = Control(link.address, link.tls.ca_cert, tmp_path / "cli")
    assert control.supernodes() == []
    link.stop()
    assert not link.alive()
    with pytest.raises(SuperLinkUnavailable, match=r"127\.0\.41\.2:9093 is unavailable"):
        control.supernodes()


def test_node_config_is_quoted_for_flower() -> None:
    text = format_node_config({"site": "site-a", "samples": 10, "data": "synthetic"})
    assert text == 'site="site-a" samples=10 data="synthetic"'
    with pytest.raises(ValueError):
        format_node_config({"site": 'a" evil="1'})
