"""Detached CMS signatures (RFC 5652) over canonical JSON: enrolments and access requests.

Why CMS and not a bespoke "signature + chain" pair: qualified seals and signatures are made
on QSCDs, smart cards and remote signing services, and every one of them can produce a
detached CMS / CAdES signature (``.p7s``); none will produce our own format. The profile is
CAdES-B-B (ETSI EN 319 122-1) minus what we do not need: signed attributes content-type,
message-digest, signing-time and signing-certificate-v2 (which binds the signer's
certificate into what is signed, so it cannot be swapped for another with the same key).

This module checks the cryptography only; whether the signer is qualified and trusted at
the signing time is :mod:`incisive_node.identity.eidas`'s job.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from asn1crypto import algos, cms, x509
from asn1crypto import tsp as _tsp  # noqa: F401 - registers signing-certificate-v2 with cms
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

_HASHES = {"sha256": hashes.SHA256, "sha384": hashes.SHA384, "sha512": hashes.SHA512}
SignerKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey


class SignatureInvalid(ValueError):
    """The signature does not verify; the message says which check failed."""


@dataclass(frozen=True)
class SignedContent:
    signer: x509.Certificate
    certificates: tuple[x509.Certificate, ...]  # everything the signer shipped, signer included
    signing_time: datetime  # claimed by the signer, inside the signed attributes


def canonical_json(document: object) -> bytes:
    """The bytes that are signed: sorted keys, no whitespace, UTF-8.

    Floats are refused because their text form differs between implementations; this keeps
    the output identical to RFC 8785 (JCS) for the documents we sign.
    """
    _refuse_floats(document)
    return json.dumps(
        document, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode()


def _refuse_floats(value: object) -> None:
    if isinstance(value, float):
        raise ValueError("signed documents may not hold floats; use strings or integers")
    if isinstance(value, dict):
        for item in value.values():
            _refuse_floats(item)
    elif isinstance(value, list | tuple):
        for item in value:
            _refuse_floats(item)


def sign_detached(
    content: bytes,
    key: SignerKey,
    cert: x509.Certificate,
    chain: Sequence[x509.Certificate] = (),
    *,
    signing_time: datetime,
    digest: str = "sha256",
) -> bytes:
    """DER ContentInfo(SignedData) with no encapsulated content."""
    signed_attrs = cms.CMSAttributes(
        [
            {"type": "content_type", "values": ["data"]},
            {"type": "message_digest", "values": [hashlib.new(digest, content).digest()]},
            {"type": "signing_time", "values": [cms.Time({"utc_time": signing_time})]},
            {
                "type": "signing_certificate_v2",
                "values": [
                    {
                        "certs": [
                            {
                                "hash_algorithm": {"algorithm": digest},
                                "cert_hash": hashlib.new(digest, cert.dump()).digest(),
                            }
                        ]
                    }
                ],
            },
        ]
    )
    to_sign = signed_attrs.dump()
    if isinstance(key, rsa.RSAPrivateKey):
        signature = key.sign(to_sign, padding.PKCS1v15(), _HASHES[digest]())
        sig_algo = f"{digest}_rsa"
    else:
        signature = key.sign(to_sign, ec.ECDSA(_HASHES[digest]()))
        sig_algo = f"{digest}_ecdsa"
    signer_info = cms.SignerInfo(
        {
            "version": "v1",
            "sid": cms.SignerIdentifier(
                {
                    "issuer_and_serial_number": {
                        "issuer": cert.issuer,
                        "serial_number": cert.serial_number,
                    }
                }
            ),
            "digest_algorithm": {"algorithm": digest},
            "signed_attrs": signed_attrs,
            "signature_algorithm": {"algorithm": sig_algo},
            "signature": signature,
        }
    )
    signed_data = cms.SignedData(
        {
            "version": "v1",
            "digest_algorithms": [{"algorithm": digest}],
            "encap_content_info": {"content_type": "data"},
            "certificates": [cert, *chain],
            "signer_infos": [signer_info],
        }
    )
    return cms.ContentInfo({"content_type": "signed_data", "content": signed_data}).dump()


def verify_detached(signature: bytes, content: bytes) -> SignedContent:
    """Check the CMS signature over ``content``; raise :class:`SignatureInvalid` if it fails."""
    try:
        info = cms.ContentInfo.load(signature)
        if info["content_type"].native != "signed_data":
            raise SignatureInvalid("the signature is not a CMS SignedData")
        signed_data = info["content"]
        signer_infos = list(signed_data["signer_infos"])
        certs = tuple(
            c.chosen for c in signed_data["certificates"] if isinstance(c.chosen, x509.Certificate)
        )
    except (ValueError, TypeError, KeyError) as exc:
        raise SignatureInvalid(f"the signature is not valid DER CMS: {exc}") from exc
    if signed_data["encap_content_info"]["content"].native is not None:
        raise SignatureInvalid("expected a detached signature, but it embeds content")
    if len(signer_infos) != 1:
        raise SignatureInvalid(f"expected exactly one signer, found {len(signer_infos)}")
    signer_info = signer_infos[0]
    signer = _find_signer(signer_info, certs)
    attrs = _signed_attributes(signer_info)
    digest = signer_info["digest_algorithm"]["algorithm"].native
    if digest not in _HASHES:
        raise SignatureInvalid(f"digest algorithm {digest} is not accepted")
    if attrs.get("message_digest") != hashlib.new(digest, content).digest():
        raise SignatureInvalid("the signed message digest does not match the document")
    _check_signing_certificate(attrs.get("signing_certificate_v2"), signer)
    signing_time = attrs.get("signing_time")
    if signing_time is None:
        raise SignatureInvalid("the signature carries no signing-time attribute")
    _check_signature(signer_info, signer, digest)
    return SignedContent(signer=signer, certificates=certs, signing_time=signing_time)


def _find_signer(
    signer_info: cms.SignerInfo, certs: tuple[x509.Certificate, ...]
) -> x509.Certificate:
    sid = signer_info["sid"]
    if sid.name != "issuer_and_serial_number":
        raise SignatureInvalid("signer must be identified by issuer and serial number")
    issuer, serial = sid.chosen["issuer"], sid.chosen["serial_number"].native
    for cert in certs:
        if cert.serial_number == serial and cert.issuer == issuer:
            return cert
    raise SignatureInvalid("the signer's certificate is not included in the signature")


def _signed_attributes(signer_info: cms.SignerInfo) -> dict:
    attrs = signer_info["signed_attrs"]
    if not attrs:
        raise SignatureInvalid("the signature has no signed attributes")
    found: dict = {}
    for attr in attrs:
        name = attr["type"].native
        if name in found:
            raise SignatureInvalid(f"signed attribute {name} appears twice")
        values = attr["values"]
        if len(values) != 1:
            raise SignatureInvalid(f"signed attribute {name} must have exactly one value")
        found[name] = values[0].native if name != "signing_certificate_v2" else values[0]
    if found.get("content_type") != "data":
        raise SignatureInvalid("the signed content-type attribute is not id-data")
    return found


def _check_signing_certificate(value: object, signer: x509.Certificate) -> None:
    if value is None:
        raise SignatureInvalid("the signature carries no signing-certificate-v2 attribute")
    first = value["certs"][0]
    algo = first["hash_algorithm"]["algorithm"].native
    if algo not in _HASHES:
        raise SignatureInvalid(f"signing-certificate-v2 uses {algo}, which is not accepted")
    if first["cert_hash"].native != hashlib.new(algo, signer.dump()).digest():
        raise SignatureInvalid(
            "signing-certificate-v2 names a different certificate than the one shipped"
        )


def _check_signature(signer_info: cms.SignerInfo, signer: x509.Certificate, digest: str) -> None:
    # Signed attributes are signed as a DER SET OF, not with the [0] tag they travel under.
    to_verify = signer_info["signed_attrs"].untag().dump(force=True)
    sig_algo: algos.SignedDigestAlgorithm = signer_info["signature_algorithm"]
    public_key = serialization.load_der_public_key(signer.public_key.dump())
    signature = signer_info["signature"].native
    try:
        kind = sig_algo.signature_algo
        if kind == "rsassa_pkcs1v15" and isinstance(public_key, rsa.RSAPublicKey):
            public_key.verify(signature, to_verify, padding.PKCS1v15(), _HASHES[digest]())
        elif kind == "ecdsa" and isinstance(public_key, ec.EllipticCurvePublicKey):
            public_key.verify(signature, to_verify, ec.ECDSA(_HASHES[digest]()))
        else:
            raise SignatureInvalid(
                f"signature algorithm {kind} with a {signer.public_key.algorithm} key "
                "is not accepted"
            )
    except InvalidSignature as exc:
        raise SignatureInvalid("the signature value does not verify with the signer's key") from exc
