"""`incisive-node annotate ...`: pre-annotate the store with a verified model, review
proposals from the command line, or serve the review API. Proposals are printed as JSON
lines without pseudonyms."""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
import threading
from pathlib import Path
from typing import Any

from incisive_node.store import Store


def register(subparsers: Any) -> None:
    annotate = subparsers.add_parser(
        "annotate", help="ML-assisted annotation: proposals, review, the review API",
        description="Pre-annotate stored series with a federated model (verified by its"
        " SHA-256), and review the proposals; see docs/annotation.md.",
    )
    sub = annotate.add_subparsers(dest="annotate_command", required=True)
    run = sub.add_parser("run", help="propose for every series this model has not seen")
    _store(run)
    _model(run, required=True)
    run.set_defaults(handler=run_pass)

    queue = sub.add_parser("queue", help="pending proposals, most uncertain first")
    _store(queue)
    queue.add_argument("--task", choices=("classification", "segmentation"))
    queue.add_argument("--limit", type=int, default=100)
    queue.set_defaults(handler=run_queue)

    for name, helptext in (("accept", "accept a proposal as it is"),
                           ("reject", "reject a proposal (no label is made)")):
        cmd = sub.add_parser(name, help=helptext)
        _store(cmd)
        cmd.add_argument("proposal_id", metavar="PROPOSAL_ID")
        cmd.set_defaults(handler=run_review, action=name)
    correct = sub.add_parser("correct", help="correct a proposal: a label, or a SEG file")
    _store(correct)
    correct.add_argument("proposal_id", metavar="PROPOSAL_ID")
    given = correct.add_mutually_exclusive_group(required=True)
    given.add_argument("--label", type=int, help="the right class number (classification)")
    given.add_argument("--seg", type=Path, help="a DICOM SEG with the right masks")
    correct.set_defaults(handler=run_review, action="correct")

    serve = sub.add_parser("serve", help="serve the review API (and annotate periodically)")
    _store(serve)
    _model(serve, required=False)
    serve.add_argument("--every", type=float, default=300.0, metavar="SECONDS",
                       help="with --model: run an annotation pass this often (default 300)")
    serve.add_argument("--host", default="127.0.0.1",
                       help="listen address (default loopback; others need --listen-external)")
    serve.add_argument("--listen-external", action="store_true",
                       help="allow a non-loopback --host (inside a pod, behind its"
                       " NetworkPolicy)")
    serve.add_argument("--port", type=int, default=8082)
    serve.set_defaults(handler=run_serve)


def _store(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--store", type=Path, required=True, metavar="STORE_DIR")
    parser.add_argument("--index", help="PostgreSQL URL for the index (default: SQLite)")


def _model(parser: argparse.ArgumentParser, *, required: bool) -> None:
    parser.add_argument("--model", type=Path, required=required, metavar="MODEL_PT",
                        help="the final model of a TrainingJob (model.pt)")
    parser.add_argument("--model-sha256", required=required, metavar="HEX",
                        help="the SHA-256 the TrainingJob recorded for it")
    parser.add_argument("--model-config", type=Path, metavar="JSON",
                        help="its run config (default: model.json beside the model)")


def _load(args: argparse.Namespace) -> Any:
    from incisive_node.annotation.model_ref import ModelReference, load_model
    from incisive_node.fl.config import TrainingConfig

    config = None
    if args.model_config is not None:
        recorded = json.loads(args.model_config.read_text(encoding="utf-8"))
        config = TrainingConfig.from_run_config(recorded.get("config", recorded))
    return load_model(ModelReference(args.model, args.model_sha256, config))


def run_pass(args: argparse.Namespace) -> int:
    from incisive_node.annotation.model_ref import ModelRefused
    from incisive_node.annotation.service import Annotator

    try:
        model = _load(args)
    except ModelRefused as refused:
        print(f"refused: {refused}", file=sys.stderr)
        return 2
    with Store(args.store, args.index) as store:
        summary = Annotator(store, model).annotate_pending()
    for proposal in summary.proposed:
        print(json.dumps(proposal.summary(), sort_keys=True))
    print(f"{len(summary.proposed)} proposed, {summary.skipped} series skipped",
          file=sys.stderr)
    return 0


def run_queue(args: argparse.Namespace) -> int:
    from incisive_node.annotation.records import AnnotationRecords

    with Store(args.store, args.index) as store:
        for proposal in AnnotationRecords(store.index).queue(args.task, args.limit):
            print(json.dumps(proposal.summary(), sort_keys=True))
    return 0


def run_review(args: argparse.Namespace) -> int:
    from incisive_node.annotation.review import ReviewRefused, Reviews

    with Store(args.store, args.index) as store:
        reviews = Reviews(store)
        try:
            if args.action == "accept":
                done = reviews.accept(args.proposal_id)
            elif args.action == "reject":
                done = reviews.reject(args.proposal_id)
            elif args.seg is not None:
                done = reviews.correct_masks(args.proposal_id, args.seg.read_bytes())
            else:
                done = reviews.correct_label(args.proposal_id, args.label)
        except ReviewRefused as refused:
            print(f"refused: {refused}", file=sys.stderr)
            return 2
    print(json.dumps(done.summary(), sort_keys=True))
    return 0


def run_serve(args: argparse.Namespace) -> int:
    from incisive_node.annotation.model_ref import ModelRefused
    from incisive_node.annotation.review_api import ReviewServer
    from incisive_node.annotation.service import Annotator

    logging.basicConfig(level=logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if (args.model is None) != (args.model_sha256 is None):
        print("refused: --model and --model-sha256 go together", file=sys.stderr)
        return 2
    try:
        model = _load(args) if args.model is not None else None
    except ModelRefused as refused:
        print(f"refused: {refused}", file=sys.stderr)
        return 2
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    with Store(args.store, args.index) as store, ReviewServer(
        store, host=args.host, port=args.port, allow_external=args.listen_external
    ) as server:
        print(f"review API on {server.url} (/annotation, /metrics, /healthz)",
              file=sys.stderr, flush=True)
        annotator = Annotator(store, model, server.api.records) if model else None
        while not stop.is_set():
            if annotator is not None:
                annotator.annotate_pending()
            stop.wait(args.every if annotator is not None else 3600)
    return 0
