"""The appliance's servers bind to loopback unless told otherwise.

Outside a pod, loopback is the safe default: a site's own proxy decides who may reach the
appliance. Inside a pod, the Service and the DataNode's NetworkPolicy do, and the servers
must listen on the pod's address: that takes an explicit `allow_external`."""

from __future__ import annotations

import ipaddress


def require_loopback(host: str, allow_external: bool = False) -> str:
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        raise ValueError(f"listen address must be an IP literal in 127.0.0.0/8: {host!r}") from None
    if allow_external:
        return host
    if address.version != 4 or not address.is_loopback:
        raise ValueError(f"listen address must be in 127.0.0.0/8 (or allow_external, as in a "
                         f"pod behind its NetworkPolicy): {host}")
    return host
