"""``ip [-j] [-p] [-4|-6] addr [show] [dev IFACE]`` on a lab host: iproute2's text and JSON output.

A host has ``lo`` and one ethernet interface (``interface``, default ``eth0``) carrying the
addresses of its model (``addresses: ["10.0.0.5/24", ...]``), with a MAC address in Proxmox's OUI
derived from the host's name.
"""

from __future__ import annotations

import ipaddress
import json
import zlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .shell import Session

_FOREVER = 4294967295


def _interfaces(sh: "Session") -> list[dict]:
    """iproute2's view of the host: lo plus one ethernet interface carrying the model's addresses."""
    lo = {"ifindex": 1, "ifname": "lo", "flags": ["LOOPBACK", "UP", "LOWER_UP"], "mtu": 65536,
          "qdisc": "noqueue", "operstate": "UNKNOWN", "group": "default", "txqlen": 1000,
          "link_type": "loopback", "address": "00:00:00:00:00:00", "broadcast": "00:00:00:00:00:00",
          "addr_info": [
              {"family": "inet", "local": "127.0.0.1", "prefixlen": 8, "scope": "host", "label": "lo",
               "valid_life_time": _FOREVER, "preferred_life_time": _FOREVER},
              {"family": "inet6", "local": "::1", "prefixlen": 128, "scope": "host",
               "valid_life_time": _FOREVER, "preferred_life_time": _FOREVER}]}
    name = sh.host.get("interface", "eth0")
    crc = zlib.crc32(sh.name.encode())
    mac = "bc:24:11:" + ":".join(f"{(crc >> s) & 0xFF:02x}" for s in (16, 8, 0))  # Proxmox's OUI
    infos = []
    for text in sh.host.get("addresses") or []:
        iface = ipaddress.ip_interface(text)
        info = {"family": "inet" if iface.version == 4 else "inet6", "local": str(iface.ip),
                "prefixlen": iface.network.prefixlen}
        if iface.version == 4 and iface.network.prefixlen < 31:
            info["broadcast"] = str(iface.network.broadcast_address)
        info["scope"] = "global"
        if iface.version == 4:
            info["label"] = name
        info.update(valid_life_time=_FOREVER, preferred_life_time=_FOREVER)
        infos.append(info)
    eth = {"ifindex": 2, "ifname": name, "flags": ["BROADCAST", "MULTICAST", "UP", "LOWER_UP"], "mtu": 1500,
           "qdisc": "noqueue", "operstate": "UP", "group": "default", "txqlen": 1000, "link_type": "ether",
           "address": mac, "broadcast": "ff:ff:ff:ff:ff:ff", "addr_info": infos}
    return [lo, eth]


def _ip_text(ifaces: list[dict]) -> str:
    lines = []
    for i in ifaces:
        state = f" state {i['operstate']}"
        lines.append(f"{i['ifindex']}: {i['ifname']}: <{','.join(i['flags'])}> mtu {i['mtu']} qdisc {i['qdisc']}"
                     f"{state} group {i['group']} qlen {i['txqlen']}")
        lines.append(f"    link/{i['link_type']} {i['address']} brd {i['broadcast']}")
        for a in i["addr_info"]:
            brd = f" brd {a['broadcast']}" if "broadcast" in a else ""
            label = f" {a['label']}" if "label" in a else ""
            lines.append(f"    {a['family']} {a['local']}/{a['prefixlen']}{brd} scope {a['scope']}{label}")
            lines.append("       valid_lft forever preferred_lft forever")
    return "\n".join(lines) + "\n"


async def main(args: list[str], sh: "Session") -> int:
    """Run ``ip ARGS``; returns the exit status."""
    args = list(args)
    as_json = pretty = False
    family = None
    while args and args[0].startswith("-"):
        flag = args.pop(0)
        if flag in ("-j", "-json", "--json"):
            as_json = True
        elif flag in ("-p", "-pretty", "--pretty"):
            pretty = True
        elif flag in ("-4", "-6"):
            family = "inet" if flag == "-4" else "inet6"
        else:
            await sh.io.err(f'Option "{flag}" is unknown, try "ip -help".\n')
            return 255
    obj = args.pop(0) if args else "help"
    if not "address".startswith(obj) and obj != "addr":
        if obj == "help":
            await sh.io.err("Usage: ip [ OPTIONS ] OBJECT { COMMAND | help }\n")
            return 0
        await sh.io.err(f'Object "{obj}" is unknown, try "ip help".\n')
        return 255
    if args and args[0] in ("show", "list", "ls", "lst", "sh"):
        args.pop(0)
    ifaces = _interfaces(sh)
    if len(args) >= 2 and args[0] == "dev":
        ifaces = [i for i in ifaces if i["ifname"] == args[1]]
        if not ifaces:
            await sh.io.err(f'Device "{args[1]}" does not exist.\n')
            return 1
    if family:
        ifaces = [dict(i, addr_info=[a for a in i["addr_info"] if a["family"] == family]) for i in ifaces]
    if as_json:
        text = json.dumps(ifaces, indent=4) if pretty else json.dumps(ifaces, separators=(",", ":"))
        await sh.io.out(text + "\n")
    else:
        await sh.io.out(_ip_text(ifaces))
    return 0

