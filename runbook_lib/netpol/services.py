"""A Service's backends and the pod port its first port leads to."""

from __future__ import annotations

from .labels import matches_map
from .policy import Port


def backends(service: dict, pods: list[dict]) -> list[dict]:
    """The pods the Service's selector matches."""
    return [p for p in pods if matches_map(service.get("selector"), p.get("labels"))]


def target_port(service: dict, pod: dict) -> Port | None:
    """The pod port the Service's first port leads to (a name is looked up in the pod's ports,
    with the protocol; a number is taken as it is, its name read from the pod when it has one)."""
    ports = service.get("ports") or []
    if not ports:
        return None
    sp = ports[0]
    target = sp.get("target", sp.get("port"))
    protocol = sp.get("protocol", "TCP")
    if isinstance(target, int) or (isinstance(target, str) and target.isdigit()):
        number = int(target)
        name = next((p.get("name") or "" for p in pod.get("ports") or [] if p.get("port") == number), "")
        return Port(number, name, protocol)
    for p in pod.get("ports") or []:
        if p.get("name") == target and p.get("protocol", "TCP") == protocol:
            return Port(p["port"], target, protocol)
    return None
