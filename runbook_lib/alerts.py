"""The scheduled check (``runbook check``) and what an alerting stack reads from it.

:func:`run_check` runs the health runbook headless and writes, when asked, the two files below,
also when the run could not even start (an unreadable site file must page someone too).

**JUnit XML** (:func:`write_junit`): one ``<testsuite>`` per run, one ``<testcase>`` per finding
(``classname`` ``runbook.<runbook>``, ``name`` the finding id). A ``problem`` is a ``<failure>``,
an ``unknown`` an ``<error>`` (``type`` is the status), a ``skipped`` finding ``<skipped>``; the
text holds the evidence and the fix. A root cause's message starts ``root cause N:`` (1 is the one
to fix first), a knock-on's ``explained by <id>:``. A run that failed as a whole adds a ``<runbook>.run`` case
with an ``<error>``. Written with junitparser.

**Prometheus** (:func:`write_prometheus`), for node_exporter's textfile collector, written
atomically by prometheus_client's ``write_to_textfile``::

    runbook_finding{runbook,site,id}                  0 ok/skipped, 1 unknown, 2 problem (one per finding)
    runbook_findings{runbook,site,status}             how many findings have each status (all four, always)
    runbook_root_cause{runbook,site,id}               one per finding: its place in fix order (1 first), else 0
    runbook_last_run_timestamp_seconds{runbook,site}  when the run finished (alert when it gets old)
    runbook_last_run_duration_seconds{runbook,site}   how long it took (measured, not from the whole-second stamps)
    runbook_last_run_exit_code{runbook,site}          0 ok, 1 unknown, 2 problem, 3 the run failed
    runbook_last_run_writes{runbook,site}             calls that changed a system (a guarded fix applied)

A finding's status is its series' value, never a label: a status that changes must not start a
new series (the old one would linger as stale, and ``for:`` clauses would restart).
"""

from __future__ import annotations

import os
import socket
import tempfile
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from .verdict import EXIT_OK, EXIT_PROBLEM, EXIT_RUN_FAILED, EXIT_UNKNOWN, STATUSES, Verdict

SEVERITY = {"ok": 0, "skipped": 0, "unknown": 1, "problem": 2}
_RESULT_TAG = {"problem": "failure", "unknown": "error", "skipped": "skipped"}


@dataclass
class Case:
    """One JUnit test case: a finding, or the run's own failure."""

    name: str
    classname: str
    result: str | None  # "failure", "error", "skipped" or None (passed)
    message: str = ""
    text: str = ""
    kind: str = ""  # the element's `type`: the finding's status, or "run_failed"


def _seconds(start: str, end: str) -> float:
    try:
        a = datetime.fromisoformat(start.replace("Z", "+00:00"))
        b = datetime.fromisoformat(end.replace("Z", "+00:00"))
    except (AttributeError, ValueError):
        return 0.0
    return max(0.0, (b - a).total_seconds())


def duration(verdict: Verdict) -> float:
    """How long the run took: measured by the runner (``provenance.seconds``), else from the
    verdict's start to its end (whole seconds; 0 when either is missing)."""
    measured = (verdict.provenance or {}).get("seconds")
    if isinstance(measured, (int, float)) and not isinstance(measured, bool):
        return float(measured)
    return _seconds(verdict.started, verdict.finished)


def cases(verdict: Verdict) -> list[Case]:
    """The verdict as JUnit cases, most severe first."""
    classname = f"runbook.{verdict.runbook}"
    out = []
    if verdict.error:
        out.append(Case(f"{verdict.runbook}.run", classname, "error", "the run itself failed", verdict.error,
                        "run_failed"))
    for f in verdict.sorted_findings():
        text = "\n".join(f.evidence + ([f"fix: {f.fix}"] if f.status == "problem" and f.fix else []))
        out.append(Case(f.id, classname, _RESULT_TAG.get(f.status), _cause_prefix(verdict, f) + f.summary, text,
                        f.status))
    return out


def _cause_prefix(verdict: Verdict, finding) -> str:
    if finding.id in verdict.root_causes:
        return f"root cause {verdict.root_causes.index(finding.id) + 1}: "
    return f"explained by {finding.explained_by[0]}: " if finding.explained_by else ""


