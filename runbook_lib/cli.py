"""The ``runbook`` command: a thin layer over :mod:`runbook_lib.runner` and the lab twin.

::

    runbook run SECTION [--site FILE | --lab [SCENARIO]] [-p NAME VALUE]... [--json]
                        [--outputs DIR] [--timeout SECONDS] [--progress | --no-progress]
    runbook check [--site FILE | --lab [SCENARIO]] [--junit FILE] [--prometheus FILE] [...]
                                   the health runbook headless, one summary line (for schedulers)
    runbook triage [--site FILE | --lab [SCENARIO]] [...]
                                   every section at once, as one incident: the cause to fix first
    runbook records list [--runbook R] [--status S] [--since D] [--until D] [--finding ID] [--json]
                         [--kind incident|drill|all | --drills]
    runbook records show RUN | html RUN [-o FILE] | diff RUN [OTHER] | verify [RUN...]
    runbook records rebuild | prune [--days N] [--dry-run]
    runbook records export RUN --scenario FILE
                                   a record as a regression fixture (tests/incidents/)
    runbook replay RUN [--json] | replay --all [--since D] [--json]
                                   today's checks over a record's saved evidence: what changed
    runbook lab up [SCENARIO]      start a twin in the background, print its site file
    runbook lab down               stop it
    runbook lab jupyter [SCENARIO] a twin and JupyterLab on notebooks/; the twin stops with JupyterLab
    runbook lab site               print the running twin's site file (exit 1 when none runs)
    runbook lab scenarios          the shipped scenarios and the findings each expects
    runbook drill start [--section S] [--seed N]
                                   practise: a background twin with a failure drawn at random, not named
    runbook drill answer ID [ID...] the root cause's finding id first: scored, the scenario revealed,
                                   kept as a record of kind drill (exit 0 right, 1 partly, 2 wrong)
    runbook drill status | drill stop
                                   the running drill; end it (its twin stops)

Exit status of ``run``, ``check`` and ``triage`` (design.md's contract): 0 no finding is a
problem, 1 only unknowns, 2 at least one problem, 3 the run itself failed or could not start.
``replay RUN`` exits as ``run`` would for today's verdict; ``replay --all`` exits 2 when a
record's verdict differs today. ``records verify`` exits 2 when a record changed. Mistakes the
user can make (a bad site file, an unknown runbook, scenario or run) print one message on
stderr, no traceback, exit 3.
"""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import os
import shlex
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

from . import interrupts, kernel
from .archive import RUN_STATUSES
from .errors import RunbookError
from .site import SITE_ENV
from .verdict import EXIT_OK, EXIT_PROBLEM, EXIT_RUN_FAILED

DEFAULT_CELL_TIMEOUT = 600.0
_HEALTHY = ""  # `--lab` with no scenario


class UsageError(RunbookError):
    """The command line asks for something that cannot be done."""


# --- parameters -------------------------------------------------------------------------------

def parse_parameters(pairs: list[list[str]] | None) -> dict[str, Any]:
    """``-p NAME VALUE`` pairs as typed: each notebook's parameters cell says what a value must be."""
    return {name: value for name, value in (pairs or [])}


# --- the background twin (`runbook lab ...`): kept by runbook_lab.supervise --------------------

def _lab(module: str):
    """A module of the lab twin's package, or a clear message when the ``lab`` extra is missing."""
    try:
        return importlib.import_module(f"runbook_lab.{module}")
    except ImportError as exc:
        raise UsageError(f"the lab twin needs the 'lab' extra (pip install 'omni-runbooks[lab]'): {exc}")


def lab_dir() -> Path:
    """Where ``runbook lab up`` keeps its twin: ``<RUNBOOK_HOME>/lab``."""
    return kernel.state_dir() / "lab"


def running_twin() -> dict | None:
    """The twin ``runbook lab up`` keeps running, if any (None also when the lab is not installed)."""
    try:
        supervise = _lab("supervise")
    except UsageError:
        return None
    return supervise.running(lab_dir())


def lab_up(scenario: str | None) -> dict:
    return _lab("supervise").up(lab_dir(), scenario)


def lab_down() -> bool:
    return _lab("supervise").down(lab_dir())


# --- commands ---------------------------------------------------------------------------------

