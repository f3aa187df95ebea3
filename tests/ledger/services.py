"""A real ledger on loopback: `incisive-node ledger serve` and three `incisive-node ledger
witness` processes (the hub's log and three sites' witnesses, 2 of 3 required; one witness
per host after the log's), with keys made by `incisive-node ledger keygen` and a trust file
listing the submitters. Plain HTTP, or mutual TLS with federation certificates (`Tls`).

Each process is started by this module, in its own session, and stopped by its pid.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from incisive_node.identity.mtls import CredentialFiles
from incisive_node.ledger import settings
from incisive_node.ledger.client import LogClient
from incisive_node.ledger.tls import ClientTls, TlsFiles
from tests.ingest.ports import free_port

NODE_CLI = [sys.executable, "-m", "incisive_node.cli"]
ORIGIN = "hub.incisive.test/ledger"
WITNESS_NAMES = tuple(f"site-{s}.incisive.test/witness" for s in "abc")


def keygen(role: str, out: Path, name: str | None = None) -> dict[str, str]:
    argv = [*NODE_CLI, "ledger", "keygen", "--role", role, "--out", str(out)]
    if name:
        argv += ["--name", name]
    done = subprocess.run(argv, capture_output=True, text=True, check=True)
    return json.loads(done.stdout)


@dataclass(frozen=True)
class Tls:
    """Federation certificates for the processes (issued by identity/ca.py from CSRs): each
    one's chain and key, the DNS name on it, and the CA bundle they all trust."""

    ca: Path
    log: CredentialFiles
    log_name: str
    witnesses: tuple[tuple[CredentialFiles, str], ...]
    client: CredentialFiles  # what the tests present when they look at the log

    @staticmethod
    def flags(files: CredentialFiles, ca: Path) -> list[str]:
        return ["--tls-cert", str(files.chain), "--tls-key", str(files.key), "--tls-ca", str(ca)]

    def client_tls(self, server_name: str, files: CredentialFiles | None = None) -> ClientTls:
        files = files or self.client
        return ClientTls(TlsFiles(files.chain, files.key, self.ca), server_name)


def healthy(url: str, tls: ClientTls | None = None) -> bool:
    if tls is None:
        with urllib.request.urlopen(f"{url}/healthz", timeout=2) as reply:  # noqa: S310
            return reply.status == 200
    parts = urlsplit(url)
    connection = tls.connection(parts.hostname or "", parts.port or 443, timeout=2)
    try:
        connection.request("GET", "/healthz")
        return connection.getresponse().status == 200
    finally:
        connection.close()


def wait_healthy(url: str, process: subprocess.Popen, log: Path | None = None,
                 timeout: float = 30, tls: ClientTls | None = None) -> None:
    def tail() -> str:
        return log.read_text()[-2000:] if log is not None and log.exists() else ""

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{url} exited: {tail()}")
        try:
            if healthy(url, tls):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"{url} not healthy in {timeout} s: {tail()}")


