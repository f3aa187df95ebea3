"""Federated-learning overhead: the same model and epochs trained locally vs federated.

Two synthetic sites on loopback. First each site's share is trained locally, in its own
process (one CPU thread each, both at once, as the two SuperNodes will run), for the same
rounds x epochs, with the same per-round validation the ClientApp does; the slower of the
two training loops is the training compute. Then the same training runs federated through
real Flower processes (SuperLink with TLS and SuperNode authentication, two SuperNodes).

* Wall-time ratio = federated wall time (run submitted -> the ServerApp's `completed`
  event: final model saved, the moment a TrainingJob turns Completed) / training compute.
  Everything beyond 1.0 is federation: process start-up, a ClientApp process per message,
  polling, TLS, serialisation, aggregation. Target <= 1.15. When Flower itself reports the
  run finished (the ServerApp process has exited) is printed beside it.
* Bytes per round per site / model size: bytes counted on the wire by a TCP proxy in
  front of the SuperLink's Fleet port (both directions, TLS records and HTTP included,
  heartbeats and idle polls too; with TCP_NODELAY, so it adds no Nagle delay of its own),
  over the whole run, divided by rounds and sites; the model size is its float32
  weights, uncompressed. Target <= 2.2. Flower's own per-run message counters are
  printed beside it. The run skips the extra final-evaluation
  message (one more model download per site), because it is not part of a training round.

    .venv/bin/python bench/fl_overhead.py [--rounds 2] [--epochs 200] [--samples 2000] [--cold]

With --cold, the federated run is repeated with every ClientApp and ServerApp started as a
cold process, as Flower does by itself, and its wall time printed beside the warm run's
(fl/warm.py is what differs).

Exit status 1 when a target is missed.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import multiprocessing
import socket
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

TARGET_WALL = 1.15
TARGET_BYTES = 2.2
HUB = "127.0.45.100"
PROXY = "127.0.45.200"


class CountingProxy:
    """Forwards TCP connections to the SuperLink and counts the bytes each way."""

    def __init__(self, listen: tuple[str, int], target: tuple[str, int]) -> None:
        self.target = target
        self.up = 0  # site -> hub
        self.down = 0  # hub -> site
        self._lock = threading.Lock()
        self._server = socket.create_server(listen)
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._server.accept()
            except OSError:
                return
            upstream = socket.create_connection(self.target)
            for end in (client, upstream):  # forward each write at once, as a direct link would
                end.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            threading.Thread(target=self._pipe, args=(client, upstream, True), daemon=True).start()
            threading.Thread(target=self._pipe, args=(upstream, client, False), daemon=True).start()

    def _pipe(self, source: socket.socket, sink: socket.socket, up: bool) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
                with self._lock:
                    if up:
                        self.up += len(data)
                    else:
                        self.down += len(data)
        except OSError:
            pass
        finally:
            for s in (source, sink):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        # shutdown wakes the thread blocked in accept(); close alone would leave the port bound.
        with contextlib.suppress(OSError):
            self._server.shutdown(socket.SHUT_RDWR)
        self._server.close()


def _local_site(index: int, config_items: dict, samples: int, queue: multiprocessing.Queue) -> None:
    import torch

    from incisive_node.fl.config import TrainingConfig
    from incisive_node.fl.data import everyone_consents, load_site_data
    from incisive_node.fl.model import build_model, evaluate, train
    from incisive_node.fl.synthetic import SyntheticSite

    torch.set_num_threads(1)
    config = TrainingConfig(**config_items)
    site = SyntheticSite(index, 2, samples, config.image_size, config.num_classes, config.seed)
    data = load_site_data(site, everyone_consents, config.purpose)
    model = build_model(config)
    started = time.perf_counter()
    for round_ in range(1, config.rounds + 1):
        evaluate(model, data.val_images, data.val_labels)
        train(model, data.train_images, data.train_labels, config, seed=round_)
    queue.put((index, time.perf_counter() - started))


def local_compute(config_items: dict, samples: int) -> list[float]:
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    workers = [
        context.Process(target=_local_site, args=(i, config_items, samples, queue))
        for i in range(2)
    ]
    for worker in workers:
        worker.start()
    times = dict(queue.get() for _ in workers)
    for worker in workers:
        worker.join()
    return [times[0], times[1]]


def federated(config: Any, samples: int, tmp_root: Path | None, *,
              warm: bool) -> tuple[Any, float, float, int, int]:
    """One federated run through real Flower processes: (result, seconds until the final
    model was saved, seconds until Flower reported the run finished, bytes up, down)."""
    from incisive_node.fl.loopback import LoopbackFederation

    with tempfile.TemporaryDirectory(dir=tmp_root) as tmp:
        fed = LoopbackFederation(
            Path(tmp), 2, block="127.0.45", samples=samples, fleet_host=PROXY, warm=warm
        )
        proxy = CountingProxy((PROXY, 9093), (HUB, 9093))
        try:
            fed.start()
            if fed.control is None or fed.bundle is None:
                raise RuntimeError("the federation did not start")
            up0, down0 = proxy.up, proxy.down  # registration and start-up are not the run
            started = time.perf_counter()
            saved = [math.inf]

            def on_event(event: dict) -> None:
                # The ServerApp's `completed` event: the model is saved, and it is what a
                # TrainingJob's status turns Completed on.
                if event["event"] == "completed":
                    saved[0] = time.perf_counter() - started

            handle = fed.control.start_run(fed.bundle.app_dir, config, Path(tmp) / "run")
            result = fed.control.wait(handle, timeout_s=3600, poll_s=0.25, on_event=on_event)
            finished = time.perf_counter() - started
            return result, saved[0], finished, proxy.up - up0, proxy.down - down0
        finally:
            fed.stop()
            proxy.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=200)
    parser.add_argument("--samples", type=int, default=2000, help="images per site")
    parser.add_argument("--tmp", type=Path, default=None)
    parser.add_argument("--cold", action="store_true",
                        help="also run the federation with cold app processes (no warm "
                        "server) and print its ratio beside the warm one")
    args = parser.parse_args()

    from incisive_node.fl.config import TrainingConfig
    from incisive_node.fl.model import build_model, model_bytes

    config = TrainingConfig(
        rounds=args.rounds,
        local_epochs=args.epochs,
        image_size=32,
        width=16,
        hidden=128,
        final_evaluation=False,
        round_timeout_s=1800.0,
    )
    items = {k: getattr(config, k) for k in config.__dataclass_fields__}
    size = model_bytes(build_model(config))
    print(f"model: {size:,} bytes (float32); {args.rounds} rounds x {args.epochs} epochs;"
          f" {args.samples} images per site", flush=True)

    compute = local_compute(items, args.samples)
    print(f"local training compute per site: {compute[0]:.1f}s, {compute[1]:.1f}s", flush=True)

    result, wall, finished, up, down = federated(config, args.samples, args.tmp, warm=True)
    if not result.succeeded:
        print(f"federated run failed: {result.reason}", file=sys.stderr)
        return 1
    cold_wall = None
    if args.cold:
        cold, cold_wall, _, _, _ = federated(config, args.samples, args.tmp, warm=False)
        if not cold.succeeded:
            print(f"cold federated run failed: {cold.reason}", file=sys.stderr)
            return 1

    rounds = args.rounds
    wall_ratio = wall / max(compute)
    per_site_round = (up + down) / 2 / args.rounds
    bytes_ratio = per_site_round / size
    flower = (result.inbound_bytes + result.outbound_bytes) / 2 / args.rounds / size
    in_app = sum(r.get("train_seconds_max", 0.0) for r in result.rounds)
    rows = [
        ("training compute (slower site, local)", f"{max(compute):.1f} s", ""),
        ("training time inside the ClientApps", f"{in_app:.1f} s", "(slower site, summed)"),
        ("federated wall time", f"{wall:.1f} s", "(run submitted -> model saved)"),
        ("  Flower reports the run finished at", f"{finished:.1f} s", ""),
        ("wall-time ratio", f"{wall_ratio:.3f}", f"<= {TARGET_WALL}"),
        *([("  cold app processes: wall / ratio",
            f"{cold_wall:.1f} s / {cold_wall / max(compute):.3f}", "(no warm server)")]
          if cold_wall is not None else []),
        ("model size", f"{size:,} B", ""),
        ("wire bytes per site per round (proxy)", f"{per_site_round:,.0f} B", ""),
        ("  of which up / down", f"{up / 2 / rounds:,.0f} / {down / 2 / rounds:,.0f}", ""),
        ("bytes ratio (wire / model)", f"{bytes_ratio:.3f}", f"<= {TARGET_BYTES}"),
        ("Flower's own counters / model", f"{flower:.3f}", "(for comparison)"),
    ]
    width = max(len(r[0]) for r in rows)
    for name, value, target in rows:
        print(f"{name:<{width}}  {value:>22}  {target}")
    missed = []
    if wall_ratio > TARGET_WALL:
        missed.append(f"wall-time ratio {wall_ratio:.3f} > {TARGET_WALL}")
    if bytes_ratio > TARGET_BYTES:
        missed.append(f"bytes ratio {bytes_ratio:.3f} > {TARGET_BYTES}")
    for line in missed:
        print(f"MISSED: {line}", file=sys.stderr)
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