def _site_for_run(args) -> Path:
    """--site, else $RUNBOOK_SITE, else the twin `lab up` keeps running, else a clear error."""
    if args.site:
        return Path(args.site)
    if os.environ.get(SITE_ENV):
        return Path(os.environ[SITE_ENV])
    twin = running_twin()
    if twin is not None:
        return Path(twin["site"])
    raise UsageError("no site file: give --site FILE, or --lab [SCENARIO] for the lab twin, "
                     f"or set {SITE_ENV}, or start a twin with `runbook lab up`")


def shown_path(path: str | os.PathLike) -> str:
    """A path as the user standing in the current directory would type it: relative when it is
    below the current directory, else absolute."""
    absolute = Path(path).resolve()
    try:
        return str(absolute.relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(absolute)


def verdict_text(result) -> str:
    """The verdict for the terminal: a run that changed a system says so first, and the record's
    path is shown relative to where the user stands."""
    from dataclasses import replace

    verdict = result.verdict
    if result.paths.get("notebook"):
        verdict = replace(verdict, record=shown_path(result.paths["notebook"]))
    return verdict.text()


def _print_result(result, as_json: bool) -> None:
    print(result.verdict.to_json() if as_json else verdict_text(result), flush=True)


def cmd_run(args) -> int:
    from .runner import prepare, run_runbook

    parameters = parse_parameters(args.param)
    prepare(args.section, parameters)  # a bad parameter is refused before any twin or system is touched
    progress = (sys.stderr.isatty() and not args.json) if args.progress is None else args.progress

    def run(site: Path) -> int:
        result = run_runbook(args.section, site_file=site, parameters=parameters,
                             outputs_dir=args.outputs, progress=progress, timeout=args.timeout)
        _print_result(result, args.json)
        return result.exit_code

    return _with_site(args, run)


def cmd_lab_up(args) -> int:
    twin = lab_up(args.scenario)
    site = twin["site"]
    print(site)
    scenario = twin.get("scenario") or args.scenario or "healthy"
    print(f"lab twin running (pid {twin['pid']}, scenario {scenario})", file=sys.stderr)
    print(f"  run a runbook against it:  runbook run SECTION --site {site}", file=sys.stderr)
    print(f"  or in JupyterLab:          site_file = \"{site}\"", file=sys.stderr)
    print("  stop it:                   runbook lab down", file=sys.stderr)
    return 0


def jupyter_argv(folder: str | os.PathLike, *, as_root: bool) -> list[str]:
    """JupyterLab on ``folder`` from this environment (``--allow-root`` when run as root: JupyterLab
    refuses to start as root without it, in a container for instance)."""
    argv = [str(Path(sys.executable).parent / "jupyter"), "lab", str(folder)]
    return argv + ["--allow-root"] if as_root else argv


def cmd_lab_jupyter(args) -> int:
    """A twin, then JupyterLab on the notebooks with ``RUNBOOK_SITE`` pointing at it; the twin is
    stopped when JupyterLab exits, however it exits (an error, Ctrl-C, SIGTERM, SIGHUP)."""
    twin = lab_up(args.scenario)
    print(f"lab twin running (pid {twin['pid']}); it stops when JupyterLab does", file=sys.stderr)
    try:
        env = dict(os.environ, **{SITE_ENV: twin["site"]})
        proc = subprocess.Popen(jupyter_argv(args.folder, as_root=os.geteuid() == 0), env=env)
        try:
            return proc.wait()
        except KeyboardInterrupt:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=10.0)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            raise
    finally:
        lab_down()
        print("lab twin stopped", file=sys.stderr)


def cmd_lab_down(args) -> int:
    if lab_down():
        print("lab twin stopped", file=sys.stderr)
    else:
        print("no lab twin was running", file=sys.stderr)
    return 0


def cmd_lab_site(args) -> int:
    twin = running_twin()
    if twin is None:
        print("runbook: no lab twin is running (start one with `runbook lab up`)", file=sys.stderr)
        return 1
    print(twin["site"])
    return 0


def cmd_lab_scenarios(args) -> int:
    scenarios = _lab("model")
    list_scenarios, load_scenario = scenarios.list_scenarios, scenarios.load_scenario
    found = list_scenarios()
    if not found:
        print("no scenarios are shipped", file=sys.stderr)
        return 0
    width = max(len(n) for n in found)
    for name in sorted(found):
        scenario = load_scenario(name)
        expect = ", ".join(scenario.get("expect") or []) or "(nothing: healthy)"
        print(f"{name:<{width}}  expects {expect}")
        if scenario.get("summary"):
            print(f"{'':<{width}}  {scenario['summary'].strip().splitlines()[0]}")
    return 0


