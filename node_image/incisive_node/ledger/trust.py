"""What a verifier trusts, in one JSON file: the log key, the witnesses, the quorum, submitters.

    {"log": "<vkey>", "witnesses": ["<vkey>", ...], "quorum": 2,
     "submitters": {"<actor fingerprint>": "<base64 raw Ed25519 public key>"}}
"""

from __future__ import annotations

import base64
import json
import logging
import os
import threading
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from .cosignature import CosignatureVerifier
from .entries import SignedEntry, Submitters
from .note import NoteError, parse_vkey, raw_public
from .policy import WitnessPolicy


@dataclass(frozen=True)
class Trust:
    policy: WitnessPolicy
    submitters: Submitters | None = None

    def to_json(self) -> str:
        document: dict = {
            "log": self.policy.log.vkey(),
            "witnesses": [w.vkey() for w in self.policy.witnesses],
            "quorum": self.policy.quorum,
        }
        if self.submitters is not None:
            document["submitters"] = {actor: base64.b64encode(raw_public(key)).decode()
                                      for actor, key in self.submitters.items()}
        return json.dumps(document, indent=2, sort_keys=True) + "\n"


log = logging.getLogger(__name__)


def load(path: str | Path) -> Trust:
    document = json.loads(Path(path).read_text())
    log = parse_vkey(document["log"])
    if isinstance(log, CosignatureVerifier):
        raise NoteError("the log key must be an Ed25519 note key (type 0x01)")
    witnesses = tuple(parse_vkey(v) for v in document.get("witnesses", []))
    if not all(isinstance(w, CosignatureVerifier) for w in witnesses):
        raise NoteError("witness keys must be cosignature/v1 keys (type 0x04)")
    policy = WitnessPolicy(log, witnesses, int(document.get("quorum", 0)))  # type: ignore[arg-type]
    submitters = None
    if "submitters" in document:
        submitters = _submitters(document["submitters"])
    return Trust(policy, submitters)


def _submitters(listed: dict[str, str]) -> Submitters:
    submitters = Submitters()
    for actor, key in listed.items():
        submitters.add(actor, Ed25519PublicKey.from_public_bytes(base64.b64decode(key)))
    return submitters


class SubmittersFile(Submitters):
    """The submitters of a trust file, re-read whenever the file changes: a running log
    accepts a newly enrolled site, or stops accepting a removed one, without a restart.
    A file that no longer parses keeps the previous list (and says so)."""

    def __init__(self, path: str | Path) -> None:
        super().__init__()
        self.path = Path(path)
        self._stamp: tuple[int, int] | None = None
        self._reload_lock = threading.Lock()
        self._refresh()

    def _refresh(self) -> None:
        stat = os.stat(self.path)
        stamp = (stat.st_mtime_ns, stat.st_size)
        if stamp == self._stamp:
            return
        with self._reload_lock:
            if stamp == self._stamp:
                return
            try:
                listed = json.loads(self.path.read_text()).get("submitters", {})
                fresh = _submitters(listed)
            except (OSError, ValueError, TypeError, AttributeError) as exc:
                if self._stamp is None:
                    raise
                log.error("trust file %s unreadable (%s); keeping the previous submitters",
                          self.path, type(exc).__name__)
                self._stamp = stamp
                return
            self._keys = dict(fresh.items())
            self._stamp = stamp

    def verify(self, signed: SignedEntry) -> None:
        try:
            self._refresh()
        except OSError as exc:
            log.error("trust file %s unreadable (%s)", self.path, type(exc).__name__)
        super().verify(signed)
