"""Kubernetes' rules for whether one pod may open a port on another (runbook_lib.netpol), table by table.

Each table cites the rule it holds, from the API reference (LabelSelector, NetworkPolicySpec,
NetworkPolicyPeer, NetworkPolicyPort) and the Network Policies concept page. The pods below are in
one namespace, labelled ``team=a``; the connection judged is ``client`` -> ``server`` on the
server's port 8081 named ``grpc`` unless a row says otherwise.
"""

from __future__ import annotations

import pytest

from runbook_lib.netpol import (
    Port,
    backends,
    connection_verdict,
    denied_by,
    matches_map,
    peer_matches,
    policy_types,
    port_matches,
    selects,
    show_labels,
    target_port,
)

NS = {"kubernetes.io/metadata.name": "argocd", "team": "a"}
CLIENT = {"name": "client", "labels": {"app": "client", "tier": "web"}, "ip": "10.244.1.5"}
SERVER = {"name": "server", "labels": {"app": "server"}, "ip": "10.244.1.9",
          "ports": [{"name": "grpc", "port": 8081, "protocol": "TCP"}, {"name": "dns", "port": 53, "protocol": "UDP"}]}
GRPC = Port(8081, "grpc")

# --- label selectors: matchLabels and matchExpressions are ANDed; {} selects everything ------------------
LABELS = {"app": "server", "tier": "db"}
SELECTORS = [
    ({}, True),  # an empty selector matches all objects
    ({"matchLabels": {}}, True),
    ({"matchLabels": {"app": "server"}}, True),
    ({"matchLabels": {"app": "server", "tier": "db"}}, True),
    ({"matchLabels": {"app": "server", "tier": "web"}}, False),  # every pair must hold
    ({"matchLabels": {"zone": "x"}}, False),  # a missing key is no match
    ({"matchExpressions": [{"key": "tier", "operator": "In", "values": ["db", "cache"]}]}, True),
    ({"matchExpressions": [{"key": "tier", "operator": "In", "values": ["web"]}]}, False),
    ({"matchExpressions": [{"key": "zone", "operator": "In", "values": ["x"]}]}, False),
    ({"matchExpressions": [{"key": "tier", "operator": "NotIn", "values": ["web"]}]}, True),
    ({"matchExpressions": [{"key": "tier", "operator": "NotIn", "values": ["db"]}]}, False),
    ({"matchExpressions": [{"key": "zone", "operator": "NotIn", "values": ["x"]}]}, True),  # no key: NotIn holds
    ({"matchExpressions": [{"key": "tier", "operator": "Exists"}]}, True),
    ({"matchExpressions": [{"key": "zone", "operator": "Exists"}]}, False),
    ({"matchExpressions": [{"key": "zone", "operator": "DoesNotExist"}]}, True),
    ({"matchExpressions": [{"key": "tier", "operator": "DoesNotExist"}]}, False),
    ({"matchLabels": {"app": "server"}, "matchExpressions": [{"key": "zone", "operator": "Exists"}]}, False),
    ({"matchLabels": {"app": "server"}, "matchExpressions": [{"key": "tier", "operator": "In", "values": ["db"]},
                                                             {"key": "zone", "operator": "DoesNotExist"}]}, True),
]


@pytest.mark.parametrize("selector,expected", SELECTORS, ids=[str(s) for s, _ in SELECTORS])
def test_label_selector(selector, expected):
    assert selects(selector, LABELS) is expected


def test_an_absent_selector_selects_everything_and_labels_may_be_absent():
    assert selects(None, LABELS) and selects(None, None) and selects({}, None)
    assert not selects({"matchLabels": {"app": "server"}}, None)


def test_a_service_selector_is_a_plain_map_and_an_empty_one_selects_nothing():
    assert matches_map({"app": "server"}, LABELS) and matches_map({"app": "server", "tier": "db"}, LABELS)
    assert not matches_map({"app": "server", "tier": "web"}, LABELS)
    assert not matches_map({}, LABELS) and not matches_map(None, LABELS)


def test_labels_are_shown_as_kubectl_shows_them():
    assert show_labels({"b": "2", "a": "1"}) == "a=1,b=2"
    assert show_labels({}) == show_labels(None) == "(none)"


