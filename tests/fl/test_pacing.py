"""The paced polls (fl/pacing.py) and the ServerApp's reply pulls (rounds.pull_pause).

Real processes where the behaviour is about processes (a SuperExec waiting for its task's
end); the Flower hooks are checked against the pinned flwr, so a rename fails here and not
in a run. That the pacing shortens a federated run end to end is what bench/fl_overhead.py
measures; the federation tests run through it.
"""

from __future__ import annotations

import importlib
import itertools
import subprocess
import sys
import time
from pathlib import Path

import pytest

from incisive_node.fl import pacing
from incisive_node.fl.rounds import POLL_MAX_S, POLL_S, pull_pause


def test_flower_still_has_what_pacing_hooks() -> None:
    internal = importlib.import_module("flwr.supernode.start_client_internal")
    superexec = importlib.import_module("flwr.supercore.superexec.run_superexec")
    utils = importlib.import_module("flwr.supercore.inflatable.inflatable_utils")
    assert internal.time is time or isinstance(internal.time, pacing.SuperNodeClock)
    assert callable(internal._push_messages)
    assert superexec.time is time or isinstance(superexec.time, pacing.SuperExecClock)
    for pull in (utils.pull_objects, utils.pull_and_inflate_object_from_tree):
        assert "initial_backoff" in pull.__kwdefaults__
    # The SuperNode's idle and reply waits are the literals the clock recognises.
    source = Path(internal.__file__).read_text()
    assert f"time.sleep({pacing.FLOWER_IDLE_S:g})" in source
    assert f"time.sleep({pacing.FLOWER_REPLY_S:g})" in source


def test_quick_object_pulls_changes_the_first_retry_only() -> None:
    utils = importlib.import_module("flwr.supercore.inflatable.inflatable_utils")
    before = dict(utils.pull_objects.__kwdefaults__)
    try:
        pacing.quick_object_pulls()
        after = utils.pull_objects.__kwdefaults__
        assert after["initial_backoff"] == pacing.QUICK_S
        assert {k: v for k, v in after.items() if k != "initial_backoff"} == {
            k: v for k, v in before.items() if k != "initial_backoff"
        }
    finally:
        utils.pull_objects.__kwdefaults__.update(before)


def test_supernode_idle_wait_is_quick_after_a_reply_and_grows_back(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    slept: list[float] = []
    monkeypatch.setattr(time, "sleep", slept.append)
    clock = pacing.SuperNodeClock()
    clock.sleep(3)  # idle before any message: Flower's own wait
    clock.replied()
    for _ in range(20):
        clock.sleep(3)
    clock.sleep(0.5)  # waiting for its ClientApp's reply
    clock.sleep(1.7)  # anything else passes through
    assert slept[0] == 3
    idle = slept[1:21]
    assert idle[0] == pytest.approx(pacing.QUICK_S)
    assert all(b >= a for a, b in itertools.pairwise(idle))
    assert idle[-1] == 3
    assert sum(idle[: idle.index(3)]) < 15  # back to Flower's pace within ~15 s
    assert slept[21:] == [pacing.REPLY_S, 1.7]
    assert clock.monotonic() > 0  # the rest of `time` is the real one


def _only(task: subprocess.Popen[bytes]) -> list[int]:
    # This test process has other children (the suite's servers): look at the task alone,
    # as read from /proc all the same.
    return [pid for pid in pacing.running_children() if pid == task.pid]


def test_superexec_waits_for_its_running_task_and_wakes_when_it_ends() -> None:
    task = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(0.6)"])
    clock = pacing.SuperExecClock(children=lambda: _only(task))
    try:
        assert _only(task) == [task.pid]
        started = time.monotonic()
        clock.sleep(0.05)  # a task runs: no poll until it ends (BUSY_S at most)
        waited = time.monotonic() - started
        assert 0.3 < waited < pacing.BUSY_S
        time.sleep(0.2)
        # Exited, a zombie until reaped: not running, so it polls at its own interval.
        assert _only(task) == []
        started = time.monotonic()
        clock.sleep(0.05)
        assert time.monotonic() - started < 0.5
    finally:
        task.wait()


def test_superexec_asks_again_after_busy_s_when_a_task_runs_long(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(pacing, "BUSY_S", 0.3)
    task = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(5)"])
    try:
        started = time.monotonic()
        pacing.SuperExecClock(children=lambda: _only(task)).sleep(0.05)
        assert 0.25 < time.monotonic() - started < 2.0
    finally:
        task.kill()
        task.wait()


def test_reply_pulls_slow_down_as_a_round_trains() -> None:
    assert pull_pause(0.0) == POLL_S
    assert pull_pause(2.0) == POLL_S
    assert pull_pause(10.0) == pytest.approx(0.5)
    assert pull_pause(600.0) == POLL_MAX_S
    # A reply is noticed at most 5% after it came (plus the quickest pause).
    assert all(pull_pause(t) <= max(POLL_S, t / 20) for t in range(0, 100))