@dataclass
class Ledger:
    folder: Path
    store: str
    hosts: tuple[str, ...]  # the log's, then each witness's
    tls: Tls | None = None
    trust: Path = field(init=False)
    log_url: str = ""
    witness_urls: dict[str, str] = field(default_factory=dict)
    processes: dict[str, subprocess.Popen] = field(default_factory=dict)
    submitters: dict[str, str] = field(default_factory=dict)
    log_vkey: str = ""
    witness_vkeys: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.trust = self.folder / "trust.json"

    @property
    def witness_names(self) -> tuple[str, ...]:
        return WITNESS_NAMES[:len(self.hosts) - 1]

    @property
    def scheme(self) -> str:
        return "http" if self.tls is None else "https"

    # -- setting up --------------------------------------------------------------------------
    def make_keys(self) -> None:
        self.log_vkey = keygen("log", self.folder / "log.pem", ORIGIN)["vkey"]
        self.witness_vkeys = [keygen("witness", self.folder / f"witness-{i}.pem", name)["vkey"]
                              for i, name in enumerate(self.witness_names)]
        self.write_trust()

    def new_submitter(self, name: str, *, trusted: bool = True) -> Path:
        """A submitter key (PEM) the log accepts once `trusted` (the trust file lists it)."""
        path = self.folder / f"{name}.pem"
        described = keygen("submitter", path)
        if trusted:
            self.submitters[described["actor"]] = described["key"]
            self.write_trust()
        return path

    def trust_submitter(self, key: Path) -> None:
        from incisive_node.ledger.recorder import SubmitterIdentity

        identity = SubmitterIdentity.load(key)
        self.submitters[identity.actor] = identity.public_key_b64
        self.write_trust()

    def write_trust(self) -> None:
        document = {"log": self.log_vkey, "witnesses": self.witness_vkeys, "quorum": 2,
                    "submitters": self.submitters}
        # Written aside and renamed: the running log re-reads the file when it changes.
        temporary = self.trust.with_suffix(".tmp")
        temporary.write_text(json.dumps(document, indent=2))
        temporary.replace(self.trust)

    def env(self, key: Path, spool: Path) -> dict[str, str]:
        env = {"INCISIVE_LEDGER_URL": self.log_url, "INCISIVE_LEDGER_KEY": str(key),
               "INCISIVE_LEDGER_SPOOL": str(spool)}
        if self.tls is not None:
            env.update({settings.TLS_CERT: str(self.tls.client.chain),
                        settings.TLS_KEY: str(self.tls.client.key),
                        settings.TLS_CA: str(self.tls.ca),
                        settings.TLS_SERVER_NAME: self.tls.log_name})
        return env

    # -- processes ---------------------------------------------------------------------------
    def _spawn(self, name: str, argv: list[str]) -> subprocess.Popen:
        log = self.folder / f"{name}.log"
        process = subprocess.Popen([*NODE_CLI, *argv], stdout=subprocess.DEVNULL,
                                   stderr=log.open("ab"), start_new_session=True)
        self.processes[name] = process
        return process

    def _witness_tls(self, i: int) -> tuple[list[str], ClientTls | None]:
        if self.tls is None:
            return [], None
        files, server_name = self.tls.witnesses[i]
        return Tls.flags(files, self.tls.ca), self.tls.client_tls(server_name)

    def start_witnesses(self) -> None:
        for i, (name, host) in enumerate(zip(self.witness_names, self.hosts[1:], strict=True)):
            port = free_port(host)
            url = f"{self.scheme}://{host}:{port}"
            flags, probe = self._witness_tls(i)
            process = self._spawn(f"witness-{i}", [
                "ledger", "witness", "--key", str(self.folder / f"witness-{i}.pem"),
                "--name", name, "--log", self.log_vkey,
                "--db", str(self.folder / f"witness-{i}.sqlite"),
                "--host", host, "--port", str(port), *flags])
            wait_healthy(url, process, self.folder / f"witness-{i}.log", tls=probe)
            self.witness_urls[name] = url

    def start_log(self, interval: float = 0.3) -> None:
        host = self.hosts[0]
        if not self.log_url:
            self.log_url = f"{self.scheme}://{host}:{free_port(host)}"
        port = self.log_url.rsplit(":", 1)[1]
        tls_flags: list[str] = []
        if self.tls is not None:
            tls_flags = Tls.flags(self.tls.log, self.tls.ca)
            for name, (_, server_name) in zip(self.witness_names, self.tls.witnesses,
                                              strict=True):
                tls_flags += ["--witness-server-name", f"{name}={server_name}"]
        process = self._spawn("log", [
            "ledger", "serve", "--store", self.store, "--key", str(self.folder / "log.pem"),
            "--trust", str(self.trust),
            *[arg for name, url in self.witness_urls.items()
              for arg in ("--witness-url", f"{name}={url}")],
            "--interval", str(interval), "--host", host, "--port", port, *tls_flags])
        wait_healthy(self.log_url, process, self.folder / "log.log",
                     tls=None if self.tls is None else self.tls.client_tls(self.tls.log_name))

    def stop(self, name: str) -> None:
        process = self.processes.pop(name, None)
        if process is None or process.poll() is not None:
            return
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()

    def stop_all(self) -> None:
        for name in list(self.processes):
            self.stop(name)

    # -- looking -----------------------------------------------------------------------------
    def client(self) -> LogClient:
        if self.tls is None:
            return LogClient(self.log_url)
        return LogClient(self.log_url, tls=self.tls.client_tls(self.tls.log_name))

    def leaves(self) -> list[dict]:
        out: list[dict] = []
        while batch := self.client().entries(len(out), 1000):
            out.extend(batch)
        return out

    def wait_for_checkpoint(self, size: int, timeout: float = 60) -> bytes:
        """The published checkpoint once it covers `size` entries."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                note = self.client().checkpoint()
                if int(note.split(b"\n")[1]) >= size:
                    return note
            except Exception:  # noqa: S110 - 404 until the first checkpoint
                pass
            if time.monotonic() > deadline:
                raise AssertionError(f"no checkpoint covering {size} entries in {timeout} s")
            time.sleep(0.1)

    def verify(self) -> subprocess.CompletedProcess:
        """`incisive ledger verify` over the log's store (the operator's audit command)."""
        return subprocess.run(
            [sys.executable, "-m", "incisive_operator.cli", "ledger", "verify",
             "--db", self.store, "--trust", str(self.trust)],
            capture_output=True, text=True)


def start(folder: Path, store: str, hosts: tuple[str, ...], tls: Tls | None = None) -> Ledger:
    ledger = Ledger(folder, store, hosts, tls)
    ledger.make_keys()
    try:
        ledger.start_witnesses()
        ledger.start_log()
    except BaseException:
        ledger.stop_all()
        raise
    return ledger
