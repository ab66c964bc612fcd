"""Addresses and network segments: where a host sits, and which address to probe a VM on."""

from __future__ import annotations

import ipaddress

# Omni's SideroLink ULA: a machine's address there says nothing of its own segment
_SIDEROLINK = ipaddress.ip_network("fdae:41e4:649b:9303::/64")


def networks(addresses: list[str]) -> list[ipaddress.IPv4Interface | ipaddress.IPv6Interface]:
    """The addresses (CIDR) that place a host on a segment: global scope, not loopback or link-local."""
    out = []
    for text in addresses or []:
        try:
            iface = ipaddress.ip_interface(str(text))
        except ValueError:
            continue
        ip = iface.ip
        if ip.is_loopback or ip.is_link_local or (ip.version == 6 and ip in _SIDEROLINK):
            continue
        out.append(iface)
    return out



def same_segment(host_addresses: list[str], vm_addresses: list[str]) -> bool | None:
    """True when a VM address lies in a network of the host; None when either side has none."""
    host, vm = networks(host_addresses), networks(vm_addresses)
    if not host or not vm:
        return None
    return any(v.ip in h.network for h in host for v in vm if h.version == v.version)


def probe_address(addresses: list[str]) -> str | None:
    """The address to probe a VM on: its first global IPv4, else its first global IPv6."""
    usable_ = networks(addresses)
    for iface in usable_:
        if iface.version == 4:
            return str(iface.ip)
    return str(usable_[0].ip) if usable_ else None