def _with_site(args, fn):
    """Call ``fn(site_file)`` with the site the options name, starting a lab twin for ``--lab``."""
    if args.lab is None:
        return fn(_site_for_run(args))
    twin = _lab("twin").Twin(args.lab or None)
    try:
        return fn(twin.start())
    finally:
        try:
            twin.stop()
        except Exception as exc:  # report, but never hide the run's own outcome
            print(f"runbook: warning: stopping the lab twin failed: {exc}", file=sys.stderr)


def cmd_check(args) -> int:
    """The health runbook for schedulers: one line, the exit status, alert files written whatever
    else failed (and where they went said on stderr)."""
    from . import alerts
    from .runner import prepare

    parameters = parse_parameters(args.param)

    def check(site_file) -> tuple:
        return alerts.run_check(site_file, outputs_dir=args.outputs, parameters=parameters,
                                timeout=args.timeout, junit=None, prometheus=None)

    try:
        prepare("health", parameters)
        verdict, code = _with_site(args, check)
    except KeyboardInterrupt as exc:  # SIGTERM from a scheduler: say so in the alert files too
        result = getattr(exc, "result", None)
        verdict = (result.verdict if result is not None
                   else alerts.failed_check(f"interrupted by {interrupts.signal_name(exc)}"))
        _write_check_alerts(args, verdict, EXIT_RUN_FAILED)
        raise
    except Exception as exc:  # no site, no twin, a bad parameter, anything: the alert files must say so
        verdict, code = alerts.failed_check(_one_line(exc)), EXIT_RUN_FAILED
    code = _write_check_alerts(args, verdict, code)
    print(verdict.to_json() if args.json else alerts.summary_line(verdict, code,
                                                                     record=_shown_record(verdict, args.outputs)),
          flush=True)
    return code


def _write_check_alerts(args, verdict, code: int) -> int:
    """Write the alert files asked for; say where on stderr. A file that cannot be written makes
    the check fail (exit 3), but never stops the other file or the summary line."""
    from . import alerts

    written = []
    for kind, path in (("junit", args.junit), ("prometheus", args.prometheus)):
        if not path:
            continue
        try:
            alerts.write_alerts(verdict, code, **{kind: path})
            written.append(shown_path(path))
        except Exception as exc:
            print(f"runbook: cannot write the {kind} file {path}: {_one_line(exc)}", file=sys.stderr)
            code = EXIT_RUN_FAILED
    if written:
        print(f"runbook: alert files written: {', '.join(written)}", file=sys.stderr)
    return code


def _shown_record(verdict, outputs: str | None) -> str:
    """The record's notebook relative to the current directory (the verdict keeps it relative to
    the outputs folder's parent)."""
    from . import records

    if not verdict.record:
        return ""
    return shown_path(records.outputs_dir(outputs).parent / verdict.record)


def cmd_triage(args) -> int:
    from .runner import prepare, run_runbook

    parameters = parse_parameters(args.param)
    prepare("triage", parameters)  # a bad parameter is refused before any twin or system is touched
    progress = sys.stderr.isatty() and not args.json

    def triage(site: Path) -> int:
        result = run_runbook("triage", site_file=site, parameters=parameters, outputs_dir=args.outputs,
                             progress=progress, timeout=args.timeout)
        print(result.verdict.to_json() if args.json else verdict_text(result) + "\n" + rerun_hint(args), flush=True)
        return result.exit_code

    return _with_site(args, triage)


def rerun_hint(args) -> str:
    """The command that runs the same triage again, on the same site or the same lab scenario."""
    where = (f" --lab {args.lab}" if args.lab not in (None, _HEALTHY) else " --lab" if args.lab == _HEALTHY
             else f" --site {args.site}" if args.site else "")
    params = "".join(f" -p {name} {shlex.quote(value)}" for name, value in args.param or [])
    return f"  after a fix, run it again: runbook triage{where}{params}"


# --- `runbook records ...`: one function per verb, over runbook_lib.archive ---------------------

def _outputs(args) -> Path:
    from . import records

    return records.outputs_dir(args.outputs)


