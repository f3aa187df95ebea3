"""What a verifier trusts, in one JSON file: the log key, the witnesses, the quorum, submitters.

    {"log": "<vkey>", "witnesses": ["<vkey>", ...], "quorum": 2,
     "submitters": {"<actor fingerprint>": "<base64 raw Ed25519 public key>"}}
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from .cosignature import CosignatureVerifier
from .entries import Submitters
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
        submitters = Submitters()
        for actor, key in document["submitters"].items():
            submitters.add(actor, Ed25519PublicKey.from_public_bytes(base64.b64decode(key)))
    return Trust(policy, submitters)
