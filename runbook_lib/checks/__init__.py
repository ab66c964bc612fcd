"""Checks: pure functions from :class:`~runbook_lib.evidence.Evidence` to findings.

One module per guide section. Each check is registered under its finding id with :func:`check`
and returns an :class:`Outcome` built by :func:`problem`, :func:`ok`, :func:`unknown` or
:func:`skipped`. :func:`run_checks` runs a section's checks in catalog order; a check whose
evidence is missing becomes ``unknown`` with the reason, and a check that raises becomes
``unknown`` naming the error, so one bad check never hides the others.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Callable

from .. import catalog
from ..evidence import Evidence, MissingEvidence
from ..verdict import Finding


@dataclass
class Outcome:
    status: str
    summary: str
    evidence: list[str] = field(default_factory=list)
    fix: str = ""


def problem(summary: str, evidence: list[str] | None = None, fix: str = "") -> Outcome:
    return Outcome("problem", summary, list(evidence or []), fix)


def ok(summary: str, evidence: list[str] | None = None) -> Outcome:
    return Outcome("ok", summary, list(evidence or []))


def unknown(summary: str, evidence: list[str] | None = None) -> Outcome:
    return Outcome("unknown", summary, list(evidence or []))


def skipped(summary: str, evidence: list[str] | None = None) -> Outcome:
    return Outcome("skipped", summary, list(evidence or []))


CheckFn = Callable[[Evidence], Outcome]


@dataclass(frozen=True)
class Check:
    id: str
    fn: CheckFn
    fix: str  # the default fix, used when a problem outcome gives none


_REGISTRY: dict[str, dict[str, Check]] = {}
SECTIONS = catalog.load().sections


def check(finding_id: str, *, fix: str = "") -> Callable[[CheckFn], CheckFn]:
    """Register ``fn`` as the check for ``finding_id``, an id of the cause catalog."""
    if finding_id not in catalog.load():
        raise KeyError(f"{finding_id} is not in the cause catalog (runbook_lib/catalog.yaml)")
    section = catalog.load()[finding_id].section

    def register(fn: CheckFn) -> CheckFn:
        _REGISTRY.setdefault(section, {})[finding_id] = Check(finding_id, fn, fix)
        return fn

    return register


def registered(section: str) -> dict[str, Check]:
    importlib.import_module(f"{__name__}.{section}")
    return dict(_REGISTRY.get(section, {}))


def run_check(c: Check, ev: Evidence) -> Finding:
    try:
        out = c.fn(ev)
    except MissingEvidence as exc:
        out = unknown(f"could not check: {exc.name} unavailable", [exc.reason])
    except Exception as exc:  # a bug in one check must not hide the others
        out = unknown(f"the check itself failed: {type(exc).__name__}", [str(exc)])
    fix = out.fix or (c.fix if out.status == "problem" else "")
    return Finding(c.id, out.status, out.summary, out.evidence, fix)


def run_checks(section: str, ev: Evidence, only: list[str] | None = None) -> list[Finding]:
    """The section's findings, in catalog order."""
    checks = registered(section)
    return [run_check(checks[fid], ev) for fid in catalog.load().ids(section) if fid in checks and (not only or fid in only)]