def cmd_records_list(args) -> int:
    from . import archive

    filters = archive.Filters(runbook=args.runbook, status=args.status, since=args.since, until=args.until,
                              finding=args.finding, site=args.site_name,
                              kind=None if args.kind == "all" else args.kind)
    rows = archive.list_runs(_outputs(args), filters, args.limit)
    if args.json:
        sys.stdout.write("".join(json.dumps(e, separators=(",", ":")) + "\n" for e in rows))
    else:
        out = [f"{'RUN':<22} {'RUNBOOK':<12} {'STARTED':<20} {'STATUS':<8} FAILING"]
        out += [archive.format_row(e) for e in rows]
        sys.stdout.write("\n".join(out) + "\n")
    return EXIT_OK


def cmd_records_show(args) -> int:
    from . import archive

    outputs = _outputs(args)
    print(archive.show(outputs, archive.find(outputs, args.run)))
    return EXIT_OK


def cmd_records_html(args) -> int:
    from . import archive

    outputs = _outputs(args)
    entry = archive.find(outputs, args.run)
    text = archive.html(outputs, entry, args.section)
    target = Path(args.output or f"{entry['run_id']}-{args.section or entry['runbook']}.html")
    target.write_text(text, encoding="utf-8")
    print(target)
    return EXIT_OK


def cmd_records_diff(args) -> int:
    from . import archive

    d = archive.diff(_outputs(args), args.run, args.other)
    print(json.dumps(d.to_dict(), indent=2) if args.json else d.text())
    return EXIT_OK


def cmd_records_verify(args) -> int:
    """Every record (or the runs named) against its checksums, and the index's hash chain; exit 2
    when anything changed."""
    from . import archive

    outputs = _outputs(args)
    entries = [archive.find(outputs, r) for r in args.runs] if args.runs else None
    results = archive.verify_all(outputs, entries)
    bad = {run: v for run, v in results.items() if not v.ok}
    for run, v in bad.items():
        print(f"{run}: " + "; ".join(v.problems))
    breaks = archive.verify_chain(outputs)
    for problem in breaks:
        print(f"index chain: {problem}")
    print(f"{len(results)} record(s) checked, {len(bad)} changed; index chain "
          + (f"broken in {len(breaks)} place(s)" if breaks else "intact"), file=sys.stderr)
    return EXIT_PROBLEM if bad or breaks else EXIT_OK


def cmd_records_rebuild(args) -> int:
    from . import archive, records

    outputs = _outputs(args)
    entries = archive.rebuild(outputs)
    print(f"index rebuilt from {len(entries)} record(s): {records.index_path(outputs)}", file=sys.stderr)
    return EXIT_OK


def cmd_records_prune(args) -> int:
    from . import archive

    days = args.days if args.days is not None else archive.retention_days()
    if days is None:
        raise UsageError(f"give --days N or set {archive.RETENTION_ENV}")
    plan = archive.prune(_outputs(args), days, dry_run=args.dry_run)
    what = "would delete" if args.dry_run else "deleted"
    for e in plan.delete:
        print(f"{what} {e['run_id']} ({e['runbook']}, {e.get('started')})")
    for e in plan.kept_healthy:
        print(f"kept {e['run_id']}: the last healthy {e['runbook']} run", file=sys.stderr)
    return EXIT_OK


def cmd_records_export(args) -> int:
    """A record as a regression fixture the test suite picks up (tests/incidents/)."""
    from . import archive, replay

    outputs = _outputs(args)
    fx = replay.export(outputs, archive.find(outputs, args.run), Path(args.scenario))
    print(args.scenario)
    print(f"expects {', '.join(fx['expect']) or 'no problem'}; fix first {fx['cause'] or '-'}", file=sys.stderr)
    return EXIT_OK


