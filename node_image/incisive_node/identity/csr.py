"""Certificate signing requests: built at the site (the key never leaves it), checked at the hub.

Naming: every federation member is an entity with a DNS-label name and a role. A site
``site-a`` is ``CN=site-a`` with DNS name ``site-a.sites.<domain>``; a hub service
``ledger`` is ``ledger.hub.<domain>``. The CA writes the subject itself; the CSR's subject
must say exactly ``CN=<name>`` so a mistyped or forged request is caught, not rewritten.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtensionOID, NameOID

ENTITY_NAME = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")
_DNS_LABEL = ENTITY_NAME
ALLOWED_CURVES = (ec.SECP256R1, ec.SECP384R1)
MIN_RSA_BITS = 3072  # BSI TR-02102-1 and ANSSI: 3000+ bits for keys used beyond 2023
MAX_RSA_BITS = 8192
MAX_DNS_NAMES = 16


class Role(StrEnum):
    SITE = "site"
    HUB = "hub"

    @property
    def zone(self) -> str:
        return "sites" if self is Role.SITE else "hub"


class CsrRejected(ValueError):
    """The CSR breaks a federation rule; the message says which."""


@dataclass(frozen=True)
class Entity:
    name: str
    role: Role

    def base_dns_name(self, domain: str) -> str:
        return f"{self.name}.{self.role.zone}.{domain}"


@dataclass(frozen=True)
class CheckedCsr:
    entity: Entity
    public_key: rsa.RSAPublicKey | ec.EllipticCurvePublicKey
    dns_names: tuple[str, ...]  # base name first, then the requested service names


def check_entity_name(name: str) -> None:
    if not ENTITY_NAME.fullmatch(name):
        raise CsrRejected(
            f"entity name {name!r} is not a DNS label (a-z, 0-9 and '-', at most 63, "
            "starting and ending with a letter or digit)"
        )


def check_csr(csr_pem: bytes, entity: Entity, domain: str) -> CheckedCsr:
    """Apply every rule to a CSR for ``entity``, which the hub authenticated by other means."""
    check_entity_name(entity.name)
    try:
        csr = x509.load_pem_x509_csr(csr_pem)
    except ValueError as exc:
        raise CsrRejected(f"not a PEM certificate signing request: {exc}") from exc
    if not csr.is_signature_valid:
        raise CsrRejected("the CSR's self-signature does not verify (proof of key possession)")
    public_key = csr.public_key()
    _check_key(public_key)
    _check_subject(csr, entity)
    dns_names = _check_extensions(csr, entity, domain)
    return CheckedCsr(entity, public_key, dns_names)


def _check_key(key: object) -> None:
    if isinstance(key, ec.EllipticCurvePublicKey):
        if not isinstance(key.curve, ALLOWED_CURVES):
            raise CsrRejected(
                f"EC curve {key.curve.name} is not accepted; use secp256r1 or secp384r1"
            )
    elif isinstance(key, rsa.RSAPublicKey):
        if not MIN_RSA_BITS <= key.key_size <= MAX_RSA_BITS:
            raise CsrRejected(
                f"RSA key of {key.key_size} bits is outside {MIN_RSA_BITS}..{MAX_RSA_BITS} bits"
            )
    else:
        raise CsrRejected(
            f"{type(key).__name__} keys are not accepted; use EC P-256/P-384 or RSA >= "
            f"{MIN_RSA_BITS} bits"
        )


def _check_subject(csr: x509.CertificateSigningRequest, entity: Entity) -> None:
    attributes = list(csr.subject)
    if len(attributes) != 1 or attributes[0].oid != NameOID.COMMON_NAME:
        raise CsrRejected(
            f"CSR subject must be exactly CN={entity.name}; it is {csr.subject.rfc4514_string()!r}"
        )
    if attributes[0].value != entity.name:
        raise CsrRejected(
            f"CSR is for CN={attributes[0].value!r}, but the enrolled {entity.role} is "
            f"{entity.name!r}"
        )


def _check_extensions(
    csr: x509.CertificateSigningRequest, entity: Entity, domain: str
) -> tuple[str, ...]:
    base = entity.base_dns_name(domain)
    requested: list[str] = []
    for ext in csr.extensions:
        if ext.oid != ExtensionOID.SUBJECT_ALTERNATIVE_NAME:
            raise CsrRejected(
                f"CSR requests extension {type(ext.value).__name__} ({ext.oid.dotted_string}); "
                "the CA sets "
                "every extension itself and honours only subjectAltName DNS names"
            )
        for name in ext.value:
            if not isinstance(name, x509.DNSName):
                raise CsrRejected(
                    f"subjectAltName {name.value!r} is a {type(name).__name__}; only DNS "
                    f"names under {base} are allowed"
                )
            requested.append(_check_dns_name(name.value, base))
    names = [base, *dict.fromkeys(n for n in requested if n != base)]
    if len(names) > MAX_DNS_NAMES:
        raise CsrRejected(f"CSR asks for {len(names)} DNS names; at most {MAX_DNS_NAMES}")
    return tuple(names)


def _check_dns_name(name: str, base: str) -> str:
    lowered = name.lower().rstrip(".")
    if "*" in lowered:
        raise CsrRejected(f"wildcard DNS name {name!r} is not allowed; list each service")
    if lowered != base and not lowered.endswith("." + base):
        raise CsrRejected(f"DNS name {name!r} is outside this entity's zone {base}")
    if not all(_DNS_LABEL.fullmatch(label) for label in lowered.split(".")):
        raise CsrRejected(f"DNS name {name!r} has a label that is not a DNS label")
    return lowered


# --- site side -------------------------------------------------------------------------


def generate_key() -> ec.EllipticCurvePrivateKey:
    """A fresh P-256 key: small, fast, and accepted by every TLS stack we talk to."""
    return ec.generate_private_key(ec.SECP256R1())


def build_csr(
    key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey,
    name: str,
    dns_names: tuple[str, ...] = (),
) -> bytes:
    builder = x509.CertificateSigningRequestBuilder().subject_name(
        x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    )
    if dns_names:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.DNSName(n) for n in dns_names]), critical=False
        )
    return builder.sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM)


def write_private_key(path: Path, key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey) -> None:
    """Write the key readable by its owner only, created with that mode (no window)."""
    data = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
    os.replace(tmp, path)
