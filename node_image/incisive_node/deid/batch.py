"""De-identify a folder tree on every core: outputs named from pseudonymised UIDs, failures
copied to quarantine under their reason, and every input accounted for."""

from __future__ import annotations

import collections
import hashlib
import multiprocessing
import os
import pathlib
import shutil
import sys
from dataclasses import dataclass, field

from .engine import Deidentifier
from .keys import ProjectKeys
from .model import Options, Quarantined

_worker: dict = {}


@dataclass
class Summary:
    inputs: int = 0
    written: int = 0
    quarantined: collections.Counter = field(default_factory=collections.Counter)

    @property
    def accounted(self) -> bool:
        return self.inputs == self.written + sum(self.quarantined.values())

    def lines(self) -> list[str]:
        out = [f"in: {self.inputs}", f"written: {self.written}",
               f"quarantined: {sum(self.quarantined.values())}"]
        out += [f"  {reason}: {n}" for reason, n in sorted(self.quarantined.items())]
        return out


def _init(keys: ProjectKeys, options: Options, out_dir: str, qdir: str, want_mapping: bool):
    _worker.update(engine=Deidentifier(keys, options), out=pathlib.Path(out_dir),
                   qdir=pathlib.Path(qdir), mapping=want_mapping)


def quarantine_copy(path: str | pathlib.Path, qdir: pathlib.Path, reason: str) -> pathlib.Path:
    """The original goes to QDIR/<reason>/<sha256>.bin: named by content, never by its
    (possibly identifying) file name. QDIR holds PHI and stays at the site."""
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
    except OSError:
        digest.update(os.fsencode(str(path)))  # unreadable: the name is hashed, never shown
    target = qdir / reason / f"{digest.hexdigest()[:32]}.bin"
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        shutil.copyfile(path, target)
    except OSError:
        target.touch()
    return target


def _one(path: str) -> tuple[str, str | None, dict | None]:
    src = path
    try:
        result, _ = _worker["engine"].write(src, _worker["out"])
    except Quarantined as q:
        quarantine_copy(src, _worker["qdir"], q.reason)
        return "quarantined", q.reason, None
    except OSError:
        quarantine_copy(src, _worker["qdir"], "unreadable")
        return "quarantined", "unreadable", None
    except Exception:
        quarantine_copy(src, _worker["qdir"], "internal-error")
        return "quarantined", "internal-error", None
    return "written", None, (result.mapping if _worker["mapping"] else None)


def _progress(done: int, total: int) -> None:
    width = 40
    filled = width * done // total if total else width
    sys.stderr.write(f"\r[{'#' * filled}{'.' * (width - filled)}] {done}/{total}")
    if done == total:
        sys.stderr.write("\n")
    sys.stderr.flush()


def inputs_of(src_dir: pathlib.Path) -> list[pathlib.Path]:
    """Every file under `src_dir` (symlinks to files included, symlinked folders not entered,
    as `rglob` does), from directory entries: no stat per file where the type is known."""
    found: list[str] = []
    stack = [os.fspath(src_dir)]
    while stack:
        with os.scandir(stack.pop()) as entries:
            for entry in entries:
                if entry.is_dir(follow_symlinks=False):
                    stack.append(entry.path)
                elif entry.is_file():
                    found.append(entry.path)
    return [pathlib.Path(p) for p in sorted(found, key=lambda p: pathlib.PurePath(p).parts)]


def run(src_dir: pathlib.Path, out_dir: pathlib.Path, qdir: pathlib.Path, keys: ProjectKeys,
        options: Options, workers: int | None = None, progress: bool = False,
        on_mapping=None) -> Summary:
    files = inputs_of(src_dir)
    summary = Summary(inputs=len(files))
    out_dir.mkdir(parents=True, exist_ok=True)
    qdir.mkdir(parents=True, exist_ok=True)
    workers = workers or os.cpu_count() or 1
    pending: dict = {}
    args = (keys, options, str(out_dir), str(qdir), on_mapping is not None)
    ctx = multiprocessing.get_context("fork" if sys.platform == "linux" else "spawn")
    with ctx.Pool(workers, initializer=_init, initargs=args) as pool:
        chunk = max(1, min(256, len(files) // (workers * 4) or 1))
        # Large chunks: one pickled round trip per chunk, not per file.
        for done, (kind, reason, mapping) in enumerate(
                pool.imap_unordered(_one, [str(f) for f in files], chunksize=chunk), 1):
            if kind == "written":
                summary.written += 1
            else:
                summary.quarantined[reason] += 1
            if mapping:
                pending.update(mapping)
                if len(pending) >= 2048:
                    on_mapping(pending)
                    pending = {}
            if progress:
                _progress(done, len(files))
    if pending:
        on_mapping(pending)
    return summary
