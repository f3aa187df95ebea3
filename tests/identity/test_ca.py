"""The federation CA: CSR in, chain out; the CSR rules; the certificate profile; renewal."""

from __future__ import annotations

import inspect
import stat
from datetime import UTC, datetime, timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from incisive_node.identity.ca import FederationCA, IssuedSerials, entity_of
from incisive_node.identity.csr import (
    CsrRejected,
    Entity,
    Role,
    build_csr,
    generate_key,
    write_private_key,
)
from incisive_node.identity.renewal import (
    SiteCredentials,
    needs_renewal,
    renew,
    renewal_time,
    time_until_renewal,
)

DOMAIN = "incisive.test"
SITE_A = Entity("site-a", Role.SITE)
NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def ca() -> FederationCA:
    return FederationCA.create(DOMAIN, now=NOW - timedelta(days=30))[0]


@pytest.fixture(scope="module")
def site_key() -> ec.EllipticCurvePrivateKey:
    return generate_key()


def test_csr_flow_keeps_the_key_at_the_site(ca, site_key):
    # The CA's API takes a CSR and an authenticated entity: there is no parameter for a key.
    assert list(inspect.signature(ca.issue).parameters) == ["csr_pem", "entity", "now"]
    csr_pem = build_csr(site_key, "site-a", ("ledger.site-a.sites.incisive.test",))
    assert b"PRIVATE KEY" not in csr_pem

    issued = ca.issue(csr_pem, SITE_A, now=NOW)

    leaf, issuing = x509.load_pem_x509_certificates(issued.chain_pem)
    assert leaf == issued.certificate and issuing == ca.issuing
    assert leaf.public_key().public_numbers() == site_key.public_key().public_numbers()
    leaf.verify_directly_issued_by(ca.issuing)
    ca.issuing.verify_directly_issued_by(ca.root)
    assert entity_of(leaf) == SITE_A


def test_certificate_profile_fits_mtls(ca, site_key):
    leaf = ca.issue(build_csr(site_key, "site-a"), SITE_A, now=NOW).certificate
    ext = leaf.extensions
    assert ext.get_extension_for_class(x509.BasicConstraints).value.ca is False
    assert ext.get_extension_for_class(x509.BasicConstraints).critical
    usage = ext.get_extension_for_class(x509.KeyUsage).value
    assert usage.digital_signature and not usage.key_cert_sign and not usage.content_commitment
    assert set(ext.get_extension_for_class(x509.ExtendedKeyUsage).value) == {
        ExtendedKeyUsageOID.CLIENT_AUTH,
        ExtendedKeyUsageOID.SERVER_AUTH,
    }
    san = ext.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["site-a.sites.incisive.test"]
    assert leaf.subject.get_attributes_for_oid(NameOID.ORGANIZATIONAL_UNIT_NAME)[0].value == "site"
    assert leaf.not_valid_after_utc - leaf.not_valid_before_utc == timedelta(days=7, minutes=5)
    aki = ext.get_extension_for_class(x509.AuthorityKeyIdentifier).value.key_identifier
    assert aki == ca.issuing.extensions.get_extension_for_class(
        x509.SubjectKeyIdentifier
    ).value.digest
    constraints = ca.issuing.extensions.get_extension_for_class(x509.NameConstraints).value
    assert constraints.permitted_subtrees == [x509.DNSName(DOMAIN)]


def test_serials_are_random_and_recorded(ca, site_key):
    csr = build_csr(site_key, "site-a")
    serials = [ca.issue(csr, SITE_A, now=NOW).serial for _ in range(5)]
    assert len(set(serials)) == 5
    assert all(s > 2**64 for s in serials)  # 159 random bits; small values would be a counter
    assert all(s in ca.serials for s in serials)
    recorded = {int(e["serial"], 16): e for e in ca.serials.entries()}
    assert recorded[serials[0]]["name"] == "site-a"


def test_hub_services_get_names_in_the_hub_zone(ca):
    key = generate_key()
    leaf = ca.issue(build_csr(key, "ledger"), Entity("ledger", Role.HUB), now=NOW).certificate
    san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["ledger.hub.incisive.test"]


def _csr(key, subject: list[x509.NameAttribute], extensions=()) -> bytes:
    builder = x509.CertificateSigningRequestBuilder().subject_name(x509.Name(subject))
    for extension in extensions:
        builder = builder.add_extension(extension, critical=False)
    algorithm = None if isinstance(key, ed25519.Ed25519PrivateKey) else hashes.SHA256()
    return builder.sign(key, algorithm).public_bytes(serialization.Encoding.PEM)


CN_SITE_A = [x509.NameAttribute(NameOID.COMMON_NAME, "site-a")]


def _tampered() -> bytes:
    der = x509.load_pem_x509_csr(build_csr(generate_key(), "site-a")).public_bytes(
        serialization.Encoding.DER
    )
    # Flip a bit of the ECDSA signature's last byte: still parseable, no longer valid.
    flipped = der[:-1] + bytes([der[-1] ^ 0x01])
    return x509.load_der_x509_csr(flipped).public_bytes(serialization.Encoding.PEM)