# --- policyTypes: not given, Ingress always and Egress when the policy has egress rules -----------------
TYPES = [
    ({}, ["Ingress"]),
    ({"types": [], "ingress": [{}]}, ["Ingress"]),
    ({"types": [], "egress": [{"to": []}]}, ["Ingress", "Egress"]),
    ({"types": [], "egress": []}, ["Ingress"]),  # no egress rules: an egress-only default deny needs the type
    ({"types": ["Egress"]}, ["Egress"]),
    ({"types": ["Ingress", "Egress"], "egress": None}, ["Ingress", "Egress"]),
]


@pytest.mark.parametrize("policy,expected", TYPES)
def test_policy_types_default_as_the_api_does(policy, expected):
    assert policy_types(policy) == expected


# --- peers: podSelector (own namespace), namespaceSelector, both in one entry, ipBlock -------------------
PEERS = [
    ({"podSelector": {"matchLabels": {"app": "client"}}}, True),
    ({"podSelector": {"matchLabels": {"app": "other"}}}, False),
    ({"podSelector": {}}, True),  # every pod of the policy's namespace
    ({"namespaceSelector": {}}, True),  # every pod of every namespace
    ({"namespaceSelector": {"matchLabels": {"team": "a"}}}, True),
    ({"namespaceSelector": {"matchLabels": {"team": "b"}}}, False),
    ({"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "argocd"}}}, True),
    # both in one entry: the pods podSelector picks in the namespaces namespaceSelector picks (AND)
    ({"namespaceSelector": {"matchLabels": {"team": "a"}}, "podSelector": {"matchLabels": {"app": "client"}}}, True),
    ({"namespaceSelector": {"matchLabels": {"team": "a"}}, "podSelector": {"matchLabels": {"app": "other"}}}, False),
    ({"namespaceSelector": {"matchLabels": {"team": "b"}}, "podSelector": {"matchLabels": {"app": "client"}}}, False),
    ({"namespaceSelector": {}, "podSelector": {"matchExpressions": [{"key": "tier", "operator": "In",
                                                                      "values": ["web"]}]}}, True),
    # ipBlock: the cidr minus its except ranges, against the pod's IP (see the package docstring)
    ({"ipBlock": {"cidr": "10.244.0.0/16"}}, True),
    ({"ipBlock": {"cidr": "10.244.1.5/32"}}, True),
    ({"ipBlock": {"cidr": "192.168.0.0/16"}}, False),
    ({"ipBlock": {"cidr": "10.244.0.0/16", "except": ["10.244.1.0/24"]}}, False),
    ({"ipBlock": {"cidr": "10.244.0.0/16", "except": ["10.244.2.0/24"]}}, True),
    ({"ipBlock": {"cidr": "fd00::/8"}}, False),  # another family never matches
]


@pytest.mark.parametrize("peer,expected", PEERS, ids=[str(p) for p, _ in PEERS])
def test_peer(peer, expected):
    assert peer_matches(peer, CLIENT, NS) is expected


def test_an_ip_block_never_matches_a_pod_without_an_ip():
    assert not peer_matches({"ipBlock": {"cidr": "0.0.0.0/0"}}, dict(CLIENT, ip=None), NS)


# --- ports: the protocol (TCP when not given) and a number, a range up to endPort, or a name -----------
PORTS = [
    (None, GRPC, True),  # no ports: every port
    ([], GRPC, True),
    ([{"protocol": "TCP"}], GRPC, True),  # no port: every port of the protocol
    ([{"protocol": "UDP"}], GRPC, False),
    ([{"port": 8081}], GRPC, True),  # protocol defaults to TCP
    ([{"port": 8081, "protocol": "UDP"}], GRPC, False),
    ([{"port": "8081"}], GRPC, True),  # a number written as a string
    ([{"port": 8080}], GRPC, False),
    ([{"port": 8000, "endPort": 8100}], GRPC, True),  # the range is inclusive
    ([{"port": 8000, "endPort": 8081}], GRPC, True),
    ([{"port": 8082, "endPort": 9000}], GRPC, False),
    ([{"port": 8000, "endPort": 8080}], GRPC, False),
    ([{"port": "grpc"}], GRPC, True),  # a name: the destination pod's port of that name
    ([{"port": "metrics"}], GRPC, False),
    ([{"port": "grpc"}], Port(8081, ""), False),  # the pod gives the port no name
    ([{"port": "dns", "protocol": "UDP"}], Port(53, "dns", "UDP"), True),
    ([{"port": "dns"}], Port(53, "dns", "UDP"), False),  # named, but TCP by default
    ([{"port": 9000}, {"port": "grpc"}], GRPC, True),  # any entry of the list
    ([{"port": 53, "protocol": "UDP"}, {"port": 8081, "protocol": "SCTP"}], GRPC, False),
]


@pytest.mark.parametrize("rule_ports,port,expected", PORTS, ids=[f"{r}-{p}" for r, p, _ in PORTS])
def test_port(rule_ports, port, expected):
    assert port_matches(rule_ports, port) is expected


# --- policies: isolation per direction, additive rules, empty from/to, both ends must allow ------------
SERVER_ONLY = {"matchLabels": {"app": "server"}}
CLIENT_ONLY = {"matchLabels": {"app": "client"}}
FROM_CLIENT = [{"podSelector": CLIENT_ONLY}]


def policy(name: str, pod_selector: dict, types: list[str] | None = None, ingress=None, egress=None) -> dict:
    return {"name": name, "labels": {}, "pod_selector": pod_selector, "types": types or [],
            "ingress": ingress, "egress": egress}


POLICIES = [
    # (policies, allowed, denying)
    ([], True, []),  # no policy: nothing is isolated
    ([policy("other", {"matchLabels": {"app": "db"}}, ["Ingress"], [])], True, []),  # selects neither pod
    ([policy("deny", SERVER_ONLY, ["Ingress"], [])], False, ["deny"]),  # a type and no rules: nothing in
    ([policy("deny", SERVER_ONLY, ["Ingress"], None)], False, ["deny"]),
    ([policy("deny", {}, [], None)], False, ["deny"]),  # policyTypes defaulted to Ingress
    ([policy("all-in", SERVER_ONLY, ["Ingress"], [{}])], True, []),  # an empty rule: every peer, every port
    ([policy("all-in", SERVER_ONLY, ["Ingress"], [{"from": []}])], True, []),  # empty from: every source
    ([policy("in", SERVER_ONLY, ["Ingress"], [{"from": FROM_CLIENT, "ports": [{"port": "grpc"}]}])], True, []),
    ([policy("in", SERVER_ONLY, ["Ingress"], [{"from": FROM_CLIENT, "ports": [{"port": 9090}]}])], False, ["in"]),
    ([policy("in", SERVER_ONLY, ["Ingress"], [{"from": [{"podSelector": {"matchLabels": {"app": "db"}}}]}])],
     False, ["in"]),
    # one rule must match both its from and its ports; another rule may allow what the first does not
    ([policy("in", SERVER_ONLY, ["Ingress"], [{"from": FROM_CLIENT, "ports": [{"port": 9090}]},
                                              {"ports": [{"port": 8081}]}])], True, []),
    # policies add up: one that allows is enough, whatever the others deny
    ([policy("deny", {}, ["Ingress"], []),
      policy("in", SERVER_ONLY, ["Ingress"], [{"from": FROM_CLIENT}])], True, []),
    # egress: the client's side; an egress-only policy leaves ingress open
    ([policy("deny-out", {}, ["Egress"], None, [])], False, ["deny-out"]),
    ([policy("deny-out", CLIENT_ONLY, ["Egress"], None, None)], False, ["deny-out"]),
    # no policyTypes and egress rules: Ingress and Egress; having no ingress rules, it closes ingress too
    ([policy("dns-only", {}, [], None, [{"ports": [{"port": 53, "protocol": "UDP"}]}])], False,
     ["dns-only", "dns-only"]),
    ([policy("out", CLIENT_ONLY, ["Egress"], None,
             [{"to": [{"podSelector": SERVER_ONLY}], "ports": [{"port": 8081}]}])], True, []),
    ([policy("out", CLIENT_ONLY, ["Egress"], None, [{"to": []}])], True, []),  # empty to: every destination
    ([policy("out", CLIENT_ONLY, ["Egress"], None, [{"to": [{"ipBlock": {"cidr": "10.244.1.9/32"}}]}])], True, []),
    # both ends must allow: ingress open, egress closed (and the other way round)
    ([policy("in", SERVER_ONLY, ["Ingress"], [{"from": FROM_CLIENT}]),
      policy("deny-out", {}, ["Egress"], None, [])], False, ["deny-out"]),
    # a policy isolating both directions of every pod: the server's ingress and the client's egress
    ([policy("deny-all", {}, ["Ingress", "Egress"], [], [])], False, ["deny-all", "deny-all"]),
]


@pytest.mark.parametrize("policies,allowed,denying", POLICIES, ids=[",".join(p["name"] for p in ps) or "none"
                                                                    for ps, _, _ in POLICIES])
def test_connection(policies, allowed, denying):
    verdict = connection_verdict(CLIENT, SERVER, GRPC, policies, NS)
    assert verdict.allowed is allowed
    assert verdict.denying == denying
    assert len(verdict.reasons) == len(denying)  # one reason per direction that denies


def test_a_denial_says_which_direction_and_port():
    verdict = connection_verdict(CLIENT, SERVER, GRPC, [policy("deny-all", {}, ["Ingress", "Egress"], [], [])], NS)
    allowed, reasons, denying = verdict  # unpacks as (allowed, reasons, denying)
    assert not allowed and denying == ["deny-all", "deny-all"]
    assert reasons == ["ingress to server is limited by deny-all, and none allows client on port 8081 (grpc/TCP)",
                       "egress from client is limited by deny-all, and none allows server on port 8081 (grpc/TCP)"]


def test_each_direction_is_judged_on_its_own():
    out_only = [policy("deny-out", CLIENT_ONLY, ["Egress"], None, [])]
    assert denied_by(out_only, "Ingress", SERVER, CLIENT, GRPC, NS) == []  # nothing isolates the server
    assert denied_by(out_only, "Egress", CLIENT, SERVER, GRPC, NS) == ["deny-out"]
    assert denied_by(out_only, "Egress", SERVER, CLIENT, GRPC, NS) == []  # the policy does not select the server


def test_a_namespace_selector_reads_the_namespace_labels_given():
    rule = [{"from": [{"namespaceSelector": {"matchLabels": {"team": "a"}}}]}]
    pol = [policy("in", SERVER_ONLY, ["Ingress"], rule)]
    assert connection_verdict(CLIENT, SERVER, GRPC, pol, NS).allowed
    assert not connection_verdict(CLIENT, SERVER, GRPC, pol, {"team": "b"}).allowed


# --- Services: backends by selector map, targetPort by number or by the pod's port name ----------------
SERVICE = {"name": "server", "selector": {"app": "server"},
           "ports": [{"name": "main", "port": 80, "target": "grpc", "protocol": "TCP"}]}
TARGETS = [
    ({"target": "grpc"}, Port(8081, "grpc")),
    ({"target": 8081}, Port(8081, "grpc")),  # a number: its name read from the pod
    ({"target": "8081"}, Port(8081, "grpc")),
    ({"target": 9000}, Port(9000, "")),  # a number the pod does not list is still where it leads
    ({"target": "metrics"}, None),  # a name the pod does not have
    ({"target": "dns"}, None),  # the pod's dns port is UDP, the Service's TCP
    ({"target": "dns", "protocol": "UDP"}, Port(53, "dns", "UDP")),
    ({"port": 8081}, Port(8081, "grpc")),  # no targetPort: the port itself
]


@pytest.mark.parametrize("port,expected", TARGETS, ids=[str(p) for p, _ in TARGETS])
def test_target_port(port, expected):
    assert target_port(dict(SERVICE, ports=[port]), SERVER) == expected


def test_a_service_without_ports_leads_nowhere_and_its_backends_are_what_its_selector_matches():
    assert target_port(dict(SERVICE, ports=[]), SERVER) is None
    assert backends(SERVICE, [CLIENT, SERVER]) == [SERVER]
    assert backends(dict(SERVICE, selector={}), [CLIENT, SERVER]) == []


def test_ports_read_as_the_findings_show_them():
    assert str(GRPC) == "8081 (grpc/TCP)" and str(Port(53, "", "UDP")) == "53/UDP"


def test_the_tables_cover_what_the_issue_asks_for():
    assert {op for s, _ in SELECTORS for e in s.get("matchExpressions", []) for op in [e["operator"]]} == {
        "In", "NotIn", "Exists", "DoesNotExist"}
    assert any("ipBlock" in p for p, _ in PEERS) and any("namespaceSelector" in p and "podSelector" in p
                                                          for p, _ in PEERS)
    assert any(any("endPort" in x for x in r or []) for r, _, _ in PORTS)
    assert any(isinstance((r or [{}])[0].get("port"), str) for r, _, _ in PORTS)
