"""Run a real kopf operator inside the test process, against a testbed cluster.

The operator gets its own thread and event loop (kopf is asyncio; tests are not), logs in
with the same credentials as the test's kubernetes client, and is stopped through kopf's
stop flag when the block ends.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import kopf

from incisive_operator import main


@contextmanager
def running_operator(
    registry: kopf.OperatorRegistry, api: Any, namespaces: list[str], memo_key: str,
    startup_timeout: float = 30.0,
) -> Iterator[None]:
    @kopf.on.login(registry=registry)
    def login(**_: Any) -> kopf.ConnectionInfo:
        return main._connection_info(api)

    stop_flag, ready_flag = threading.Event(), threading.Event()
    failure: list[BaseException] = []

    def run() -> None:
        try:
            asyncio.run(kopf.operator(
                registry=registry,
                settings=main.settings_for("hub"),
                memo=kopf.Memo(**{memo_key: api}),
                namespaces=namespaces,
                stop_flag=stop_flag,
                ready_flag=ready_flag,
            ))
        except BaseException as exc:  # surfaced to the test below
            failure.append(exc)
            ready_flag.set()

    thread = threading.Thread(target=run, name="kopf-operator", daemon=True)
    thread.start()
    if not ready_flag.wait(startup_timeout) or failure:
        stop_flag.set()
        raise RuntimeError(f"the operator did not start: {failure or 'timeout'}")
    try:
        yield
    finally:
        stop_flag.set()
        thread.join(timeout=30)
        if failure:
            raise RuntimeError("the operator stopped with an error") from failure[0]