def cmd_replay(args) -> int:
    """Today's checks over a record's saved evidence (``--all``: every record, one line for each
    that differs). Contacts no system."""
    from . import archive, replay

    outputs = _outputs(args)
    if not args.all:
        if not args.run:
            raise UsageError("give a run id (or a unique prefix of one, or 'last'), or --all")
        result = replay.replay_run(outputs, archive.find(outputs, args.run))
        if args.json:
            print(json.dumps(result.to_dict(), indent=2))
        else:
            print(result.verdict.text())
            print("\ncompared with the record: " + ("the same verdict" if result.same else
                  f"{len(result.changes)} change(s)\n" + "\n".join("  " + c.text() for c in result.changes)))
        return result.verdict.exit_code()
    if args.run:
        raise UsageError("give a run id or --all, not both")
    same = differ = unreadable = 0
    for entry, result in replay.replay_all(outputs, args.since):
        if isinstance(result, Exception):
            unreadable += 1
            print(f"{entry.get('run_id')}  not replayed: {result}", file=sys.stderr)
        elif result.same:
            same += 1
        else:
            differ += 1
            print(json.dumps(result.to_dict() | {"verdict": None}) if args.json else result.line())
    print(f"{same + differ + unreadable} record(s): {same} same verdict, {differ} differ, "
          f"{unreadable} not replayed", file=sys.stderr)
    return EXIT_PROBLEM if differ else EXIT_OK


def cmd_drill(args) -> int:
    """``runbook drill ...`` (runbook_lib/drill.py) on the twin ``runbook lab up`` keeps."""
    from . import drill

    return drill.command(args, drill.Lab(_lab, lab_dir()))


# --- the parser -------------------------------------------------------------------------------

class _Parser(argparse.ArgumentParser):
    """argparse exits 2 on a usage error; 2 means "a problem was found" here, so use 3."""

    def error(self, message: str):
        self.print_usage(sys.stderr)
        self.exit(EXIT_RUN_FAILED, f"{self.prog}: error: {message}\n")


