"""The app bundle: the Flower App Bundle (FAB) that `flwr run` ships to the SuperLink.

The bundle holds only a pyproject.toml. Its components name the ServerApp and ClientApp in
this package, so the code a site runs is the appliance image the site installed, and the
bundle pins which entry points and which run-config keys (with defaults) a run may use.
The FAB's bytes are deterministic (Flower fixes zip dates and file order), so its SHA-256
identifies the app: that is what signing.py signs and what a site pins.
"""

from __future__ import annotations

import dataclasses
import hashlib
from dataclasses import dataclass
from pathlib import Path

import tomli_w
from flwr.cli.build import build_fab_from_disk

from incisive_node.fl.config import TrainingConfig

APP_NAME = "incisive-classifier"
PUBLISHER = "incisive"
SERVER_APP = "incisive_node.fl.server_app:app"
CLIENT_APP = "incisive_node.fl.client_app:app"


@dataclass(frozen=True)
class AppBundle:
    app_dir: Path  # what `flwr run` takes
    fab: bytes
    sha256: str
    fab_id: str
    version: str


def write_app_dir(folder: Path, version: str = "1.0.0") -> Path:
    """Write the app's folder (named APP_NAME, as Flower requires) under `folder`."""
    app_dir = folder / APP_NAME
    app_dir.mkdir(parents=True, exist_ok=True)
    defaults = TrainingConfig().to_run_config()
    pyproject = {
        "build-system": {"requires": ["hatchling"], "build-backend": "hatchling.build"},
        "project": {
            "name": APP_NAME,
            "version": version,
            "description": "INCISIVE federated image classifier",
            "license": "Apache-2.0",
            "dependencies": [],
        },
        "tool": {
            "flwr": {
                "app": {
                    "publisher": PUBLISHER,
                    "components": {"serverapp": SERVER_APP, "clientapp": CLIENT_APP},
                    "config": defaults,
                }
            }
        },
    }
    (app_dir / "pyproject.toml").write_bytes(tomli_w.dumps(pyproject).encode())
    return app_dir


def build_bundle(folder: Path, version: str = "1.0.0") -> AppBundle:
    app_dir = write_app_dir(folder, version)
    fab = build_fab_from_disk(app_dir)
    digest = hashlib.sha256(fab).hexdigest()
    (folder / f"{APP_NAME}.fab").write_bytes(fab)
    return AppBundle(app_dir, fab, digest, f"{PUBLISHER}/{APP_NAME}", version)


def config_keys() -> list[str]:
    return [f.name.replace("_", "-") for f in dataclasses.fields(TrainingConfig)]
