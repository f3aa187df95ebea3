"""`incisive access sign`: a researcher signs a DataAccessRequest with their qualified key.

    incisive access sign --cert me.pem --key me.key [--chain ca.pem] request.yaml > signed.yaml

The input is a DataAccessRequest manifest with `spec.request` filled in; the output is the
same manifest with `spec.signature` (detached CMS over the canonical request) and, with
`--chain`, `spec.certificateChain`. Keys on a smart card or a remote signing service sign the
same canonical bytes (`--print-content` writes them) and the resulting `.p7s` goes into
`spec.signature` as base64 (`--signature FILE` does that).
"""

from __future__ import annotations

import argparse
import base64
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("access", help="sign data-access requests")
    verbs = parser.add_subparsers(dest="verb", required=True)
    sign = verbs.add_parser("sign", help="sign a DataAccessRequest manifest (to stdout)")
    sign.add_argument("request", type=Path, help="DataAccessRequest YAML with spec.request")
    sign.add_argument("--cert", type=Path, help="your qualified certificate (PEM)")
    sign.add_argument("--key", type=Path, help="its private key (PEM, EC or RSA)")
    sign.add_argument("--chain", type=Path, default=None,
                      help="PEM certificates up to the trusted-list service (optional)")
    sign.add_argument("--signature", type=Path, default=None,
                      help="a detached CMS (.p7s, DER) made elsewhere over --print-content")
    sign.add_argument("--print-content", action="store_true",
                      help="write the exact bytes to sign and stop")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    try:
        manifest = _read(args.request)
        print(sign(manifest, args), end="")
    except (OSError, ValueError, TypeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


def _read(path: Path) -> dict[str, Any]:
    manifest = yaml.safe_load(path.read_text())
    if not isinstance(manifest, dict) or manifest.get("kind") != "DataAccessRequest":
        raise ValueError(f"{path} is not a DataAccessRequest manifest")
    if not isinstance(manifest.get("spec"), dict) or "request" not in manifest["spec"]:
        raise ValueError(f"{path} has no spec.request to sign")
    return manifest


def sign(manifest: dict[str, Any], args: argparse.Namespace) -> str:
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization
    from pydantic import ValidationError

    from incisive_node.identity.signatures import canonical_json

    from .api.v1alpha1.dataaccessrequest import signed_content

    try:
        content = canonical_json(signed_content(manifest["spec"]["request"]))
    except ValidationError as exc:
        raise ValueError(f"spec.request is not valid: {exc}") from exc
    if args.print_content:
        return content.decode()
    if args.signature is not None:
        signature = args.signature.read_bytes()
    else:
        if not args.cert or not args.key:
            raise ValueError("give --cert and --key, or --signature")
        signature = _sign(content, args.cert, args.key)
    spec = dict(manifest["spec"])
    spec["signature"] = base64.b64encode(signature).decode()
    if args.chain:
        chain = x509.load_pem_x509_certificates(args.chain.read_bytes())
        spec["certificateChain"] = [
            c.public_bytes(serialization.Encoding.PEM).decode() for c in chain]
    return yaml.safe_dump({**manifest, "spec": spec}, sort_keys=False, width=100)


def _sign(content: bytes, cert_path: Path, key_path: Path) -> bytes:
    from asn1crypto import pem
    from asn1crypto import x509 as asn1_x509
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec, rsa

    from incisive_node.identity.signatures import sign_detached

    key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey):
        raise ValueError(f"{key_path}: only EC and RSA keys make CAdES signatures we accept")
    data = cert_path.read_bytes()
    if pem.detect(data):
        _, _, data = pem.unarmor(data)
    cert = asn1_x509.Certificate.load(data)
    return sign_detached(content, key, cert, signing_time=datetime.now(UTC))