@pytest.mark.parametrize(
    ("make_csr", "why"),
    [
        (_tampered, "does not verify"),
        (lambda: _csr(rsa.generate_private_key(65537, 2048), CN_SITE_A), "2048 bits"),
        (lambda: _csr(ec.generate_private_key(ec.SECP521R1()), CN_SITE_A), "secp521r1"),
        (lambda: _csr(ed25519.Ed25519PrivateKey.generate(), CN_SITE_A), "Ed25519"),
        (lambda: build_csr(generate_key(), "site-b"), "enrolled site is 'site-a'"),
        (
            lambda: _csr(
                generate_key(),
                [x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Evil"), *CN_SITE_A],
            ),
            "exactly CN=site-a",
        ),
        (
            lambda: build_csr(generate_key(), "site-a", ("site-b.sites.incisive.test",)),
            "outside this entity's zone",
        ),
        (
            lambda: build_csr(generate_key(), "site-a", ("*.site-a.sites.incisive.test",)),
            "wildcard",
        ),
        (
            lambda: _csr(
                generate_key(),
                CN_SITE_A,
                [x509.SubjectAlternativeName([x509.RFC822Name("admin@site-a.example")])],
            ),
            "RFC822Name",
        ),
        (
            lambda: _csr(
                generate_key(), CN_SITE_A, [x509.BasicConstraints(ca=True, path_length=None)]
            ),
            "BasicConstraints",
        ),
        (lambda: b"-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n", "not a PEM"),
    ],
)
def test_csr_rules(ca, make_csr, why):
    with pytest.raises(CsrRejected, match=why):
        ca.issue(make_csr(), SITE_A, now=NOW)


def test_entity_name_must_be_a_dns_label(ca):
    with pytest.raises(CsrRejected, match="not a DNS label"):
        ca.issue(build_csr(generate_key(), "Site_A"), Entity("Site_A", Role.SITE), now=NOW)


def test_renewal_time_is_two_thirds_of_the_lifetime(ca, site_key):
    leaf = ca.issue(build_csr(site_key, "site-a"), SITE_A, now=NOW).certificate
    start, end = leaf.not_valid_before_utc, leaf.not_valid_after_utc
    due = renewal_time(leaf)
    assert due == start + (end - start) * 2 / 3
    assert not needs_renewal(leaf, due - timedelta(seconds=1))
    assert needs_renewal(leaf, due)
    assert time_until_renewal(leaf, NOW) == due - NOW
    assert time_until_renewal(leaf, end) == timedelta(0)
    assert end - due > timedelta(days=2)  # room to retry while the hub is down
    with pytest.raises(ValueError):
        renewal_time(leaf, 1.5)


def test_renewal_rotates_the_key_through_a_new_csr(ca, site_key):
    issued = ca.issue(build_csr(site_key, "site-a"), SITE_A, now=NOW)
    current = SiteCredentials(site_key, issued.chain_pem)
    later = renewal_time(issued.certificate)
    seen_csrs: list[bytes] = []

    def submit(csr_pem: bytes) -> bytes:
        seen_csrs.append(csr_pem)
        return ca.renew(csr_pem, current.certificate, now=later).chain_pem

    renewed = renew(current, submit)

    assert len(seen_csrs) == 1 and b"PRIVATE KEY" not in seen_csrs[0]
    new_leaf = renewed.certificate
    assert new_leaf.serial_number != issued.serial and new_leaf.serial_number in ca.serials
    assert entity_of(new_leaf) == SITE_A
    assert new_leaf.public_key().public_numbers() != site_key.public_key().public_numbers()
    assert new_leaf.not_valid_after_utc > issued.not_after
    assert not needs_renewal(new_leaf, later)


def test_renewal_refuses_the_same_key_an_expired_or_foreign_certificate(ca, site_key):
    issued = ca.issue(build_csr(site_key, "site-a"), SITE_A, now=NOW)
    with pytest.raises(CsrRejected, match="new key"):
        ca.renew(build_csr(site_key, "site-a"), issued.certificate, now=NOW)
    fresh = build_csr(generate_key(), "site-a")
    with pytest.raises(CsrRejected, match="expired"):
        ca.renew(fresh, issued.certificate, now=issued.not_after + timedelta(seconds=1))
    other_ca = FederationCA.create(DOMAIN, now=NOW)[0]
    foreign = other_ca.issue(build_csr(site_key, "site-a"), SITE_A, now=NOW).certificate
    with pytest.raises(CsrRejected, match="not issued by this CA"):
        ca.renew(fresh, foreign, now=NOW)


def test_renewal_cannot_change_the_name(ca, site_key):
    issued = ca.issue(build_csr(site_key, "site-a"), SITE_A, now=NOW)
    with pytest.raises(CsrRejected, match="enrolled site is 'site-a'"):
        ca.renew(build_csr(generate_key(), "site-b"), issued.certificate, now=NOW)


def test_ca_state_survives_a_restart(tmp_path, site_key):
    record = IssuedSerials(tmp_path / "issued.jsonl")
    ca, _root_key = FederationCA.create(DOMAIN, now=NOW, serials=record)
    ca.save(tmp_path)
    assert stat.S_IMODE((tmp_path / "issuing.key").stat().st_mode) == 0o600
    first = ca.issue(build_csr(site_key, "site-a"), SITE_A, now=NOW)

    reloaded = FederationCA.load(tmp_path, DOMAIN)
    assert first.serial in reloaded.serials
    second = reloaded.issue(build_csr(site_key, "site-a"), SITE_A, now=NOW)
    second.certificate.verify_directly_issued_by(ca.issuing)


def test_private_key_file_is_owner_only(tmp_path):
    path = tmp_path / "site.key"
    write_private_key(path, generate_key())
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert serialization.load_pem_private_key(path.read_bytes(), None)
