"""SuperNode authentication keys, made at the site: the private key never leaves it.

Flower authenticates SuperNodes with an elliptic-curve key pair in OpenSSH format: the
SuperNode signs its Fleet requests with the private key, and the SuperLink accepts only
public keys registered through its Control API. The site hands the hub the public key
(an OpenSSH line) and nothing else.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec


@dataclass(frozen=True)
class NodeKeyFiles:
    private_key: Path
    public_key: Path

    def public_openssh(self) -> str:
        return self.public_key.read_text().strip()


def ensure_node_keys(folder: Path) -> NodeKeyFiles:
    """The site's SuperNode key pair under `folder`, created on first use and then reused."""
    folder.mkdir(parents=True, exist_ok=True)
    files = NodeKeyFiles(folder / "supernode_key", folder / "supernode_key.pub")
    if files.private_key.is_file() and files.public_key.is_file():
        return files
    key = ec.generate_private_key(ec.SECP384R1())
    private = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.OpenSSH,
        serialization.NoEncryption(),
    )
    fd = os.open(files.private_key, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(private)
    public = key.public_key().public_bytes(
        serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
    )
    files.public_key.write_bytes(public + b"\n")
    return files