def write_junit(verdict: Verdict, path: str | os.PathLike) -> Path:
    """Write the verdict as a JUnit XML file (atomically); returns the path."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    os.close(fd)
    try:
        _write_junit(verdict, tmp)
        os.chmod(tmp, 0o644)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target


def _suite_name(verdict: Verdict) -> str:
    return f"{verdict.runbook} ({verdict.site})" if verdict.site else verdict.runbook


def _write_junit(verdict: Verdict, path: str) -> None:
    from junitparser import Error, Failure, JUnitXml, Skipped, TestCase, TestSuite

    kinds = {"failure": Failure, "error": Error, "skipped": Skipped}
    suite = TestSuite(_suite_name(verdict))
    suite.timestamp = verdict.started
    suite.hostname = socket.gethostname()
    for c in cases(verdict):
        case = TestCase(c.name, c.classname, 0.0)
        if c.result:
            result = kinds[c.result](c.message, c.kind if c.result != "skipped" else None)
            result.text = c.text or None
            case.result = [result]
        suite.add_testcase(case)
    xml = JUnitXml()
    xml.add_testsuite(suite)
    xml.update_statistics()  # counts the cases of the suite too; the run's duration is set after
    suite.time = xml.time = duration(verdict)
    xml.write(path, pretty=True)


def write_prometheus(verdict: Verdict, path: str | os.PathLike, exit_code: int | None = None) -> Path:
    """Write the verdict's gauges for the textfile collector (atomically); returns the path.

    The file name must end in ``.prom`` for node_exporter to read it.
    """
    from prometheus_client import CollectorRegistry, Gauge, write_to_textfile

    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    registry = CollectorRegistry()
    run = {"runbook": verdict.runbook, "site": verdict.site}
    finding = Gauge("runbook_finding", "Status of one finding: 0 ok or skipped, 1 unknown, 2 problem",
                    ["runbook", "site", "id"], registry=registry)
    for f in verdict.sorted_findings():
        finding.labels(**run, id=f.id).set(SEVERITY[f.status])
    totals = Gauge("runbook_findings", "Number of findings with each status", ["runbook", "site", "status"],
                   registry=registry)
    for status in STATUSES:
        totals.labels(**run, status=status).set(sum(f.status == status for f in verdict.findings))
    roots = Gauge("runbook_root_cause", "Place of a finding among the run's root causes in fix order "
                  "(1 fix first); 0 when it is not a root cause", ["runbook", "site", "id"], registry=registry)
    for f in verdict.sorted_findings():
        roots.labels(**run, id=f.id).set(verdict.root_causes.index(f.id) + 1 if f.id in verdict.root_causes else 0)
    finished = verdict.finished or verdict.started
    stamp = Gauge("runbook_last_run_timestamp_seconds", "When the last run finished (Unix time)",
                  ["runbook", "site"], registry=registry)
    try:
        stamp.labels(**run).set(datetime.fromisoformat(finished.replace("Z", "+00:00")).timestamp())
    except (AttributeError, ValueError):
        stamp.labels(**run).set(0)
    Gauge("runbook_last_run_duration_seconds", "How long the last run took", ["runbook", "site"],
          registry=registry).labels(**run).set(duration(verdict))
    Gauge("runbook_last_run_writes", "Calls of the last run that changed a system (a guarded fix applied)",
          ["runbook", "site"], registry=registry).labels(**run).set(len(verdict.writes))
    Gauge("runbook_last_run_exit_code", "Exit status of the last run: 0 ok, 1 unknown, 2 problem, 3 run failed",
          ["runbook", "site"], registry=registry).labels(**run).set(
        verdict.exit_code() if exit_code is None else exit_code)
    write_to_textfile(str(target), registry)
    return target


def run_check(site_file: str | os.PathLike, *, outputs_dir: str | os.PathLike | None = None,
              parameters: dict | None = None, timeout: float | None = None, junit: str | os.PathLike | None = None,
              prometheus: str | os.PathLike | None = None, session=None) -> tuple[Verdict, int]:
    """Run every health check and write the alert files; returns the verdict and the exit status."""
    from .errors import RunbookError
    from .runner import run_runbook

    try:
        result = run_runbook("health", site_file=site_file, parameters=parameters, outputs_dir=outputs_dir,
                             timeout=timeout, session=session)
        verdict, code = result.verdict, result.exit_code
    except RunbookError as exc:
        verdict, code = failed_check(str(exc)), EXIT_RUN_FAILED
    write_alerts(verdict, code, junit=junit, prometheus=prometheus)
    return verdict, code


def failed_check(error: str) -> Verdict:
    """The verdict of a check that could not run at all (no findings, the reason as its error)."""
    from .record import iso

    now = iso()
    return Verdict(runbook="health", findings=[], started=now, finished=now, error=error)


def write_alerts(verdict: Verdict, exit_code: int, *, junit: str | os.PathLike | None = None,
                 prometheus: str | os.PathLike | None = None) -> None:
    """Write whichever of the two alert files is asked for."""
    if junit:
        write_junit(verdict, junit)
    if prometheus:
        write_prometheus(verdict, prometheus, exit_code=exit_code)


def summary_line(verdict: Verdict, exit_code: int, record: str | None = None) -> str:
    """``health PROBLEM: 2 problem, 5 ok: health.provider_running, ... (run ID, record PATH)``

    ``record`` is the path to show (default: the verdict's own, relative to the outputs folder's
    parent). A run that wrote to a system starts with ``CHANGED: ...``.
    """
    word = {EXIT_OK: "OK", EXIT_UNKNOWN: "UNKNOWN", EXIT_PROBLEM: "PROBLEM"}.get(exit_code, "FAILED")
    counts = ", ".join(f"{n} {s}" for s in STATUSES if (n := sum(f.status == s for f in verdict.findings)))
    failing = [f.id for f in verdict.sorted_findings() if f.status in ("problem", "unknown")]
    line = f"{verdict.runbook} {word}: {counts or 'no findings'}"
    if failing:
        line += ": " + ", ".join(failing)
    if verdict.error:
        line += f": run failed: {verdict.error}"
    where = f"run {verdict.run_id}" if verdict.run_id else "no run"
    record = verdict.record if record is None else record
    if record:
        where += f", record {record}"
    changed = verdict.changed_line()
    return (f"{changed}\n" if changed else "") + f"{line} ({where})"
