"""Which checkpoints a member of the federation accepts: the log's signature plus k of n witnesses.

One honest witness among the k is enough to stop a split view: it has cosigned one history
for the log and refuses (409/422) to cosign a second one. k is therefore chosen so that no
k witnesses can collude; the federation runs one witness per site and requires a majority.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .checkpoint import Checkpoint
from .cosignature import CosignatureVerifier
from .note import Ed25519Verifier, Note, NoteError, Verifier, parse, verified_signatures


class PolicyError(NoteError):
    """A checkpoint is not acceptable under the witness policy."""


@dataclass(frozen=True)
class WitnessPolicy:
    log: Ed25519Verifier
    witnesses: tuple[CosignatureVerifier, ...] = ()
    quorum: int = 0
    origin: str = field(default="")

    def __post_init__(self) -> None:
        if not 0 <= self.quorum <= len(self.witnesses):
            raise ValueError(f"a quorum of {self.quorum} is impossible with "
                             f"{len(self.witnesses)} witnesses")
        if len({(w.name, w.key_id) for w in self.witnesses}) != len(self.witnesses):
            raise ValueError("a witness is listed twice")

    @property
    def expected_origin(self) -> str:
        return self.origin or self.log.name

    def accept(self, data: bytes | Note) -> tuple[Checkpoint, list[str]]:
        """Return the checkpoint and the witnesses that cosigned it, or raise PolicyError."""
        try:
            note = parse(data) if isinstance(data, bytes) else data
            verifiers: list[Verifier] = [self.log, *self.witnesses]
            good = verified_signatures(note, verifiers)
            checkpoint = Checkpoint.parse(note.text)
        except NoteError as exc:
            raise PolicyError(str(exc)) from exc
        if checkpoint.origin != self.expected_origin:
            raise PolicyError("the checkpoint is for another log")
        if not any(v is self.log for v, _ in good):
            raise PolicyError("the checkpoint is not signed by the log")
        cosigners = sorted({v.name for v, _ in good if v is not self.log})
        if len(cosigners) < self.quorum:
            raise PolicyError(f"{len(cosigners)} of the required {self.quorum} witnesses "
                              f"cosigned size {checkpoint.size}")
        return checkpoint, cosigners
