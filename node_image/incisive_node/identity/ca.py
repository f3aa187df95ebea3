"""The federation CA at the hub: short-lived mTLS certificates from CSRs, never from keys.

Two tiers: a root (its key kept offline, or discarded after bootstrap) that every member
trusts, and an issuing CA the hub holds, constrained by name to the federation's DNS
domain so that even a stolen issuing key cannot mint certificates for anyone else's names.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from .csr import CheckedCsr, CsrRejected, Entity, Role, check_csr, write_private_key

DEFAULT_LIFETIME = timedelta(days=7)
BACKDATE = timedelta(minutes=5)  # tolerates clock skew between hub and sites
ROOT_LIFETIME = timedelta(days=3650)
ISSUING_LIFETIME = timedelta(days=730)
ORGANISATION = "INCISIVE Federation"


@dataclass(frozen=True)
class IssuedCertificate:
    certificate: x509.Certificate
    chain_pem: bytes  # leaf then issuing CA: what a TLS endpoint presents
    serial: int
    entity: Entity

    @property
    def not_after(self) -> datetime:
        return self.certificate.not_valid_after_utc


class IssuedSerials:
    """Every serial the CA issued, appended to a JSON-lines file when one is given.

    No revocation list yet: certificates live for days, so expiry is the revocation. The
    record is what an auditor (and later the ledger) needs to tie a serial to an entity.
    """

    def __init__(self, path: Path | None = None):
        self._path = path
        self._entries: dict[int, dict] = {}
        if path is not None and path.exists():
            for line in path.read_text().splitlines():
                entry = json.loads(line)
                self._entries[int(entry["serial"], 16)] = entry

    def __contains__(self, serial: int) -> bool:
        return serial in self._entries

    def entries(self) -> list[dict]:
        return list(self._entries.values())

    def record(self, cert: x509.Certificate, entity: Entity) -> None:
        entry = {
            "serial": format(cert.serial_number, "x"),
            "name": entity.name,
            "role": str(entity.role),
            "fingerprint": cert.fingerprint(hashes.SHA256()).hex(),
            "notBefore": cert.not_valid_before_utc.isoformat(),
            "notAfter": cert.not_valid_after_utc.isoformat(),
        }
        self._entries[cert.serial_number] = entry
        if self._path is not None:
            with self._path.open("a") as handle:
                handle.write(json.dumps(entry, sort_keys=True) + "\n")


class FederationCA:
    def __init__(
        self,
        *,
        root: x509.Certificate,
        issuing: x509.Certificate,
        issuing_key: ec.EllipticCurvePrivateKey,
        domain: str,
        serials: IssuedSerials | None = None,
        lifetime: timedelta = DEFAULT_LIFETIME,
    ):
        self.root = root
        self.issuing = issuing
        self._key = issuing_key
        self.domain = domain
        self.serials = serials or IssuedSerials()
        self.lifetime = lifetime

    @classmethod
    def create(
        cls, domain: str, *, now: datetime | None = None, **kwargs
    ) -> tuple[FederationCA, ec.EllipticCurvePrivateKey]:
        """A new root and issuing CA; returns the CA and the root key to store offline."""
        now = now or datetime.now(UTC)
        root_key = ec.generate_private_key(ec.SECP384R1())
        root_name = _ca_name("INCISIVE Federation Root CA")
        root = (
            _ca_builder(root_name, root_name, root_key.public_key(), now, ROOT_LIFETIME, None)
            .add_extension(
                x509.SubjectKeyIdentifier.from_public_key(root_key.public_key()), critical=False
            )
            .sign(root_key, hashes.SHA384())
        )
        issuing_key = ec.generate_private_key(ec.SECP384R1())
        issuing = (
            _ca_builder(
                _ca_name("INCISIVE Federation Issuing CA"),
                root_name,
                issuing_key.public_key(),
                now,
                ISSUING_LIFETIME,
                0,
            )
            .add_extension(
                x509.SubjectKeyIdentifier.from_public_key(issuing_key.public_key()),
                critical=False,
            )
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(root_key.public_key()),
                critical=False,
            )
            .add_extension(
                x509.NameConstraints(
                    permitted_subtrees=[x509.DNSName(domain)], excluded_subtrees=None
                ),
                critical=True,
            )
            .sign(root_key, hashes.SHA384())
        )
        ca = cls(root=root, issuing=issuing, issuing_key=issuing_key, domain=domain, **kwargs)
        return ca, root_key

    @property
    def trust_anchor_pem(self) -> bytes:
        return self.root.public_bytes(serialization.Encoding.PEM)

    def issue(
        self, csr_pem: bytes, entity: Entity, *, now: datetime | None = None
    ) -> IssuedCertificate:
        """Check the CSR for ``entity`` (already authenticated by the caller) and sign it."""
        checked = check_csr(csr_pem, entity, self.domain)
        return self._sign(checked, now or datetime.now(UTC))

    def renew(
        self, csr_pem: bytes, current: x509.Certificate, *, now: datetime | None = None
    ) -> IssuedCertificate:
        """A new certificate for the holder of ``current``, which must still be valid.

        The caller has seen ``current`` in the mTLS handshake, so it proves possession of
        the old key; the CSR proves possession of the new one, which must differ.
        """
        now = now or datetime.now(UTC)
        try:
            current.verify_directly_issued_by(self.issuing)
        except (ValueError, TypeError, InvalidSignature) as exc:
            raise CsrRejected("the presented certificate was not issued by this CA") from exc
        if current.serial_number not in self.serials:
            raise CsrRejected("the presented certificate's serial is not in the issued record")
        if not current.not_valid_before_utc <= now < current.not_valid_after_utc:
            raise CsrRejected(
                f"the presented certificate expired at "
                f"{current.not_valid_after_utc:%Y-%m-%dT%H:%MZ}; enrol again with a bootstrap token"
            )
        entity = entity_of(current)
        checked = check_csr(csr_pem, entity, self.domain)
        if _spki(checked.public_key) == _spki(current.public_key()):
            raise CsrRejected("renewal must use a new key; the CSR reuses the current one")
        return self._sign(checked, now)

    def _sign(self, checked: CheckedCsr, now: datetime) -> IssuedCertificate:
        not_after = min(now + self.lifetime, self.issuing.not_valid_after_utc)
        serial = x509.random_serial_number()
        while serial in self.serials:  # 159 random bits: a collision is theoretical
            serial = x509.random_serial_number()
        eku = [ExtendedKeyUsageOID.CLIENT_AUTH, ExtendedKeyUsageOID.SERVER_AUTH]
        entity = checked.entity
        cert = (
            x509.CertificateBuilder()
            .subject_name(_entity_name(entity))
            .issuer_name(self.issuing.subject)
            .public_key(checked.public_key)
            .serial_number(serial)
            .not_valid_before(now - BACKDATE)
            .not_valid_after(not_after)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(_key_usage(cert_sign=False), critical=True)
            .add_extension(x509.ExtendedKeyUsage(eku), critical=False)
            .add_extension(
                x509.SubjectAlternativeName([x509.DNSName(n) for n in checked.dns_names]),
                critical=False,
            )
            .add_extension(
                x509.SubjectKeyIdentifier.from_public_key(checked.public_key), critical=False
            )
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self._key.public_key()),
                critical=False,
            )
            .sign(self._key, hashes.SHA256())
        )
        self.serials.record(cert, entity)
        chain = b"".join(
            c.public_bytes(serialization.Encoding.PEM) for c in (cert, self.issuing)
        )
        return IssuedCertificate(cert, chain, serial, entity)

    def save(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        for name, cert in (("root.pem", self.root), ("issuing.pem", self.issuing)):
            (directory / name).write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        write_private_key(directory / "issuing.key", self._key)

    @classmethod
    def load(cls, directory: Path, domain: str, **kwargs) -> FederationCA:
        key = serialization.load_pem_private_key((directory / "issuing.key").read_bytes(), None)
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise ValueError("issuing.key is not an EC key")
        if os.stat(directory / "issuing.key").st_mode & 0o077:
            raise PermissionError(f"{directory / 'issuing.key'} is readable by group or others")
        return cls(
            root=x509.load_pem_x509_certificate((directory / "root.pem").read_bytes()),
            issuing=x509.load_pem_x509_certificate((directory / "issuing.pem").read_bytes()),
            issuing_key=key,
            domain=domain,
            serials=kwargs.pop("serials", None) or IssuedSerials(directory / "issued.jsonl"),
            **kwargs,
        )


def entity_of(cert: x509.Certificate) -> Entity:
    """The federation entity a certificate from this CA names (CN and OU)."""
    names = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    units = cert.subject.get_attributes_for_oid(NameOID.ORGANIZATIONAL_UNIT_NAME)
    if len(names) != 1 or len(units) != 1:
        raise CsrRejected("certificate subject is not a federation entity (CN and OU)")
    return Entity(str(names[0].value), Role(str(units[0].value)))


def _entity_name(entity: Entity) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, ORGANISATION),
            x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, str(entity.role)),
            x509.NameAttribute(NameOID.COMMON_NAME, entity.name),
        ]
    )


def _ca_name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, ORGANISATION),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def _ca_builder(subject, issuer, public_key, now, lifetime, path_length):
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - BACKDATE)
        .not_valid_after(now + lifetime)
        .add_extension(x509.BasicConstraints(ca=True, path_length=path_length), critical=True)
        .add_extension(_key_usage(cert_sign=True), critical=True)
    )


def _key_usage(*, cert_sign: bool) -> x509.KeyUsage:
    # TLS 1.3 and ECDHE need digitalSignature only; CAs sign certificates and nothing else.
    return x509.KeyUsage(
        digital_signature=not cert_sign,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=cert_sign,
        crl_sign=cert_sign,
        encipher_only=False,
        decipher_only=False,
    )


def _spki(key) -> bytes:
    return key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


__all__ = ["CsrRejected", "Entity", "FederationCA", "IssuedCertificate", "IssuedSerials", "Role"]
