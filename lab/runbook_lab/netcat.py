"""``nc`` (netcat-openbsd, Debian's default) on a lab host: TCP port probes made *from* the host.

Only what a port probe needs is simulated: ``nc [-z] [-v] [-n] [-4|-6] [-w SECS] HOST PORT...``,
where a port may be a range (``50000-50001``). Each port is tried in turn; the exit status is 0
when at least one connection succeeded and 1 otherwise, as netcat-openbsd does. With ``-v`` each
attempt prints the real program's line on stderr::

    Connection to 192.168.3.51 50000 port [tcp/*] succeeded!
    nc: connect to 192.168.3.51 port 50000 (tcp) failed: Connection refused
    nc: connect to 192.168.3.51 port 50000 (tcp) timed out: Operation now in progress

How a connection behaves comes from the host's ``probes``, looked up by ``ADDRESS:PORT``, then
``ADDRESS``, then ``talos`` for the Talos API ports (50000-50001) on any address. The modes:

``pass``        as the site serves it. On the Talos ports, as Talos serves them: 50000 (apid)
                accepts on every Talos machine, 50001 (trustd) only on a control-plane machine and
                is refused elsewhere (a worker, or a machine in maintenance mode); an address whose
                only VM is stopped answers ``No route to host`` (ARP gets no reply on the segment);
                an address with no machine behind it answers ``No route to host`` when it is on
                one of the host's own subnets and times out beyond them. On any other port (an
                ``ADDRESS`` or ``ADDRESS:PORT`` key), ``pass`` simply means the port accepts.
``drop``        a firewall DROP rule: nothing comes back until ``-w`` runs out (``timeout`` is a synonym)
``reject``      a firewall REJECT rule: ``Connection refused`` at once (``refused`` is a synonym)
``unreachable`` no route: ``No route to host`` at once

The firewall modes describe the path, so they apply whether or not a machine is behind the address.
Roles come from ``TwinContext.talos`` (see ``talos_nodes.py``: Omni's machine statuses and the
Proxmox VMs). Linux reports ``No route to host`` for an unanswered ARP after about 3 s; the twin
answers at once. Loopback addresses are really connected to. A non-loopback address the probes
do not mention, on a port other than the Talos ones, behaves like ``drop``: nothing on the twin's
loopback network answers for it, and the twin never sends traffic anywhere else.
"""

from __future__ import annotations

import asyncio
import ipaddress
from typing import TYPE_CHECKING

from .talos_nodes import serves

if TYPE_CHECKING:
    from .shell import Session

TALOS_PORTS = range(50000, 50002)
MODES = ("pass", "drop", "reject", "unreachable", "timeout", "refused")
_SYNONYMS = {"drop": "timeout", "reject": "refused"}  # what each firewall mode does to a connection
_USAGE = "usage: nc [-46CDdFhklNnrStUuvZz] [-I length] [-i interval] [-M ttl]\n" \
         "\t  [-m minttl] [-O length] [-P proxy_username] [-p source_port]\n" \
         "\t  [-q seconds] [-s sourceaddr] [-T keyword] [-V rtable] [-W recvlimit]\n" \
         "\t  [-w timeout] [-X proxy_protocol] [-x proxy_address[:port]]\n" \
         "\t  [destination] [port]\n"
_FLAGS = set("zvn46")
_SIMULATED = "-z -v -n -4 -6 -w"


class UsageError(Exception):
    """A command line the twin's nc refuses: the message goes to stderr, the exit status is 1."""


def parse(args: list[str]) -> tuple[set[str], float | None, str, list[int]]:
    """(flags, -w seconds or None, host, ports) from an nc command line."""
    flags: set[str] = set()
    wait: float | None = None
    words: list[str] = []
    i = 0
    while i < len(args):
        arg = args[i]
        i += 1
        if not arg.startswith("-") or arg == "-":
            words.append(arg)
            continue
        letters = arg[1:]
        while letters:
            ch, letters = letters[0], letters[1:]
            if ch in _FLAGS:
                flags.add(ch)
            elif ch == "w":
                value = letters or (args[i] if i < len(args) else None)
                if not letters:
                    i += 1
                letters = ""
                if value is None:
                    raise UsageError(f"nc: option requires an argument -- 'w'\n{_USAGE}")
                try:
                    wait = float(value)
                except ValueError:
                    raise UsageError(f"nc: timeout {value} is invalid\n") from None
            else:
                raise UsageError(f"nc: option -{ch} is not simulated by the lab twin (it knows {_SIMULATED})\n")
    if "z" not in flags:
        raise UsageError("nc: the lab twin's nc only probes ports (-z)\n")
    if len(words) < 2:
        raise UsageError("nc: missing port number\n" if words else _USAGE)
    host, ports = words[0], []
    for word in words[1:]:
        ports.extend(_ports(word))
    return flags, wait, host, ports


