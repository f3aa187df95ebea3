"""A throwaway Orthanc (Debian's package) for the ingest tests: its own JSON config, a
temporary storage folder, free ports, and one modality entry pointing at our SCP.

Orthanc 1.10 has no option to bind its HTTP server to one address; RemoteAccessAllowed=false
makes it refuse every client but loopback, and its DICOM server is switched off (the tests
only use it as an SCU).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import requests

from tests.ingest.ports import free_port


def binary() -> str | None:
    # Debian installs it in /usr/sbin, which is not on every user's PATH.
    return shutil.which("Orthanc") or shutil.which("Orthanc", path="/usr/sbin")


@dataclass
class OrthancServer:
    url: str
    process: subprocess.Popen[bytes]
    log: Path

    def upload(self, data: bytes) -> str:
        response = requests.post(f"{self.url}/instances", data=data, timeout=30)
        response.raise_for_status()
        return response.json()["ID"]

    def store_to(self, modality: str, instance_ids: list[str]) -> dict:
        response = requests.post(
            f"{self.url}/modalities/{modality}/store",
            json={"Resources": instance_ids, "Synchronous": True},
            timeout=60,
        )
        return {"status": response.status_code, "body": response.text}

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def start(folder: Path, *, modality_name: str, modality_aet: str, modality_port: int,
          own_aet: str = "ORTHANC") -> OrthancServer:
    http_port = free_port()
    config = {
        "Name": "incisive-test-pacs",
        "StorageDirectory": str(folder / "storage"),
        "IndexDirectory": str(folder / "storage"),
        "HttpServerEnabled": True,
        "HttpPort": http_port,
        "RemoteAccessAllowed": False,
        "AuthenticationEnabled": False,
        "DicomServerEnabled": False,
        "DicomAet": own_aet,
        "DicomPort": free_port(),
        "DicomModalities": {modality_name: [modality_aet, "127.0.0.1", modality_port]},
        "Plugins": [],
        "StableAge": 1,
    }
    config_path = folder / "orthanc.json"
    config_path.write_text(json.dumps(config, indent=2))
    log = folder / "orthanc.log"
    process = subprocess.Popen(
        [binary() or "Orthanc", str(config_path)],
        stdout=log.open("wb"), stderr=subprocess.STDOUT, cwd=folder,
    )
    server = OrthancServer(f"http://127.0.0.1:{http_port}", process, log)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"Orthanc exited:\n{log.read_text(errors='replace')}")
        try:
            if requests.get(f"{server.url}/system", timeout=2).ok:
                return server
        except requests.ConnectionError:
            time.sleep(0.2)
    server.stop()
    raise RuntimeError("Orthanc did not answer in 60 s")
