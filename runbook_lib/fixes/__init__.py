"""Guarded fixes: the only way a runbook changes a system.

A fix is a :class:`Plan`: the exact :class:`Change` objects it would make, derived from the
evidence of this run. Its :attr:`Plan.id` is a hash of those changes, so the same state gives the
same id in every run, and a different state a different one. The flow a runbook follows:

1. build the plans and **show** them (:meth:`Plan.frame`, :meth:`Plan.text`), with their ids;
2. :func:`run` applies a plan only when the run's ``apply_fix`` parameter equals its id. A headless
   run therefore cannot apply a plan its operator has not seen: the id of a plan whose changes differ
   from the one shown differs too, and an ``apply_fix`` that names no plan of this run changes
   nothing and is reported (:attr:`FixRecord.refused`);
3. every change goes through the caller's ``execute`` (sources record each write with ``write=True``);
   the first failure stops the plan;
4. the findings the plan is meant to clear are **checked again** (polled until they are no longer
   ``problem`` or the wait is over), and the :class:`FixRecord` keeps them before and after.

Default runs (``apply_fix`` empty) make no write call at all.

The plans of a section are built in this package's module of that name (:mod:`.argocd`,
:mod:`.recovery`), from the run's evidence and findings: the checks judge, they build no plan.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import asdict, dataclass, field
from typing import Callable, Iterable

from ..errors import RunbookError, SourceError
from ..verdict import Finding

VERBS = ("patch", "delete", "restart", "post")
PATH = "path"  # a Change whose ``kind`` is this addresses an API path (``name``), e.g. a Proxmox VM's


class FixRefused(RunbookError):
    """``apply_fix`` named a plan this run did not produce: nothing was changed."""


@dataclass(frozen=True)
class Change:
    """One write: ``verb`` on one object of ``target`` (``body`` is the patch for ``patch``)."""

    target: str  # the system, e.g. "kubernetes homelab"
    verb: str  # patch | delete | restart (a pod-template annotation stamped at apply time) | post (an API call)
    kind: str
    name: str
    namespace: str | None = None
    body: dict | None = None  # the patch for patch; the parameters of post, and of delete when it has any
    why: str = ""

    def __post_init__(self):
        if self.verb not in VERBS:
            raise ValueError(f"change verb must be one of {VERBS}, got {self.verb!r}")
        if self.verb == "patch" and not self.body:
            raise ValueError("a patch change needs a body")
        if self.verb == "post" and self.kind != PATH:
            raise ValueError("a post change addresses an API path (kind 'path')")

    @property
    def object(self) -> str:
        if self.kind == PATH:
            return self.name
        return f"{self.kind} {self.namespace + '/' if self.namespace else ''}{self.name}"

    def describe(self) -> str:
        """The change as it will be sent, in one line."""
        if self.verb == "patch":
            return f"PATCH {self.object}: {json.dumps(self.body, sort_keys=True)}"
        if self.verb == "delete":
            return f"DELETE {self.object}" + (f" {json.dumps(self.body, sort_keys=True)}" if self.body else "")
        if self.verb == "post":
            return f"POST {self.object}" + (f" {json.dumps(self.body, sort_keys=True)}" if self.body else "")
        return (f"PATCH {self.object}: spec.template.metadata.annotations"
                '["kubectl.kubernetes.io/restartedAt"] = <time of apply> (kubectl rollout restart)')

    def identity(self) -> dict:
        """What the plan id is computed from (``why`` is prose, not part of the change)."""
        return {"target": self.target, "verb": self.verb, "kind": self.kind, "namespace": self.namespace,
                "name": self.name, "body": self.body}


@dataclass(frozen=True)
class Plan:
    finding: str  # the finding id this plan fixes
    title: str
    changes: tuple[Change, ...]
    recheck: tuple[str, ...]  # finding ids to check again afterwards
    note: str = ""  # what else the operator should know (side effects)

    @property
    def id(self) -> str:
        """``<finding name>-<10 hex>``: stable for the same changes, different for any other."""
        canonical = json.dumps({"finding": self.finding, "changes": [c.identity() for c in self.changes]},
                               sort_keys=True, separators=(",", ":"))
        digest = hashlib.sha256(canonical.encode()).hexdigest()[:10]
        return f"{self.finding.split('.', 1)[-1]}-{digest}"

    def rows(self) -> list[dict]:
        return [{"plan": self.id, "step": i + 1, "change": c.describe(), "why": c.why, "on": c.target}
                for i, c in enumerate(self.changes)]

    def frame(self):
        import pandas as pd

        return pd.DataFrame(self.rows(), columns=["plan", "step", "change", "why", "on"])

    def text(self) -> str:
        lines = [f"plan {self.id}: {self.title} (for {self.finding})"]
        lines += [f"  {r['step']}. {r['change']}" + (f"  # {r['why']}" if r["why"] else "") for r in self.rows()]
        if self.note:
            lines.append(f"  note: {self.note}")
        lines.append(f"  to apply it, run again with: -p apply_fix {self.id}")
        return "\n".join(lines)

    def to_dict(self) -> dict:
        return {"id": self.id, "finding": self.finding, "title": self.title, "note": self.note,
                "recheck": list(self.recheck), "changes": [c.describe() for c in self.changes]}


@dataclass
class Applied:
    """What one change did."""

    change: str  # Change.describe()
    outcome: str  # ok | error | not run
    detail: str = ""
    seconds: float = 0.0


@dataclass
class FixRecord:
    """One run's fix: what was asked, what was applied, and the findings before and after."""

    requested: str  # the apply_fix parameter ("" when none)
    plan: Plan | None = None
    applied: bool = False
    refused: bool = False  # apply_fix named no plan of this run
    reason: str = ""
    steps: list[Applied] = field(default_factory=list)
    before: list[Finding] = field(default_factory=list)
    after: list[Finding] = field(default_factory=list)
    rechecks: int = 0  # how many times the findings were checked again

    def frame(self):
        """Before / after, one row per re-checked finding."""
        import pandas as pd

        after = {f.id: f for f in self.after}
        rows = [{"finding": b.id, "before": b.status, "after": after[b.id].status if b.id in after else "-",
                 "now": after[b.id].summary if b.id in after else ""} for b in self.before]
        return pd.DataFrame(rows, columns=["finding", "before", "after", "now"])

    def steps_frame(self):
        import pandas as pd

        return pd.DataFrame([asdict(s) for s in self.steps], columns=["change", "outcome", "detail", "seconds"])

    def findings(self, findings: list[Finding]) -> list[Finding]:
        """The run's findings with the re-checked ones replaced by their state after the fix.

        Each replaced finding carries, first in its evidence, the plan and its state before.
        """
        if not self.applied or self.plan is None:
            return list(findings)
        after = {f.id: f for f in self.after}
        before = {f.id: f for f in self.before}
        out = []
        for f in findings:
            if f.id not in after:
                out.append(f)
                continue
            a = after[f.id]
            ok_steps = sum(s.outcome == "ok" for s in self.steps)
            history = [f"fix plan {self.plan.id} applied ({ok_steps}/{len(self.steps)} change(s) ok); "
                       f"before it: {before[f.id].status}: {before[f.id].summary}"]
            out.append(Finding(a.id, a.status, a.summary, history + a.evidence, a.fix))
        return out

    def to_dict(self) -> dict:
        return {"requested": self.requested, "plan": self.plan.to_dict() if self.plan else None,
                "applied": self.applied, "refused": self.refused, "reason": self.reason,
                "steps": [asdict(s) for s in self.steps],
                "before": [f.to_dict() for f in self.before], "after": [f.to_dict() for f in self.after]}


