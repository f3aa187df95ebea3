"""End to end with real Flower processes on loopback.

What stands in for what: 127.0.40.100 is the hub (a real `flower-superlink` with TLS,
`--database` and SuperNode authentication); 127.0.40.1, .2, ... are hospitals (real
`flower-supernode`s dialling out with their own keys, running ClientApps only for the app
bundle they verified). Each site trains on synthetic, non-IID images with a learnable signal.
A Flower round costs about ten seconds here (a new ClientApp process per message, importing
torch), so runs are short and sites are few.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from incisive_node.fl.config import TrainingConfig
from incisive_node.fl.loopback import LoopbackFederation
from incisive_node.fl.metrics import read_events
from incisive_node.fl.processes import SuperLink

FAST = {"local_epochs": 3, "site_wait_s": 60.0, "round_timeout_s": 60.0}


@pytest.fixture(scope="module")
def federation(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LoopbackFederation]:
    with LoopbackFederation(tmp_path_factory.mktemp("fl"), site_count=2) as fed:
        yield fed


def test_fedavg_learns_across_two_sites(federation: LoopbackFederation) -> None:
    result = federation.run(TrainingConfig(rounds=3, **FAST), "fedavg")
    assert result.succeeded, result.reason
    rounds = result.rounds
    assert [r["round"] for r in rounds] == [0, 1, 2, 3]
    assert all(r["sites"] == ["site-1", "site-2"] for r in rounds)
    accuracy = [r["eval_accuracy"] for r in rounds]
    assert accuracy[-1] > 0.75, accuracy  # two classes: chance is 0.5
    assert accuracy[-1] > accuracy[0] + 0.2, accuracy
    assert accuracy[-1] >= accuracy[1], accuracy
    assert all("train_loss" in r for r in rounds[1:])
    # The final model at the hub, with the hash the status reports.
    import hashlib

    assert result.model_path is not None
    assert hashlib.sha256(result.model_path.read_bytes()).hexdigest() == result.model_sha256


def test_fedprox_with_local_differential_privacy(federation: LoopbackFederation) -> None:
    config = TrainingConfig(
        strategy="fedprox", rounds=1, proximal_mu=0.1, dp="local", final_evaluation=False, **FAST
    )
    result = federation.run(config, "fedprox-dp")
    assert result.succeeded, result.reason
    assert result.rounds[-1]["sites"] == ["site-1", "site-2"]
    for site in federation.sites.values():
        log = (site.state_dir / "supernode.log").read_text()
        assert "LocalDpMod: parameters are clipped" in log
        assert "local DP noise" in log


def test_fedadam_runs(federation: LoopbackFederation) -> None:
    config = TrainingConfig(strategy="fedadam", rounds=2, final_evaluation=False, **FAST)
    result = federation.run(config, "fedadam")
    assert result.succeeded, result.reason
    assert [r["round"] for r in result.rounds] == [0, 1, 2]


def test_superlink_restart_keeps_runs_and_sites(federation: LoopbackFederation) -> None:
    """The SuperLink's --database: after a restart it still knows its runs and SuperNodes."""
    control, link = federation.control, federation.superlink
    assert control is not None and link is not None
    nodes = {n["node-id"] for n in control.supernodes()}
    finished = {r.run_id: r.status for r in control.runs()}
    assert "finished:completed" in finished.values()
    link.stop()
    federation.superlink = SuperLink.start(link.state_dir, host=link.host, port=link.port)
    assert {r.run_id: r.status for r in control.runs()} == finished
    assert {n["node-id"] for n in control.supernodes()} == nodes


def test_site_killed_mid_run(tmp_path: Path) -> None:
    """Three sites, min_sites=2: one killed, the run goes on; a second killed, it fails."""
    with LoopbackFederation(tmp_path, site_count=3, block="127.0.42") as fed:
        assert fed.control is not None and fed.bundle is not None
        config = TrainingConfig(rounds=4, min_sites=2, round_timeout_s=25.0)
        handle = fed.control.start_run(fed.bundle.app_dir, config, tmp_path / "run")
        killer = threading.Thread(target=_kill_in_rounds, args=(fed, handle.metrics_path))
        killer.start()
        result = fed.control.wait(handle, timeout_s=300)
        killer.join()
    assert result.status == "finished:failed"
    dropped = [e for e in result.events if e["event"] == "site-dropped"]
    assert [(e["site"], e["reason"]) for e in dropped] == [
        ("site-3", "no reply in time"),
        ("site-2", "no reply in time"),
    ]
    # After the first loss the run went on with the two sites left: the next round was
    # aggregated from them (its replies, scoring round r-1's model, name who took part).
    went_on = [r for r in result.rounds if r["round"] >= dropped[0]["round"] - 1]
    assert went_on and all(r["sites"] == ["site-1", "site-2"] for r in went_on)
    assert dropped[1]["round"] > dropped[0]["round"]
    # ... and after the second it stopped with a reason a person can act on.
    assert result.reason == (
        f"round {dropped[1]['round']}: 1 site(s) replied, fewer than min_sites=2"
    )


def _kill_in_rounds(fed: LoopbackFederation, metrics: Path) -> None:
    # Round 0's event comes with round 1's replies, so site-3 dies during round 2, and
    # site-2 dies once site-3's loss has been reported (during round 3).
    for victim, after_round in (("site-3", 0), ("site-2", None)):
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline:
            events = read_events(metrics)
            if after_round is not None:
                done = any(e["event"] == "round" and e["round"] >= after_round for e in events)
            else:
                done = any(e["event"] == "site-dropped" for e in events)
            if done:
                break
            time.sleep(0.2)
        fed.sites[victim].kill()


def test_site_refuses_an_app_it_did_not_verify(tmp_path: Path) -> None:
    with LoopbackFederation(tmp_path, site_count=0, block="127.0.43") as fed:
        assert fed.superlink is not None and fed.control is not None
        from incisive_node.fl.node_keys import ensure_node_keys
        from incisive_node.fl.processes import SuperNode

        keys = ensure_node_keys(tmp_path / "rogue-site" / "keys")
        fed.control.register_supernode(keys.public_openssh(), tmp_path / "reg")
        fed.sites["site-1"] = SuperNode.start(
            tmp_path / "rogue-site",
            site="site-1",
            superlink_address=fed.superlink.address,
            ca_cert=fed.superlink.tls.ca_cert,
            private_key=keys.private_key,
            allowed_fabs=["0" * 64],  # the site accepted some other app
            node_config={"data": "synthetic"},
            host="127.0.43.1",
        )
        fed.control.wait_for_supernodes(1)
        result = fed.run(TrainingConfig(rounds=1, min_sites=1, round_timeout_s=60), "refused")
    assert result.status == "finished:failed"
    dropped = [e for e in result.events if e["event"] == "site-dropped"]
    assert dropped and dropped[0]["reason"].startswith("error code")
    log = (tmp_path / "rogue-site" / "supernode.log").read_text()
    assert "is not an app this site accepted" in log
    assert not list((tmp_path / "rogue-site" / "flwr-home").glob("apps/*")), "FAB installed"
