"""`incisive fl keygen|publish`: an app publisher's key, and a signed app for a TrainingJob.

    incisive fl keygen --out publisher.key
        writes an Ed25519 private key (mode 0600) and prints its public key, the line a
        site adds to its DataNode's policy.trustedAppSigningKeys.
    incisive fl publish --key publisher.key [--reference incisive/incisive-classifier:1.0.0]
        builds the bundle, signs it, and prints the TrainingJob's `spec.app` (reference,
        digest, signature) as YAML to paste into the manifest.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("fl", help="sign federated-learning apps for TrainingJobs")
    verbs = parser.add_subparsers(dest="verb", required=True)
    keygen = verbs.add_parser("keygen", help="make an app publisher's Ed25519 key")
    keygen.add_argument("--out", type=Path, required=True, help="private key file to write")
    publish = verbs.add_parser("publish", help="sign an app; print the TrainingJob's spec.app")
    publish.add_argument("--key", type=Path, required=True, help="the publisher's private key")
    publish.add_argument("--reference", default=None,
                         help="the app, <publisher>/<app>[:<version>] (default: the built-in "
                         "classifier)")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from incisive_node.fl.signing import public_key_base64

    if args.verb == "keygen":
        if args.out.exists():
            print(f"error: {args.out} exists; not overwriting a key", file=sys.stderr)
            return 2
        key = Ed25519PrivateKey.generate()
        pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
        fd = os.open(args.out, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(pem)
        print(f"wrote {args.out}")
        print(f"public key (for policy.trustedAppSigningKeys): "
              f"{public_key_base64(key.public_key())}")
        return 0
    try:
        key = load_publisher_key(args.key)
        print(publish_yaml(key, args.reference), end="")
    except (OSError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


def load_publisher_key(path: Path) -> Ed25519PrivateKey:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise ValueError(f"{path}: not an Ed25519 private key (make one with `incisive fl keygen`)")
    return key


def publish_yaml(key: Ed25519PrivateKey, reference: str | None) -> str:
    import yaml

    from incisive_node.fl.signing import public_key_base64

    from .fl import apps

    signed = apps.publish(key, reference or apps.DEFAULT_REFERENCE)
    text = yaml.safe_dump({"app": signed}, sort_keys=False, width=1000)
    return (f"# signed by {public_key_base64(key.public_key())} "
            "(sites list it in policy.trustedAppSigningKeys)\n" + text)
