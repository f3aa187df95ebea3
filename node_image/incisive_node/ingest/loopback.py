"""The appliance's servers bind to loopback only; the Service in front of the pod (or a
site's own proxy) decides who may reach them."""

from __future__ import annotations

import ipaddress


def require_loopback(host: str) -> str:
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        raise ValueError(f"listen address must be an IP literal in 127.0.0.0/8: {host!r}") from None
    if address.version != 4 or not address.is_loopback:
        raise ValueError(f"listen address must be in 127.0.0.0/8: {host}")
    return host