def _ports(word: str) -> list[int]:
    low, sep, high = word.partition("-")
    try:
        first, last = int(low), int(high) if sep else int(low)
    except ValueError:
        raise UsageError(f"nc: port range not valid: {word}\n" if sep else f"nc: port number invalid: {word}\n") from None
    if not (1 <= first <= 65535 and 1 <= last <= 65535):
        raise UsageError(f"nc: port number invalid: {word}\n")
    return list(range(min(first, last), max(first, last) + 1))


def mode_for(probes: dict, address: str, port: int, talos: dict | None = None,
             local: list[str] | tuple = ()) -> str | None:
    """How a connection to ``address:port`` ends: ``pass``, ``refused``, ``timeout`` or
    ``unreachable`` (an unknown mode is returned as is); None: really connect (loopback).

    ``talos`` maps addresses to Talos roles (``talos_nodes.talos_addresses``); ``local`` holds the
    host's own addresses as CIDRs (which subnets it reaches without a router)."""
    exact = f"{address}:{port}"
    if exact in probes:
        return _SYNONYMS.get(str(probes[exact]), str(probes[exact]))
    if address in probes:
        mode = str(probes[address])
    elif _is_loopback(address):
        return None
    elif port in TALOS_PORTS:
        mode = str(probes.get("talos", "pass"))
    else:
        return "timeout"
    if mode != "pass":
        return _SYNONYMS.get(mode, mode)
    if _is_loopback(address):
        return None
    if port not in TALOS_PORTS:  # the twin models only the Talos ports of a machine
        return "pass"
    role = (talos or {}).get(address)
    if role is None:
        return "unreachable" if _on_link(address, local) else "timeout"
    if role == "stopped":
        return "unreachable"
    return "pass" if serves(role, port) else "refused"


def _is_loopback(address: str) -> bool:
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False


def _on_link(address: str, local) -> bool:
    """Whether ``address`` is on one of the subnets of the host's own addresses."""
    try:
        target = ipaddress.ip_address(address)
    except ValueError:
        return False
    for cidr in local or ():
        try:
            if target in ipaddress.ip_interface(str(cidr)).network:
                return True
        except ValueError:
            continue
    return False


async def _connect(address: str, port: int, wait: float | None) -> str:
    """Really connect on loopback: ``pass``, ``refused`` or ``timeout``."""
    try:
        _reader, writer = await asyncio.wait_for(asyncio.open_connection(address, port), wait)
    except (asyncio.TimeoutError, TimeoutError):
        return "timeout"
    except OSError:
        return "refused"
    writer.close()
    return "pass"


async def main(args: list[str], sh: "Session") -> int:
    """Run ``nc ARGS``; returns nc's exit status."""
    try:
        flags, wait, host, ports = parse(args)
    except UsageError as exc:
        await sh.io.err(str(exc))
        return 1
    try:
        address = str(ipaddress.ip_address(host))
    except ValueError:
        if host != "localhost":
            await sh.io.err(f'nc: getaddrinfo for host "{host}" port {ports[0]}: Name or service not known\n')
            return 1
        address = "127.0.0.1"
    probes = sh.host.get("probes") or {}
    verbose = "v" in flags
    rc = 1
    for port in ports:
        mode = mode_for(probes, address, port, getattr(sh.ctx, "talos", None), sh.host.get("addresses") or ())
        if mode is not None and mode not in MODES:
            await sh.io.err(f"lab twin: probes for {address}:{port}: unknown mode {mode!r}; one of {', '.join(MODES)}\n")
            return 2
        if mode is None:
            mode = await _connect(address, port, wait)
        elif mode == "timeout":
            if wait is None:
                await asyncio.Event().wait()  # the kernel's connect timeout: `timeout` ends it first
            await asyncio.sleep(wait)
        if mode == "pass":
            rc = 0
            if verbose:
                await sh.io.err(f"Connection to {host} {port} port [tcp/*] succeeded!\n")
        elif verbose:
            reason = {"refused": "failed: Connection refused", "unreachable": "failed: No route to host",
                      "timeout": "timed out: Operation now in progress"}[mode]
            await sh.io.err(f"nc: connect to {host} port {port} (tcp) {reason}\n")
    return rc
