"""The re-identification mapping: pseudonym -> original identifiers, encrypted by Vault/OpenBao
transit and kept in a small SQLite file at the site. The transit key never leaves Vault, so a
copy of the file alone reveals nothing."""

from __future__ import annotations

import base64
import json
import pathlib
import sqlite3

TRANSIT_MOUNT = "transit"
TRANSIT_KEY = "incisive-reid"
BATCH = 256

# Vault policies (HCL): the de-identifier may only encrypt; re-identification may only decrypt.
DEID_POLICY_NAME = "incisive-deid"
REID_POLICY_NAME = "incisive-reidentify"
DEID_POLICY = f"""
path "{TRANSIT_MOUNT}/encrypt/{TRANSIT_KEY}" {{ capabilities = ["update"] }}
path "secret/data/incisive/projects/+/deid" {{ capabilities = ["read"] }}
"""
REID_POLICY = f"""
path "{TRANSIT_MOUNT}/decrypt/{TRANSIT_KEY}" {{ capabilities = ["update"] }}
"""

SCHEMA = """
CREATE TABLE IF NOT EXISTS mapping (
    pseudonym TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    ciphertext TEXT NOT NULL
)
"""


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


class MappingStore:
    def __init__(self, path: pathlib.Path, client, mount: str = TRANSIT_MOUNT,
                 key: str = TRANSIT_KEY) -> None:
        self.path = pathlib.Path(path)
        self.client = client
        self.mount = mount
        self.key = key
        self._db = sqlite3.connect(self.path)
        self._db.execute(SCHEMA)
        self._db.commit()

    def put(self, mapping: dict[str, dict]) -> None:
        """Encrypt and store entries; the pseudonym rides inside the plaintext too, so a row
        moved to another pseudonym fails to verify on decryption."""
        items = sorted(mapping.items())
        for start in range(0, len(items), BATCH):
            chunk = items[start : start + BATCH]
            batch = [{"plaintext": _b64(json.dumps({"pseudonym": p, **v}).encode())}
                     for p, v in chunk]
            response = self.client.secrets.transit.encrypt_data(
                name=self.key, plaintext="", batch_input=batch, mount_point=self.mount)
            results = response["data"]["batch_results"]
            pairs = zip(chunk, results, strict=True)
            rows = [(p, v.get("kind", ""), r["ciphertext"]) for (p, v), r in pairs]
            self._db.executemany(
                "INSERT OR REPLACE INTO mapping (pseudonym, kind, ciphertext) VALUES (?, ?, ?)",
                rows)
        self._db.commit()

    def ciphertext(self, pseudonym: str) -> str | None:
        row = self._db.execute(
            "SELECT ciphertext FROM mapping WHERE pseudonym = ?", (pseudonym,)).fetchone()
        return row[0] if row else None

    def decrypt(self, pseudonym: str, ciphertext: str) -> dict:
        response = self.client.secrets.transit.decrypt_data(
            name=self.key, ciphertext=ciphertext, mount_point=self.mount)
        entry = json.loads(base64.b64decode(response["data"]["plaintext"]))
        if entry.pop("pseudonym", None) != pseudonym:
            raise ValueError("mapping row does not belong to this pseudonym")
        return entry

    def close(self) -> None:
        self._db.close()


def setup_vault(client, mount: str = TRANSIT_MOUNT, key: str = TRANSIT_KEY) -> None:
    """Enable transit, create the mapping key and write both policies (idempotent)."""
    if f"{mount}/" not in client.sys.list_mounted_secrets_engines()["data"]:
        client.sys.enable_secrets_engine("transit", path=mount)
    client.secrets.transit.create_key(name=key, mount_point=mount)
    client.sys.create_or_update_policy(DEID_POLICY_NAME, DEID_POLICY)
    client.sys.create_or_update_policy(REID_POLICY_NAME, REID_POLICY)
