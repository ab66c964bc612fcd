"""Checks: pure functions from :class:`~runbook_lib.evidence.Evidence` to findings.

One module per guide section. Each check is registered under its finding id with :func:`check`
and returns an :class:`Outcome` built by :func:`problem`, :func:`ok`, :func:`unknown` or
:func:`skipped`. :func:`run_checks` runs a section's checks in catalog order; a check whose
evidence is missing becomes ``unknown`` with the reason, and a check that raises becomes
``unknown`` naming the error, so one bad check never hides the others.

What several checks of a section build from the same evidence (the join chain of the
provisioning section, say) is registered with :func:`derive`; a check that needs it takes a
second argument, a :class:`Derived`, and asks it: ``derived(joins)``. :func:`run_checks` gives
every check of a run the same :class:`Derived`, so the value is built once per run, the first
time a check asks, and a failure to build it (missing evidence) is raised again to every check
that asks. Nothing is kept between runs. A check stays a pure function of its arguments:
``fn(Evidence(d))`` or ``fn(Evidence(d), Derived(Evidence(d)))``.
"""

from __future__ import annotations

import importlib
import inspect
from dataclasses import dataclass, field
from typing import Any, Callable

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


DeriveFn = Callable[[Evidence], Any]
_DERIVED: dict[DeriveFn, str] = {}  # what a section's checks share -> the section


def derive(section: str) -> Callable[[DeriveFn], DeriveFn]:
    """Register ``fn(ev)`` as something the checks of ``section`` share: built once per run."""
    if section not in catalog.load().sections:
        raise KeyError(f"{section} is not a section of the cause catalog")

    def register(fn: DeriveFn) -> DeriveFn:
        _DERIVED[fn] = section
        return fn

    return register


class Derived:
    """What the checks of one run share, built the first time a check asks for it."""

    def __init__(self, ev: Evidence):
        self._ev = ev
        self._built: dict[DeriveFn, tuple[bool, Any]] = {}

    def __call__(self, fn: DeriveFn) -> Any:
        if fn not in _DERIVED:
            raise KeyError(f"{fn.__qualname__} is not registered with @derive")
        if fn not in self._built:
            try:
                self._built[fn] = (True, fn(self._ev))
            except Exception as exc:  # raised again to every check that asks, as if each had built it
                self._built[fn] = (False, exc)
        done, value = self._built[fn]
        if not done:
            raise value
        return value


CheckFn = Callable[[Evidence], Outcome] | Callable[[Evidence, Derived], Outcome]


@dataclass(frozen=True)
class Check:
    id: str
    fn: CheckFn
    fix: str  # the default fix, used when a problem outcome gives none
    derived: bool = False  # the check takes the run's Derived as its second argument


_REGISTRY: dict[str, dict[str, Check]] = {}
SECTIONS = catalog.load().sections


def check(finding_id: str, *, fix: str = "") -> Callable[[CheckFn], CheckFn]:
    """Register ``fn`` as the check for ``finding_id``, an id of the cause catalog."""
    if finding_id not in catalog.load():
        raise KeyError(f"{finding_id} is not in the cause catalog (runbook_lib/catalog.yaml)")
    section = catalog.load()[finding_id].section

    def register(fn: CheckFn) -> CheckFn:
        takes = len(inspect.signature(fn).parameters) == 2
        _REGISTRY.setdefault(section, {})[finding_id] = Check(finding_id, fn, fix, takes)
        return fn

    return register


def registered(section: str) -> dict[str, Check]:
    importlib.import_module(f"{__name__}.{section}")
    return dict(_REGISTRY.get(section, {}))


def run_check(c: Check, ev: Evidence, derived: Derived | None = None) -> Finding:
    try:
        out = c.fn(ev, derived or Derived(ev)) if c.derived else c.fn(ev)
    except MissingEvidence as exc:
        out = unknown(f"could not check: {exc.name} unavailable", [exc.reason])
    except Exception as exc:  # a bug in one check must not hide the others
        out = unknown(f"the check itself failed: {type(exc).__name__}", [str(exc)])
    fix = out.fix or (c.fix if out.status == "problem" else "")
    return Finding(c.id, out.status, out.summary, out.evidence, fix)


def run_checks(section: str, ev: Evidence, only: list[str] | None = None) -> list[Finding]:
    """The section's findings, in catalog order; what the checks share is built once (:class:`Derived`)."""
    checks = registered(section)
    derived = Derived(ev)
    return [run_check(checks[fid], ev, derived) for fid in catalog.load().ids(section)
            if fid in checks and (not only or fid in only)]
