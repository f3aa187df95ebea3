"""Flower's SuperNode and SuperExec, with their polls paced to what the site is doing.

Both poll on fixed timers in the pinned Flower (1.42):

* The SuperNode asks the SuperLink for a message, and when there is none it sleeps 3 s
  (`time.sleep(3)` in `flwr.supernode.start_client_internal`). After a site replies, its
  next message comes as soon as the hub has every site's reply and has aggregated them:
  the fixed 3 s wait was most of the time between two rounds.
* The SuperExec asks for a task every FLWR_SUPEREXEC_TASK_POLL_INTERVAL (0.2 s here, so a
  message's ClientApp starts at once), also while the task it started is training; every
  ask is an HTTPS request, and on a small machine those take CPU from the training.

Paced here:

* SuperNode: after pushing a reply it asks again after QUICK_S, each later pause GROWTH
  times the last, back to Flower's 3 s within about 15 s. A site idle between jobs polls
  as Flower does. The reply of its ClientApp it looks for every REPLY_S, not 0.5 s (that
  wait is in its own memory).
* Objects of a message (the model's arrays) still being uploaded are asked again after
  QUICK_S, not 1 s (`quick_object_pulls`, in the SuperNode and the app processes).
* SuperExec: while a task it launched still runs, no other can come for it (a SuperNode
  hands out one message at a time; a SuperLink runs one ServerApp per run), so it waits
  for that task to end, asking again after BUSY_S at the latest; otherwise it polls at its
  configured interval.

Each patch replaces the `time` module inside one Flower module with a stand-in whose
`sleep` paces, so it is tied to the pinned flwr version (test_units checks the hooks).
`python -m incisive_node.fl.pacing supernode ARGS` runs `flower-supernode ARGS`; the
SuperNode and SuperLink find a `flower-superexec` written by `write_superexec` first on
their PATH.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import select
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

FLOWER_IDLE_S = 3.0  # the SuperNode's fixed idle wait in flwr 1.42
FLOWER_REPLY_S = 0.5  # ... and its wait for a ClientApp's reply in its own memory
REPLY_S = 0.1
QUICK_S = 0.2
GROWTH = 1.25
BUSY_S = 2.0


class SuperNodeClock:
    """Stands in for `time` in start_client_internal: its idle wait starts short after a
    reply was pushed and grows back to Flower's; it looks for a ClientApp's reply (in its
    own memory, no request) every REPLY_S; every other call is the real `time`'s."""

    def __init__(self) -> None:
        self.pause = FLOWER_IDLE_S

    def __getattr__(self, name: str) -> Any:
        return getattr(time, name)

    def replied(self) -> None:
        self.pause = QUICK_S

    def sleep(self, seconds: float) -> None:
        if seconds == FLOWER_IDLE_S:
            seconds = self.pause
            self.pause = min(self.pause * GROWTH, FLOWER_IDLE_S)
        elif seconds == FLOWER_REPLY_S:
            seconds = REPLY_S
        time.sleep(seconds)


class SuperExecClock:
    """Stands in for `time` in run_superexec: while a task it launched runs, its poll waits
    for that task's end (BUSY_S at most) instead of asking for another."""

    def __init__(self, children: Callable[[], list[int]] | None = None) -> None:
        self._children = children or running_children

    def __getattr__(self, name: str) -> Any:
        return getattr(time, name)

    def sleep(self, seconds: float) -> None:
        tasks = self._children()
        if not tasks:
            time.sleep(seconds)
            return
        wait_for_any_exit(tasks, max(seconds, BUSY_S))


def running_children() -> list[int]:
    """This process's children that have not exited (zombies left out); empty where /proc
    does not list them."""
    pids: list[int] = []
    with contextlib.suppress(OSError):
        for task in os.listdir("/proc/self/task"):
            with contextlib.suppress(OSError):
                listed = Path(f"/proc/self/task/{task}/children").read_text()
                pids += [int(p) for p in listed.split()]
    alive = []
    for pid in pids:
        with contextlib.suppress(OSError):
            if Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] not in "ZX":
                alive.append(pid)
    return alive


def wait_for_any_exit(pids: list[int], timeout_s: float) -> None:
    """Return when one of `pids` exits, or after `timeout_s`."""
    fds = []
    try:
        for pid in pids:
            with contextlib.suppress(OSError):  # gone already
                fds.append(os.pidfd_open(pid))
        if len(fds) == len(pids):
            select.select(fds, [], [], timeout_s)
    finally:
        for fd in fds:
            os.close(fd)


def quick_object_pulls() -> None:
    """A message is visible to its receiver before all its objects are uploaded; an object
    not there yet is asked again after 1 s in Flower (then 2, 4...), while a model of a few
    megabytes uploads in well under that. Retry after QUICK_S instead (still doubling)."""
    utils = importlib.import_module("flwr.supercore.inflatable.inflatable_utils")
    for pull in (utils.pull_objects, utils.pull_and_inflate_object_from_tree):
        pull.__kwdefaults__["initial_backoff"] = QUICK_S


def supernode(argv: list[str]) -> None:
    from flwr.supernode.cli import flower_supernode

    internal = importlib.import_module("flwr.supernode.start_client_internal")

    clock = SuperNodeClock()
    push = internal._push_messages

    def push_then_hurry(*args: Any, **kwargs: Any) -> Any:
        try:
            return push(*args, **kwargs)
        finally:
            clock.replied()

    internal.time = clock  # type: ignore[assignment]
    internal._push_messages = push_then_hurry
    quick_object_pulls()
    sys.argv = ["flower-supernode", *argv]
    flower_supernode()


def superexec(argv: list[str]) -> None:
    from flwr.supercore.cli import flower_superexec

    run_superexec = importlib.import_module("flwr.supercore.superexec.run_superexec")
    run_superexec.time = SuperExecClock()  # type: ignore[assignment]
    sys.argv = ["flower-superexec", *argv]
    flower_superexec()


def write_superexec(folder: Path) -> Path:
    """Write `folder/flower-superexec`, found before Flower's own on the PATH of the
    SuperNode or SuperLink that starts it; the same process (no extra exec)."""
    folder.mkdir(parents=True, exist_ok=True)
    shim = folder / "flower-superexec"
    shim.write_text(
        f"#!{sys.executable}\n"
        "import sys\n"
        "from incisive_node.fl.pacing import superexec\n"
        "superexec(sys.argv[1:])\n"
    )
    shim.chmod(0o755)
    return shim


def main() -> None:
    roles = {"supernode": supernode, "superexec": superexec}
    if len(sys.argv) < 2 or sys.argv[1] not in roles:
        sys.exit("usage: python -m incisive_node.fl.pacing supernode|superexec [ARGS...]")
    roles[sys.argv[1]](sys.argv[2:])


if __name__ == "__main__":
    main()
