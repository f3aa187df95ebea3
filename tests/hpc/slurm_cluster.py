"""A real single-node Slurm on 127.0.0.1 for the tests: munged, slurmctld, slurmd and
slurmrestd from Debian's packages, each with its own files in a temporary folder.

What the sandbox forces, and why: slurmrestd refuses to run as root (or as SlurmUser), so it
drops to `nobody` after binding its port; it authenticates clients with JWT, and needs
`SLURM_JWT=daemon` to speak JWT to slurmctld itself (with munge it may not act on behalf of
the users in the tokens). Jobs run as `nobody` in a world-writable work folder. The node
advertises no GPUs: Slurm's gpu GRES needs device files to count, which this machine lacks.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

DAEMONS = ("munged", "slurmctld", "slurmd", "slurmrestd")
JOB_USER = "nobody"


@dataclass(frozen=True)
class Slurm:
    url: str
    user: str
    token: str
    workdir: Path
    folder: Path


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _config(folder: Path, ctld_port: int, slurmd_port: int) -> str:
    return f"""\
ClusterName=incisive
SlurmctldHost=localhost(127.0.0.1)
SlurmctldPort={ctld_port}
SlurmdPort={slurmd_port}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket={folder}/munge.sock
CredType=cred/munge
AuthAltTypes=auth/jwt
AuthAltParameters=jwt_key={folder}/jwt.key
StateSaveLocation={folder}/state
SlurmdSpoolDir={folder}/spool
SlurmctldPidFile={folder}/slurmctld.pid
SlurmdPidFile={folder}/slurmd.pid
SlurmctldLogFile={folder}/slurmctld.log
SlurmdLogFile={folder}/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
MpiDefault=none
SchedulerType=sched/backfill
SelectType=select/cons_tres
ReturnToService=2
MinJobAge=600
NodeName=hpc1 NodeAddr=127.0.0.1 NodeHostname=localhost CPUs=2 RealMemory=1000 State=UNKNOWN
PartitionName=gpu Nodes=hpc1 Default=YES MaxTime=INFINITE State=UP
"""


@pytest.fixture(scope="session")
def slurm_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Slurm]:
    missing = [d for d in DAEMONS if shutil.which(d) is None]
    if missing:
        pytest.fail(f"Slurm is not installed (missing {', '.join(missing)}): "
                    "apt-get install -y slurmctld slurmd slurmrestd munge")
    folder = tmp_path_factory.mktemp("slurm")
    for sub in ("state", "spool"):
        (folder / sub).mkdir()
    workdir = folder / "work"
    workdir.mkdir()
    workdir.chmod(0o1777)  # the jobs run as nobody
    # The temp folder's parents must let nobody reach the work folder.
    for parent in (folder, *folder.parents):
        if parent == Path("/"):
            break
        parent.chmod(parent.stat().st_mode | 0o011)
    (folder / "munge.key").write_bytes(os.urandom(1024))
    (folder / "munge.key").chmod(0o400)
    (folder / "jwt.key").write_bytes(os.urandom(32))
    (folder / "jwt.key").chmod(0o600)
    rest_port = _free_port()
    (folder / "slurm.conf").write_text(_config(folder, _free_port(), _free_port()))
    env = {**os.environ, "SLURM_CONF": str(folder / "slurm.conf")}
    processes: list[subprocess.Popen[bytes]] = []

    def start(*argv: str, extra: dict[str, str] | None = None) -> None:
        log = (folder / f"{Path(argv[0]).name}.out").open("ab")
        processes.append(subprocess.Popen(list(argv), env={**env, **(extra or {})},
                                          stdout=log, stderr=subprocess.STDOUT))

    try:
        start("munged", "--foreground", "--force", f"--key-file={folder}/munge.key",
              f"--socket={folder}/munge.sock", f"--pid-file={folder}/munged.pid",
              f"--log-file={folder}/munged.log", f"--seed-file={folder}/munge.seed")
        _wait(lambda: (folder / "munge.sock").exists(), "munged", folder)
        start("slurmctld", "-D", "-i")
        start("slurmd", "-D", "-N", "hpc1")
        _wait(lambda: _node_idle(env), "the Slurm node to become idle", folder)
        start("slurmrestd", "-u", JOB_USER, "-a", "rest_auth/jwt", "-s", "openapi/v0.0.38",
              f"127.0.0.1:{rest_port}", extra={"SLURM_JWT": "daemon"})
        token = subprocess.run(
            ["scontrol", "token", f"username={JOB_USER}", "lifespan=7200"], env=env,
            check=True, capture_output=True, text=True,
        ).stdout.strip().removeprefix("SLURM_JWT=")
        url = f"http://127.0.0.1:{rest_port}"
        _wait(lambda: _answers(url, token), "slurmrestd", folder)
        yield Slurm(url=url, user=JOB_USER, token=token, workdir=workdir, folder=folder)
    finally:
        for process in reversed(processes):
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in reversed(processes):
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _node_idle(env: dict[str, str]) -> bool:
    result = subprocess.run(["sinfo", "-h", "-N", "-o", "%t"], env=env, capture_output=True,
                            text=True, check=False)
    return result.returncode == 0 and result.stdout.strip() == "idle"


def _answers(url: str, token: str) -> bool:
    request = urllib.request.Request(f"{url}/slurm/v0.0.38/ping", headers={  # noqa: S310
        "X-SLURM-USER-NAME": JOB_USER, "X-SLURM-USER-TOKEN": token})
    try:
        with urllib.request.urlopen(request, timeout=2) as response:  # noqa: S310 - loopback
            return response.status == 200
    except OSError:
        return False


def _wait(probe, what: str, folder: Path, timeout: float = 30.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not probe():
        if time.monotonic() > deadline:
            logs = "\n".join(f"--- {p.name}\n{p.read_text(errors='replace')[-2000:]}"
                             for p in sorted(folder.glob("*.out")) + sorted(folder.glob("*.log")))
            raise RuntimeError(f"timed out waiting for {what}\n{logs}")
        time.sleep(0.2)
