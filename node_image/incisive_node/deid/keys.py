"""The project's pseudonymisation secret: from OpenBao/Vault KV v2, or a local key file.

Why KV v2 and not transit's HMAC endpoint: a CT study is thousands of instances with dozens of
UIDs each, and a round trip to Vault per value would cost more than the de-identification
itself; and the offline CLI must produce byte-identical pseudonyms from an exported copy of the
same secret. The secret is read once per process and held in memory only. Transit is used where
the key must never leave Vault: encrypting the re-identification mapping (see mapping.py).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import pathlib
import secrets
from dataclasses import dataclass, field

KV_MOUNT = "secret"
KV_PATH_TEMPLATE = "incisive/projects/{project}/deid"
MIN_KEY_BYTES = 32


@dataclass(frozen=True)
class ProjectKeys:
    """One project's secret; every pseudonym is an HMAC under a key derived from it."""

    project: str
    secret: bytes = field(repr=False)
    source: str = "memory"  # "vault" or "key-file", so the CLI can say what it uses

    def __post_init__(self) -> None:
        if len(self.secret) < MIN_KEY_BYTES:
            raise ValueError(f"the project secret must be at least {MIN_KEY_BYTES} bytes")

    def derive(self, purpose: str) -> bytes:
        """A separate key per purpose, so a UID hash never equals a patient or date hash."""
        label = f"incisive/deid/{self.project}/{purpose}".encode()
        return hmac.new(self.secret, label, hashlib.sha256).digest()

    @classmethod
    def generate(cls, project: str) -> ProjectKeys:
        return cls(project=project, secret=secrets.token_bytes(MIN_KEY_BYTES))


def write_key_file(keys: ProjectKeys, path: pathlib.Path) -> None:
    payload = {"project": keys.project, "secret": base64.b64encode(keys.secret).decode()}
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump(payload, fh)


def load_key_file(path: pathlib.Path) -> ProjectKeys:
    payload = json.loads(pathlib.Path(path).read_text())
    return ProjectKeys(
        project=payload["project"],
        secret=base64.b64decode(payload["secret"]),
        source="key-file",
    )


def _kv_path(project: str) -> str:
    return KV_PATH_TEMPLATE.format(project=project)


def store_in_vault(client, keys: ProjectKeys, mount: str = KV_MOUNT) -> None:
    """Provision a project's secret (an operator's task, done once per project)."""
    client.secrets.kv.v2.create_or_update_secret(
        path=_kv_path(keys.project),
        secret={"secret": base64.b64encode(keys.secret).decode()},
        mount_point=mount,
    )


def load_from_vault(client, project: str, mount: str = KV_MOUNT) -> ProjectKeys:
    response = client.secrets.kv.v2.read_secret_version(
        path=_kv_path(project), mount_point=mount, raise_on_deleted_version=True
    )
    encoded = response["data"]["data"]["secret"]
    return ProjectKeys(project=project, secret=base64.b64decode(encoded), source="vault")


def vault_client(addr: str, token: str | None = None):
    """An hvac client; the token comes from the argument or VAULT_TOKEN, never from a file."""
    import hvac

    return hvac.Client(url=addr, token=token or os.environ.get("VAULT_TOKEN"))