def _debug_option(p) -> None:
    p.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                   help="show the Python traceback of a failure (otherwise one line on stderr)")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="runbook", description="Executable runbooks for an Omni + Proxmox + Talos + ArgoCD stack.")
    parser.add_argument("--debug", action="store_true",
                        help="show the Python traceback of a failure (otherwise one line on stderr)")
    verbs = parser.add_subparsers(dest="verb", required=True, metavar="{run,check,triage,records,replay,lab,drill}")

    run = verbs.add_parser(
        "run", help="run one runbook headless, keep the record, print the verdict",
        description="Run one runbook headless, keep the record, print the verdict. Exit status: 0 no "
                    "problem, 1 only unknowns, 2 at least one problem, 3 the run failed.")
    run.add_argument("section", metavar="SECTION", help="the runbook (a notebook in notebooks/)")
    where = run.add_mutually_exclusive_group()
    where.add_argument("--site", metavar="FILE", help=f"the site file (default: ${SITE_ENV}, then "
                                                      "the twin of `runbook lab up`)")
    where.add_argument("--lab", nargs="?", const=_HEALTHY, default=None, metavar="SCENARIO",
                       help="run against a lab twin started for this run (healthy, a shipped "
                            "scenario name, or a scenario file)")
    run.add_argument("-p", "--parameter", dest="param", nargs=2, action="append",
                     metavar=("NAME", "VALUE"), help="a notebook parameter, checked against the type its "
                                                     "parameters cell declares; secrets only as env:NAME / file:PATH")
    run.add_argument("--json", action="store_true", help="print the verdict JSON instead of text")
    run.add_argument("--outputs", metavar="DIR", help="where records go (default: $RUNBOOK_OUTPUTS "
                                                      "or ./outputs)")
    run.add_argument("--timeout", type=float, default=DEFAULT_CELL_TIMEOUT, metavar="SECONDS",
                     help=f"longest any one cell may run (default {DEFAULT_CELL_TIMEOUT:g})")
    run.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                     help="show a progress bar (default: when stderr is a terminal)")
    run.set_defaults(func=cmd_run)
    _debug_option(run)

    def site_options(p) -> None:
        where = p.add_mutually_exclusive_group()
        where.add_argument("--site", metavar="FILE", help=f"the site file (default: ${SITE_ENV}, then "
                                                          "the twin of `runbook lab up`)")
        where.add_argument("--lab", nargs="?", const=_HEALTHY, default=None, metavar="SCENARIO",
                           help="run against a lab twin started for this run")
        p.add_argument("--outputs", metavar="DIR", help="where records go (default: $RUNBOOK_OUTPUTS or ./outputs)")
        p.add_argument("--timeout", type=float, default=DEFAULT_CELL_TIMEOUT, metavar="SECONDS",
                       help=f"longest any one cell may run (default {DEFAULT_CELL_TIMEOUT:g})")
        p.add_argument("--json", action="store_true", help="print the verdict JSON instead of text")
        _debug_option(p)

    check = verbs.add_parser(
        "check", help="run the health runbook headless for a scheduler: one line, exit status, alert files",
        description="Run every health check headless (cron, a systemd timer, a Kubernetes CronJob). Prints one "
                    "summary line; exit status 0 ok, 1 only unknowns, 2 a problem, 3 the run failed. "
                    "Optionally writes JUnit XML and a Prometheus textfile-collector file.")
    site_options(check)
    check.add_argument("-p", "--parameter", dest="param", nargs=2, action="append", metavar=("NAME", "VALUE"),
                       help="a parameter of the health notebook")
    check.add_argument("--junit", metavar="FILE", help="write the findings as JUnit XML")
    check.add_argument("--prometheus", metavar="FILE",
                       help="write gauges for node_exporter's textfile collector (name it *.prom)")
    check.set_defaults(func=cmd_check)

    tri = verbs.add_parser(
        "triage", help="every section at once, as one incident: the cause to fix first, then its knock-ons",
        description="Run every section of the guide at once on one kernel (each read made once and shared), "
                    "and keep it as one incident record whose verdict names the root cause to fix first.")
    site_options(tri)
    tri.add_argument("-p", "--parameter", dest="param", nargs=2, action="append", metavar=("NAME", "VALUE"),
                     help="a parameter of the triage notebook, e.g. -p sections provider,storage")
    tri.set_defaults(func=cmd_triage)

    rec = verbs.add_parser("records", help="the archive of records: list, show, html, diff, verify, rebuild, "
                                           "prune")
    rverbs = rec.add_subparsers(dest="records_verb", required=True,
                                metavar="{list,show,html,diff,verify,rebuild,prune,export}")
    folder = argparse.ArgumentParser(add_help=False)
    folder.add_argument("--outputs", metavar="DIR", help="the records folder (default: $RUNBOOK_OUTPUTS or ./outputs)")

    def rverb(name: str, func, **kw):
        p = rverbs.add_parser(name, parents=[folder], **kw)
        p.set_defaults(func=func)
        return p

    ls = rverb("list", cmd_records_list, help="runs in the index, oldest first")
    ls.add_argument("--runbook", help="only this runbook (incidents holding it included)")
    ls.add_argument("--status", choices=list(RUN_STATUSES.values()), help="only runs that ended so")
    ls.add_argument("--since", metavar="DATE", help="started at or after (YYYY-MM-DD or an ISO time, UTC)")
    ls.add_argument("--until", metavar="DATE", help="started at or before (YYYY-MM-DD or an ISO time, UTC)")
    ls.add_argument("--finding", metavar="ID", help="only runs where this finding was problem or unknown")
    ls.add_argument("--site", dest="site_name", metavar="NAME", help="only this site")
    ls.add_argument("--limit", type=int, metavar="N", help="only the newest N")
    ls.add_argument("--json", action="store_true", help="index entries as JSON lines")
    ls.add_argument("--kind", choices=["incident", "drill", "all"], default="incident",
                    help="incident records (the default), drills, or all")
    ls.add_argument("--drills", dest="kind", action="store_const", const="drill", help="same as --kind drill")
    sh = rverb("show", cmd_records_show, help="a run's verdict, provenance and checksum check")
    sh.add_argument("run", metavar="RUN", help="a run id, a unique prefix of one, or 'last'")
    ht = rverb("html", cmd_records_html, help="render a record again: code hidden, verdict first")
    ht.add_argument("run", metavar="RUN")
    ht.add_argument("--section", metavar="RUNBOOK", help="for an incident: one of its runbooks' records")
    ht.add_argument("-o", "--output", metavar="FILE", help="where to write it (default ./RUN-RUNBOOK.html)")
    df = rverb("diff", cmd_records_diff, help="what changed between two runs (default: against the last healthy one)")
    df.add_argument("run", metavar="RUN")
    df.add_argument("other", metavar="OTHER", nargs="?", help="the run to compare with")
    df.add_argument("--json", action="store_true")
    vf = rverb("verify", cmd_records_verify, help="check records against their checksums (exit 2 when one changed)")
    vf.add_argument("runs", metavar="RUN", nargs="*", help="runs to check (default: every run in the index)")
    rverb("rebuild", cmd_records_rebuild, help="write the index again from the records themselves")
    pr = rverb("prune", cmd_records_prune,
               help="delete records older than N days (never the last healthy one of each runbook)")
    pr.add_argument("--days", type=float, metavar="N", help="default: $RUNBOOK_RETENTION_DAYS")
    pr.add_argument("--dry-run", action="store_true", help="only say what would go")

    ex = rverb("export", cmd_records_export, help="a record as a regression fixture (tests/incidents/)")
    ex.add_argument("run", metavar="RUN")
    ex.add_argument("--scenario", required=True, metavar="FILE",
                    help="the fixture to write, e.g. tests/incidents/NAME.json (never replaced)")

    rp = verbs.add_parser("replay", parents=[folder],
                          help="today's checks over a record's saved evidence, and what changed (contacts nothing)")
    rp.add_argument("run", nargs="?", metavar="RUN", help="a run id, a unique prefix of one, or 'last'")
    rp.add_argument("--all", action="store_true", help="every incident record: one line for each that differs")
    rp.add_argument("--since", metavar="D", help="with --all: records started at D (YYYY-MM-DD or ISO time) or later")
    rp.add_argument("--json", action="store_true", help="the replay as JSON (with --all: one line per difference)")
    _debug_option(rp)
    rp.set_defaults(func=cmd_replay)

    lab = verbs.add_parser("lab", help="keep a lab twin running for interactive work")
    lab_verbs = lab.add_subparsers(dest="lab_verb", required=True, metavar="{up,down,jupyter,site,scenarios}")
    up = lab_verbs.add_parser("up", help="start a twin in the background and print its site file")
    up.add_argument("scenario", nargs="?", default=None, metavar="SCENARIO",
                    help="a shipped scenario name or a scenario file (default: healthy)")
    up.set_defaults(func=cmd_lab_up)
    lab_verbs.add_parser("down", help="stop the background twin").set_defaults(func=cmd_lab_down)
    jl = lab_verbs.add_parser("jupyter", help="start a twin, open JupyterLab on the notebooks, stop the twin when "
                                              "JupyterLab exits (what `make lab` runs)")
    jl.add_argument("scenario", nargs="?", default=None, metavar="SCENARIO", help="default: healthy")
    jl.add_argument("--folder", default="notebooks", help="what JupyterLab opens (default: notebooks)")
    jl.set_defaults(func=cmd_lab_jupyter)
    lab_verbs.add_parser("site", help="print the running twin's site file").set_defaults(func=cmd_lab_site)
    lab_verbs.add_parser("scenarios", help="list the shipped scenarios and what each expects"
                         ).set_defaults(func=cmd_lab_scenarios)

    from . import drill

    drill.add_parser(verbs, _debug_option, cmd_drill)
    return parser


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) if str(exc) else ""
    if isinstance(exc, RunbookError):
        return text or type(exc).__name__
    if isinstance(exc, OSError) and exc.strerror:
        where = f" ({exc.filename})" if exc.filename else ""
        return f"{exc.strerror}{where}"
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def main(argv: list[str] | None = None) -> int:
    from .execute import skip_slow_optional_imports

    skip_slow_optional_imports()
    args = build_parser().parse_args(argv)
    # papermill logs what the verdict already says (a timed-out cell); keep stderr for our messages
    logging.getLogger("papermill").addHandler(logging.NullHandler())
    previous = interrupts.install()
    try:
        return _main(args)
    finally:
        interrupts.restore(previous)


def _main(args) -> int:
    try:
        code = args.func(args)
        interrupts.raise_if_pending()  # a signal that arrived where it could not raise
        return code
    except KeyboardInterrupt as exc:
        result = getattr(exc, "result", None)
        if result is not None and args.verb != "check":
            try:
                _print_result(result, getattr(args, "json", False))
            except Exception:
                pass
        name = interrupts.signal_name(exc)
        where = (f"; partial record {shown_path(result.paths['notebook'])}"
                 if result is not None and result.paths else "")
        print(f"runbook: interrupted by {name}{where}", file=sys.stderr)
        return interrupts.exit_code(exc)
    except BrokenPipeError:  # `runbook ... | head`: the reader left; say nothing more
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except Exception as exc:  # every failure of the run itself: one line, exit 3 (--debug: the traceback)
        if args.debug:
            import traceback

            traceback.print_exc()
        print(f"runbook: {_one_line(exc)}", file=sys.stderr)
        return EXIT_RUN_FAILED


if __name__ == "__main__":
    sys.exit(main())
