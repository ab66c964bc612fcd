"""NetworkPolicy evaluation: may one pod open one port on another (see the package's docstring)."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import NamedTuple

from .labels import selects


@dataclass
class Port:
    """A port of the destination pod: its number, its name there ("" when unnamed), its protocol."""

    number: int
    name: str
    protocol: str = "TCP"

    def __str__(self) -> str:
        return f"{self.number}" + (f" ({self.name}/{self.protocol})" if self.name else f"/{self.protocol}")


class Verdict(NamedTuple):
    """Whether a connection is allowed; when not, why (one reason per direction) and the policies
    that isolate the pod for that direction without allowing it."""

    allowed: bool
    reasons: list[str]
    denying: list[str]


def policy_types(policy: dict) -> list[str]:
    """``policyTypes``, defaulted as the API does: Ingress, plus Egress when egress rules exist."""
    if policy.get("types"):
        return list(policy["types"])
    return ["Ingress"] + (["Egress"] if policy.get("egress") else [])


def peer_matches(peer: dict, pod: dict, namespace_labels: dict) -> bool:
    """One ``from``/``to`` entry against a pod of the namespace whose labels are ``namespace_labels``."""
    if "ipBlock" in peer and peer["ipBlock"]:
        block = peer["ipBlock"]
        try:
            ip = ipaddress.ip_address(pod.get("ip") or "")
        except ValueError:
            return False
        if ip not in ipaddress.ip_network(block.get("cidr", "0.0.0.0/0"), strict=False):
            return False
        return not any(ip in ipaddress.ip_network(x, strict=False) for x in block.get("except") or [])
    if "namespaceSelector" in peer and peer["namespaceSelector"] is not None:
        if not selects(peer["namespaceSelector"], namespace_labels):
            return False
        return selects(peer.get("podSelector"), pod.get("labels"))
    # a podSelector alone selects pods in the policy's own namespace (every pod here is)
    return selects(peer.get("podSelector"), pod.get("labels"))


def port_matches(rule_ports: list[dict] | None, port: Port) -> bool:
    """A rule's ``ports`` against the destination port (no ports: every port)."""
    if not rule_ports:
        return True
    for p in rule_ports:
        if p.get("protocol", "TCP") != port.protocol:
            continue
        want = p.get("port")
        if want is None:
            return True
        if isinstance(want, int) or (isinstance(want, str) and want.isdigit()):
            low = int(want)
            if low <= port.number <= int(p.get("endPort") or low):
                return True
        elif want == port.name:
            return True
    return False


def rule_allows(rules: list[dict] | None, peer_key: str, other: dict, port: Port, namespace_labels: dict) -> bool:
    """Whether any of ``rules`` (a policy's ``ingress`` with ``from``, or ``egress`` with ``to``)
    allows the pod at the other end on ``port``."""
    for rule in rules or []:
        peers = rule.get(peer_key)
        if peers and not any(peer_matches(peer, other, namespace_labels) for peer in peers):
            continue
        if port_matches(rule.get("ports"), port):
            return True
    return False


def denied_by(policies: list[dict], direction: str, pod: dict, other: dict, port: Port,
              namespace_labels: dict) -> list[str]:
    """The policies that isolate ``pod`` for ``direction`` (``Ingress``: ``other`` connects to it;
    ``Egress``: it connects to ``other``) when none of them allows the connection; ``[]`` when the
    direction is open (no policy isolates the pod, or one allows it)."""
    rules, peer_key = ("ingress", "from") if direction == "Ingress" else ("egress", "to")
    isolating = [p for p in policies
                 if direction in policy_types(p) and selects(p.get("pod_selector"), pod.get("labels"))]
    if any(rule_allows(p.get(rules), peer_key, other, port, namespace_labels) for p in isolating):
        return []
    return [p["name"] for p in isolating]


def connection_verdict(src: dict, dst: dict, port: Port, policies: list[dict], namespace_labels: dict) -> Verdict:
    """Whether ``src`` may open ``port`` on ``dst``: the destination's ingress and the source's
    egress must both be open.

    Policies are additive: a direction is open when no policy selects the pod for it, or when any
    of those that do has a rule allowing the peer and port.
    """
    reasons: list[str] = []
    denying: list[str] = []
    for direction, pod, other, side in (("Ingress", dst, src, "ingress to"), ("Egress", src, dst, "egress from")):
        names = denied_by(policies, direction, pod, other, port, namespace_labels)
        if names:
            denying += names
            reasons.append(f"{side} {pod['name']} is limited by {', '.join(names)}, and none allows "
                           f"{other['name']} on port {port}")
    return Verdict(not reasons, reasons, denying)
