"""Talos nodes: which ports each role serves, and what a port probe's answer means.

apid (TCP 50000) runs on every Talos node, in maintenance mode too; trustd (TCP 50001) runs on
control-plane nodes only (Talos's network-connectivity docs: control planes accept 50000 and
50001, workers 50000). A worker that refuses 50001 is therefore healthy, and a machine whose
role is not known yet is judged on 50000 alone.

What a TCP connect says about the path (``nc -z -v`` from the provider host):

``ok``           something accepted
``refused``      a RST came back: nothing listens there, or a REJECT rule answered for it
``timeout``      nothing came back: a firewall DROPs the packets, or the host is gone
``unreachable``  an ICMP error (No route to host): a REJECT rule with a host-prohibited answer,
                 or no host answers ARP for the address (a VM that is off)
"""

from __future__ import annotations

from dataclasses import dataclass

from ..outcome import Outcome

APID, TRUSTD = 50000, 50001
PORTS = {APID: "apid", TRUSTD: "trustd"}
SERVES = {"controlplane": (APID, TRUSTD), "worker": (APID,), "": (APID,)}

MEANING = {
    Outcome.REFUSED: "refused: nothing listens, or a REJECT rule answers",
    Outcome.TIMED_OUT: "timed out: a firewall drops the packets",
    Outcome.UNREACHABLE: "no route to host: a REJECT rule (host-prohibited) or nothing at that address",
}


def served(role: str) -> tuple[int, ...]:
    """The Talos ports a node of ``role`` (``controlplane``, ``worker``, "" unknown) listens on."""
    return SERVES.get(role, SERVES[""])


@dataclass
class PortJudgement:
    """One probed node: the ports its role must answer on that did not, and what did answer."""

    role: str
    blocked: dict[int, str]  # port -> outcome, for ports the role serves
    not_served: dict[int, str]  # port -> outcome, for ports the role does not serve (not judged)

    @property
    def reachable(self) -> bool:
        return not self.blocked

    @property
    def nobody_there(self) -> bool:
        """Every port it serves gave "no route to host": no host answers for the address (a VM that is
        off or frozen), or a REJECT rule with a host-prohibited answer. Which of the two, the probe
        alone cannot say; whether Omni still hears from the machine can."""
        return bool(self.blocked) and all(state == Outcome.UNREACHABLE for state in self.blocked.values())

    def describe(self) -> str:
        parts = [f"{port} ({PORTS.get(port, '?')}) {MEANING.get(state, state)}" for port, state in self.blocked.items()]
        parts += [f"{port} ({PORTS.get(port, '?')}) {state}, not served by a {self.role or 'node of unknown role'}"
                  for port, state in self.not_served.items() if state != Outcome.OK]
        return "; ".join(parts) or "every port its role serves answers"


def judge_ports(role: str, ports: dict) -> PortJudgement:
    """Judge ``ports`` (port -> outcome, keys as int or str) for a node of ``role``."""
    outcome = {int(p): str(s) for p, s in ports.items()}
    want = served(role)
    blocked = {p: s for p, s in sorted(outcome.items()) if p in want and s != Outcome.OK}
    other = {p: s for p, s in sorted(outcome.items()) if p not in want}
    return PortJudgement(role, blocked, other)
