"""A throwaway PostgreSQL server for the index tests: Debian's binaries, a temporary data
folder, trust authentication, listening on 127.0.0.1 only, on a free port.

PostgreSQL refuses to run as root. As root (CI) we run it as the `postgres` system user
the Debian package creates, in a data folder handed to that user; otherwise as ourselves.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from tests.ingest.ports import free_port


def find_bin_dir() -> Path | None:
    # Debian keeps the server binaries out of PATH, one folder per major version; a PATH
    # entry may be a lone symlink, so follow it to the folder that has all of them.
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=_version_key, reverse=True)
    on_path = shutil.which("initdb")
    if on_path:
        candidates.append(str(Path(on_path).resolve().parent))
    for folder in map(Path, candidates):
        if all((folder / tool).is_file() for tool in ("initdb", "postgres", "pg_isready")):
            return folder
    return None


def _version_key(path: str) -> int:
    try:
        return int(Path(path).parent.name)
    except ValueError:
        return 0


@dataclass
class PostgresServer:
    bin_dir: Path
    data_dir: Path
    port: int
    process: subprocess.Popen[bytes]
    user: str | None
    host: str = "127.0.0.1"

    def dsn(self, dbname: str = "postgres") -> str:
        return f"postgresql://incisive@{self.host}:{self.port}/{dbname}"

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        shutil.rmtree(self.data_dir.parent, ignore_errors=True)


def start(bin_dir: Path, host: str = "127.0.0.1") -> PostgresServer:
    run_as = "postgres" if os.geteuid() == 0 else None
    base = Path(tempfile.mkdtemp(prefix="incisive-pg-"))
    data = base / "data"
    if run_as:
        account = pwd.getpwnam(run_as)
        os.chown(base, account.pw_uid, account.pw_gid)
    subprocess.run(
        [bin_dir / "initdb", "-D", data, "-U", "incisive", "--auth=trust", "-E", "UTF8",
         "--no-sync"],
        check=True, capture_output=True, user=run_as, cwd=base,
    )
    port = free_port(host)
    process = subprocess.Popen(
        [bin_dir / "postgres", "-D", data, "-h", host, "-p", str(port),
         "-k", base, "-c", "fsync=off"],
        stdout=subprocess.DEVNULL, stderr=(base / "server.log").open("wb"), user=run_as,
        cwd=base,
    )
    server = PostgresServer(bin_dir, data, port, process, run_as, host)
    try:
        _wait_ready(server, base / "server.log")
    except BaseException:
        server.stop()
        raise
    return server


def _wait_ready(server: PostgresServer, log: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            text = log.read_text(errors="replace")
            raise RuntimeError(f"postgres exited with {server.process.returncode}:\n{text}")
        ready = subprocess.run(
            [server.bin_dir / "pg_isready", "-h", server.host, "-p", str(server.port)],
            capture_output=True,
        )
        if ready.returncode == 0:
            return
        time.sleep(0.2)
    raise RuntimeError("postgres did not become ready in 60 s")
