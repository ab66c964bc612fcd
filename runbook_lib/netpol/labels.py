"""Label selectors: a LabelSelector (``matchLabels`` + ``matchExpressions``) and a Service's plain map."""

from __future__ import annotations


def selects(selector: dict | None, labels: dict | None) -> bool:
    """A LabelSelector against labels: ``matchLabels`` and every ``matchExpressions`` term must hold.

    ``{}`` selects everything. ``None`` does too: where this is used (a policy's podSelector, a
    peer's podSelector or namespaceSelector next to the other) an absent selector means "all".
    ``NotIn`` holds for labels without the key, as in ``kubectl get -l 'tier notin (a)'``.
    """
    labels = labels or {}
    selector = selector or {}
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    for expr in selector.get("matchExpressions") or []:
        key, op, values = expr.get("key"), expr.get("operator"), expr.get("values") or []
        if op == "In" and labels.get(key) not in values:
            return False
        if op == "NotIn" and key in labels and labels[key] in values:
            return False
        if op == "Exists" and key not in labels:
            return False
        if op == "DoesNotExist" and key in labels:
            return False
    return True


def matches_map(selector: dict | None, labels: dict | None) -> bool:
    """A Service's plain ``selector`` map against labels: every pair must be there; an empty map
    selects nothing (a Service without a selector has its endpoints managed by hand)."""
    if not selector:
        return False
    return all((labels or {}).get(k) == v for k, v in selector.items())


def show_labels(labels: dict | None) -> str:
    """``a=1,b=2`` (sorted), as ``kubectl get --show-labels`` prints them; ``(none)`` for none."""
    return ",".join(f"{k}={v}" for k, v in sorted((labels or {}).items())) or "(none)"
