"""When and how a site renews its certificate, seen from the site.

Renewal starts at two thirds of the lifetime: with the default 7 days that leaves more
than two days to retry while the hub is unreachable, before the site's own mTLS breaks.
A renewal always rotates the key; the old key is kept until the new chain is in place.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from .csr import build_csr, generate_key

RENEW_AT_FRACTION = 2 / 3

# The hub's renew endpoint, as the site sees it: a CSR in, a PEM chain (leaf first) out.
SubmitCsr = Callable[[bytes], bytes]


@dataclass(frozen=True)
class SiteCredentials:
    key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey
    chain_pem: bytes

    @property
    def certificate(self) -> x509.Certificate:
        return x509.load_pem_x509_certificates(self.chain_pem)[0]


def renewal_time(cert: x509.Certificate, fraction: float = RENEW_AT_FRACTION) -> datetime:
    if not 0 < fraction < 1:
        raise ValueError(f"renewal fraction {fraction} is not between 0 and 1")
    start, end = cert.not_valid_before_utc, cert.not_valid_after_utc
    return start + (end - start) * fraction


def needs_renewal(
    cert: x509.Certificate, now: datetime | None = None, fraction: float = RENEW_AT_FRACTION
) -> bool:
    return (now or datetime.now(UTC)) >= renewal_time(cert, fraction)


def time_until_renewal(cert: x509.Certificate, now: datetime | None = None) -> timedelta:
    """How long a renewal loop may sleep; zero when renewal is due."""
    return max(renewal_time(cert) - (now or datetime.now(UTC)), timedelta(0))


def renew(current: SiteCredentials, submit: SubmitCsr) -> SiteCredentials:
    """Generate a new key, send only its CSR, and check the answer before adopting it."""
    name = current.certificate.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)[0].value
    san = current.certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    key = generate_key()
    dns_names = tuple(san.value.get_values_for_type(x509.DNSName))
    chain_pem = submit(build_csr(key, str(name), dns_names))
    leaf = x509.load_pem_x509_certificates(chain_pem)[0]
    if leaf.public_key().public_numbers() != key.public_key().public_numbers():
        raise ValueError("the hub returned a certificate for a different key")
    return SiteCredentials(key, chain_pem)
