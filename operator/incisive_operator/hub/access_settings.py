"""The hub's data-access settings: one ConfigMap the consortium's stewards keep.

By default `incisive-system/data-access` (`INCISIVE_DATA_ACCESS_CONFIG=namespace/name`
names another), in a namespace researchers cannot write to:

    data:
      allowedPurposes: lung-cancer-research, ai-validation   # commas or spaces
      maxDuration: 90d                                       # longest access granted
      requireQSCD: "false"        # "true": only signatures made on a qualified device
      eu-de.xml: <the signed ETSI TS 119 612 trusted list>
      eu-de.pem: <the scheme operator's certificate(s) that must have signed eu-de.xml>

Every `<name>.xml` is a trusted list; `<name>.pem` pins who must have signed it (from the
EU list of trusted lists). A list whose signature does not verify refuses every request
until it is fixed, rather than being skipped: a hub that silently trusts fewer (or other)
services than its stewards think is worse than one that says it is misconfigured.

Why a ConfigMap and not files or flags: trusted lists are reissued every few months and
the stewards change purposes without restarting the operator; the chart can still mount
the same ConfigMap for other readers. It is read on each pass and parsed again only when
its resourceVersion changes.
"""

from __future__ import annotations

import os
import re
import threading
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from incisive_node.identity.trusted_list import MalformedTrustedList, TrustedList
from incisive_node.identity.trusted_list_signature import (
    load_pinned_certificates,
    load_trusted_list,
)

from ..api.v1alpha1.dataaccessrequest import parse_duration

CONFIG_ENV = "INCISIVE_DATA_ACCESS_CONFIG"
DEFAULT_CONFIG = "incisive-system/data-access"
DEFAULT_MAX_DURATION = timedelta(days=30)


@dataclass(frozen=True)
class AccessSettings:
    allowed_purposes: frozenset[str] = frozenset()
    max_duration: timedelta = DEFAULT_MAX_DURATION
    require_qscd: bool = False
    trusted_lists: tuple[TrustedList, ...] = ()
    # Why the settings cannot be used as they are; each refuses every request.
    problems: tuple[str, ...] = field(default_factory=tuple)
    source: str = DEFAULT_CONFIG


def config_location() -> tuple[str, str]:
    namespace, _, name = os.environ.get(CONFIG_ENV, DEFAULT_CONFIG).partition("/")
    return namespace, name


_cache: dict[tuple[str, str], tuple[str, AccessSettings]] = {}
_lock = threading.Lock()


def read(api: Any) -> AccessSettings:
    from kubernetes import client

    namespace, name = config_location()
    source = f"{namespace}/{name}"
    try:
        found = client.CoreV1Api(api).read_namespaced_config_map(name, namespace)
    except client.ApiException as exc:
        if exc.status != 404:
            raise
        return AccessSettings(problems=(
            f"the hub has no data-access settings (ConfigMap {source}); no request can be "
            "checked",), source=source)
    version = found.metadata.resource_version or ""
    with _lock:
        cached = _cache.get((namespace, name))
        if cached is not None and cached[0] == version:
            return cached[1]
    settings = parse(found.data or {}, source)
    with _lock:
        _cache[(namespace, name)] = (version, settings)
    return settings


def parse(data: dict[str, str], source: str = DEFAULT_CONFIG) -> AccessSettings:
    problems: list[str] = []
    purposes = frozenset(p for p in re.split(r"[\s,]+", data.get("allowedPurposes", "")) if p)
    try:
        max_duration = parse_duration(data.get("maxDuration", "").strip() or "30d")
    except ValueError as exc:
        problems.append(f"maxDuration in {source}: {exc}")
        max_duration = DEFAULT_MAX_DURATION
    lists: list[TrustedList] = []
    for key in sorted(k for k in data if k.endswith(".xml")):
        pin_key = key.removesuffix(".xml") + ".pem"
        if not data.get(pin_key, "").strip():
            problems.append(f"trusted list {key} in {source} refused: no {pin_key} pins the "
                            "scheme operator that must have signed it")
            continue
        try:
            pinned = load_pinned_certificates(data.get(pin_key, "").encode())
            lists.append(load_trusted_list(data[key].encode(), pinned))
        except MalformedTrustedList as exc:
            problems.append(f"trusted list {key} in {source} refused: {exc}")
    if not lists and not problems:
        problems.append(f"{source} holds no trusted list (<name>.xml with <name>.pem)")
    return AccessSettings(
        allowed_purposes=purposes,
        max_duration=max_duration,
        require_qscd=data.get("requireQSCD", "false").strip().lower() == "true",
        trusted_lists=tuple(lists),
        problems=tuple(problems),
        source=source,
    )
