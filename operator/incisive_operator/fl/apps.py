"""Which Flower app a TrainingJob names, and the checks the hub and the sites make on it.

`spec.app.reference` names a bundle as `<publisher>/<app>[:<version>]`. For now the only
bundles are the appliance's built-in apps (bundle.build_bundle): a bundle holds no code,
only the pyproject naming the appliance's own ServerApp and ClientApp, so the hub and
every site can each build it from the image they run and get the same bytes (Flower builds
FABs deterministically). The hub compares the SHA-256 of what it built with
`spec.app.digest` before it starts a run; a site verifies the publisher's signature over
the bytes *it* built against the keys its policy trusts, and pins that digest.
"""

from __future__ import annotations

import functools
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from incisive_node.fl import bundle
from incisive_node.fl.bundle import AppBundle
from incisive_node.fl.signing import (
    AppNotTrusted,
    AppSignature,
    public_key_from_base64,
    sign_app,
    verify_app,
)

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

BUILT_IN = {f"{bundle.PUBLISHER}/{bundle.APP_NAME}": bundle.build_bundle}
DEFAULT_VERSION = "1.0.0"
DEFAULT_REFERENCE = f"{bundle.PUBLISHER}/{bundle.APP_NAME}:{DEFAULT_VERSION}"


class AppRefused(Exception):
    """The job's app cannot run: `reason` is a condition reason, the message says why."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class Reference:
    app_id: str
    version: str

    @classmethod
    def parse(cls, text: str) -> Reference:
        app_id, _, version = text.strip().partition(":")
        if app_id not in BUILT_IN:
            known = ", ".join(sorted(BUILT_IN))
            raise AppRefused("UnknownApp", f"app {text!r} is not a known bundle (known: {known})")
        version = version or DEFAULT_VERSION
        if not version.replace(".", "").replace("-", "").isalnum():
            raise AppRefused("UnknownApp", f"app {text!r}: malformed version {version!r}")
        return cls(app_id, version)

    def __str__(self) -> str:
        return f"{self.app_id}:{self.version}"


def build(reference: str, folder: Path) -> AppBundle:
    """Build the bundle `reference` names under `folder` (what `flwr run` takes)."""
    ref = Reference.parse(reference)
    return BUILT_IN[ref.app_id](folder, ref.version)


@functools.lru_cache(maxsize=16)
def fab_of(reference: str) -> tuple[bytes, str]:
    """The bundle's bytes and SHA-256, built once per process."""
    with tempfile.TemporaryDirectory(prefix="incisive-fab-") as scratch:
        built = build(reference, Path(scratch))
        return built.fab, built.sha256


def digest_text(sha256: str) -> str:
    return f"sha256:{sha256}"


def check_digest(reference: str, digest: str) -> str:
    """The hub's check before running: the bundle it builds has the digest the job names."""
    _, sha = fab_of(reference)
    if digest_text(sha) != digest:
        raise AppRefused(
            "AppDigestMismatch",
            f"app {reference} builds to {digest_text(sha)[:23]}..., but the job names "
            f"{digest[:23]}...; publish the app again (`incisive fl publish`) and use its digest")
    return sha


def parse_signature(text: str | None) -> AppSignature:
    if not text:
        raise AppRefused("AppNotSigned", "the job carries no app signature (spec.app.signature); "
                         "sites run only signed apps")
    try:
        return AppSignature.from_json(text)
    except (ValueError, TypeError) as error:
        raise AppRefused("AppNotSigned", "spec.app.signature is not an app signature "
                         "(the JSON `incisive fl publish` prints)") from error


def verify_for_site(reference: str | None, digest: str | None, signature: str | None,
                    trusted_keys: Iterable[str]) -> str:
    """What a site checks before it accepts: the bundle it builds itself is the one the job
    names and a key its policy trusts signed it. Returns the SHA-256 to pin."""
    if not reference:
        raise AppRefused("UnknownApp", "the work names no app")
    keys = []
    for position, text in enumerate(trusted_keys):
        try:
            keys.append(public_key_from_base64(text))
        except ValueError as error:
            raise AppRefused("InvalidTrustedKey",
                             f"policy.trustedAppSigningKeys[{position}]: {error}") from error
    if not keys:
        raise AppRefused("AppNotTrusted", "this site's policy trusts no app-signing key "
                         "(policy.trustedAppSigningKeys)")
    fab, sha = fab_of(reference)
    if digest is not None and digest != digest_text(sha):
        raise AppRefused("AppDigestMismatch",
                         f"the app this site builds for {reference} is not the one the job "
                         "names (digest differs)")
    try:
        return verify_app(fab, parse_signature(signature), keys)
    except AppNotTrusted as error:
        raise AppRefused("AppNotTrusted", str(error)) from error


def publish(key: Ed25519PrivateKey, reference: str) -> dict[str, str]:
    """Sign the bundle `reference` names: the TrainingJob's `spec.app`."""
    ref = Reference.parse(reference)
    fab, sha = fab_of(str(ref))
    signature = sign_app(fab, ref.app_id, ref.version, key)
    return {"reference": str(ref), "digest": digest_text(sha), "signature": signature.to_json()}