def offer(findings: list[Finding], plans: Iterable[Plan], command: str = "runbook run SECTION") -> list[Finding]:
    """The findings with, in the fix of each problem a plan addresses, how to apply that plan."""
    by_finding = {p.finding: p for p in plans}
    out = []
    for f in findings:
        plan = by_finding.get(f.id)
        if f.status == "problem" and plan is not None:
            f = Finding(f.id, f.status, f.summary, list(f.evidence),
                        f"{f.fix} Or let the runbook do it: `{command} -p apply_fix {plan.id}` "
                        f"({len(plan.changes)} change(s), shown in the record).".strip())
        out.append(f)
    return out


def select(plans: Iterable[Plan], requested: str) -> Plan | None:
    """The plan ``requested`` names; ``None`` when nothing was asked; :class:`FixRefused` otherwise."""
    requested = (requested or "").strip()
    if not requested:
        return None
    plans = list(plans)
    for plan in plans:
        if plan.id == requested:
            return plan
    offered = ", ".join(p.id for p in plans) or "none (no problem this run can fix)"
    raise FixRefused(f"apply_fix={requested} names no plan of this run; this run's plans: {offered}. "
                     "Nothing was changed: the state may differ from the run that showed that plan.")


def run(plans: Iterable[Plan], requested: str, *, execute: Callable[[Change], str],
        recheck: Callable[[tuple[str, ...]], list[Finding]], findings: list[Finding],
        wait: float = 120.0, interval: float = 3.0) -> FixRecord:
    """Apply the plan ``requested`` names (if any), then check its findings again.

    ``execute`` makes one change and returns a short detail (it raises a ``SourceError`` on
    failure); ``recheck`` gathers afresh and returns the findings for the ids given. The findings
    are polled every ``interval`` seconds until none is ``problem`` or ``wait`` seconds passed.
    """
    record = FixRecord(requested=(requested or "").strip())
    try:
        plan = select(plans, requested)
    except FixRefused as exc:
        record.refused = True
        record.reason = str(exc)
        return record
    if plan is None:
        record.reason = "no fix requested (apply_fix is empty): nothing was changed"
        return record
    record.plan = plan
    record.before = [f for f in findings if f.id in plan.recheck]
    failed = False
    for change in plan.changes:
        if failed:
            record.steps.append(Applied(change.describe(), "not run", "an earlier change failed"))
            continue
        start = time.monotonic()
        try:
            detail = execute(change)
            record.steps.append(Applied(change.describe(), "ok", detail or "", round(time.monotonic() - start, 3)))
        except SourceError as exc:
            failed = True
            record.steps.append(Applied(change.describe(), "error", exc.reason, round(time.monotonic() - start, 3)))
    record.applied = any(s.outcome == "ok" for s in record.steps)
    record.reason = "applied" if not failed else "applied in part: a change failed (see the steps)"
    deadline = time.monotonic() + max(0.0, wait)
    while True:
        record.after = recheck(plan.recheck)
        record.rechecks += 1
        if not any(f.status == "problem" for f in record.after) or time.monotonic() >= deadline:
            break
        time.sleep(min(interval, max(0.0, deadline - time.monotonic())))
    return record
