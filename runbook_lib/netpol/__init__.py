"""Whether one pod may open a port on another, as Kubernetes decides it: label selectors, a
Service's backends and target port, and NetworkPolicies.

Used by the ArgoCD runbook to judge the connections Argo CD's components need. Kept apart from the
runbook and tested on its own (``tests/test_netpol.py``), like :mod:`runbook_lib.cel`; it imports
nothing of the project.

Why our own: the maintained Python tools that read NetworkPolicies either analyze a whole cluster's
connectivity from manifests (np-guard's network-config-analyzer: a command line and REST tool with
its own resource loading, not a function over a pod pair that names the denying policy) or do not
follow the API's semantics (kube-netpol's simulator ignores ``matchExpressions`` and namespace
labels). What is needed here is small: one connection, the policies that decide it, and why.

The objects are plain dicts, as :mod:`runbook_lib.gather.argocd` reduces them:

pod             ``name``, ``labels``, ``ip``, ``ports`` (``[{name, port, protocol}]``)
Service         ``name``, ``selector`` (the plain map), ``ports`` (``[{name, port, target, protocol}]``)
NetworkPolicy   ``name``, ``pod_selector`` (spec.podSelector), ``types`` (spec.policyTypes, may be
                empty), ``ingress``, ``egress`` (the rules as the API has them: ``from``/``to`` peers,
                ``ports`` with ``protocol``, ``port`` and ``endPort``)

Scope: the pods and policies of one namespace, whose labels are given (what the runbook reads is
Argo CD's own namespace). The semantics, from the API reference (NetworkPolicySpec,
NetworkPolicyPeer, NetworkPolicyPort, LabelSelector) and the Network Policies concept page:

* a pod is isolated for a direction only when some policy selects it for that direction; policies
  add up: the connection is allowed when any rule of any of them allows it (:func:`connection_verdict`);
  a connection needs both the source's egress and the destination's ingress;
* ``policyTypes`` not given: Ingress always, Egress when the policy has egress rules (:func:`policy_types`);
* a policy with a type and no rules for it allows nothing in that direction; a rule whose
  ``from``/``to`` is missing or empty matches every peer, one whose ``ports`` is missing or empty
  every port;
* a peer's ``podSelector`` alone selects pods in the policy's namespace; with a ``namespaceSelector``
  the pods it selects in the namespaces that one selects; a ``namespaceSelector`` alone every pod of
  those namespaces; an empty selector (``{}``) selects everything;
* ``ipBlock`` (``cidr`` minus ``except``) is matched against the peer pod's IP. The API leaves open
  whether a plugin applies it to pod IPs at all ("these should be cluster-external IPs"); most do,
  so a policy that names the pods' range is read as allowing them;
* a port is matched with its protocol (TCP when not given): no ``port`` matches every port of the
  protocol, a number matches it or the range up to ``endPort``, a name matches the destination
  pod's port of that name;
* a label selector's ``matchLabels`` and ``matchExpressions`` are ANDed; ``In``, ``NotIn``
  (true for a pod without the key), ``Exists``, ``DoesNotExist``.

Not modelled: traffic from the pod's own node (always allowed), a pod reaching itself, and
policies of other namespaces.
"""

from __future__ import annotations

from .labels import matches_map, selects, show_labels
from .policy import (
    Port,
    Verdict,
    connection_verdict,
    denied_by,
    peer_matches,
    policy_types,
    port_matches,
    rule_allows,
)
from .services import backends, target_port

__all__ = ["Port", "Verdict", "backends", "connection_verdict", "denied_by", "matches_map", "peer_matches",
           "policy_types", "port_matches", "rule_allows", "selects", "show_labels", "target_port"]
