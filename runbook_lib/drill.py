"""Drills: practise on the lab twin with a failure of the guide you are not told about.

::

    runbook drill start [--section S] [--seed N]   a background twin with a hidden scenario
    runbook drill status                            since when, the section asked for, answered or not
    runbook drill answer ID [ID...]                 the root cause's finding id first: scored, revealed, kept
    runbook drill stop                              stop the twin, forget the drill

``start`` draws one of the shipped scenarios that has a ``cause`` (with ``--section``, one whose
cause is in that section of the cause catalog; ``--seed N`` makes the draw reproducible for the same
shipped scenarios) and starts it as the twin of ``runbook lab up`` (the same supervision, so
``runbook lab site``, ``runbook triage`` and ``runbook run`` without ``--site`` use it). The operator
investigates with the runbooks as in an incident; their records are ordinary incident records.

**Scoring.** ``right`` when the first id given is the scenario's cause (exit 0); ``partly`` when the
cause is among the ids but not first (exit 1); ``wrong`` otherwise (exit 2). Each id given is also
said to be the cause, a knock-on the scenario brings with it (in its ``expect``), or not part of
this failure. The answer reveals the scenario, says how long the drill took, and is kept as a
record of kind ``drill``: ``<outputs>/<day>/<drill id>/drill.json`` and an index line with
``"kind": "drill"`` (see docs/contracts.md). A drill is answered once; its twin runs on until
``runbook drill stop``, so the operator can look again knowing the answer.

**What is hidden, and how far.** The scenario's name and summary are never printed before the
answer, and the twin is told its scenario through a pipe, so neither its command line, its ready
file, its log, its site file's header, its file names nor its canary secrets name it. The drill's
state file (``<RUNBOOK_HOME>/drill/state.json``) keeps a salted HMAC of the scenario's name, not
the name: the answer finds the scenario again by computing it for each shipped scenario. This keeps
the answer from being *read*; it does not keep a determined operator from *finding* it: the same
computation over the ~70 shipped names takes a millisecond, and the twin's state files
(``omni-state.json``, its request log, what its servers answer) show the injected failure, which is
the point of a drill. A drill is practice, not an exam.
"""

from __future__ import annotations

import fcntl
import hashlib
import hmac
import json
import random
import secrets
import shutil
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterator

from . import catalog, kernel
from .errors import RunbookError
from .record import iso, new_run_id, utc_now

STATE_NAME = "state.json"
KIND = "drill"
SCORES = {"right": 0, "partly": 1, "wrong": 2}  # the exit status of `runbook drill answer`


class DrillError(RunbookError):
    """A drill cannot be started, answered or found as asked (exit 3)."""


def drill_dir() -> Path:
    """Where the running drill keeps its state: ``<RUNBOOK_HOME>/drill``."""
    return kernel.state_dir() / "drill"


# --- drawing a scenario ------------------------------------------------------------------------------

def candidates(causes: dict[str, str | None], section: str | None = None) -> list[str]:
    """The scenarios a drill may draw, by name: those with a cause (in ``section``, when given).
    An unknown section, or one no scenario has a cause in, is refused by name."""
    cat = catalog.load()
    if section is not None and section not in cat.sections:
        raise DrillError(f"unknown section '{section}'; the cause catalog's sections: {', '.join(cat.sections)}")
    found = sorted(name for name, cause in causes.items()
                   if cause and cause in cat and (section is None or cat[cause].section == section))
    if not found:
        where = f" in section '{section}'" if section else ""
        raise DrillError(f"no shipped scenario has its cause{where}")
    return found


def choose(causes: dict[str, str | None], section: str | None = None, seed: int | None = None) -> str:
    """The scenario a drill brings up: drawn at random among :func:`candidates`; with ``seed``, the
    same one every time for the same shipped scenarios."""
    pool = candidates(causes, section)
    draw = random.Random(seed) if seed is not None else random.SystemRandom()
    return draw.choice(pool)


def fingerprint(salt: str, name: str) -> str:
    """What the state file keeps of the scenario: HMAC-SHA256 of its name keyed with the drill's salt."""
    return hmac.new(salt.encode(), name.encode(), hashlib.sha256).hexdigest()


def match(state: dict, names) -> str | None:
    """The scenario among ``names`` whose fingerprint the drill's state keeps (None: none of them)."""
    want = state.get("scenario_hmac", "")
    return next((n for n in sorted(names) if hmac.compare_digest(fingerprint(state["salt"], n), want)), None)


# --- scoring -------------------------------------------------------------------------------------------

def score(cause: str, ids: list[str]) -> str:
    """``right``: the cause is the first id; ``partly``: it is among them, not first; else ``wrong``."""
    if ids and ids[0] == cause:
        return "right"
    return "partly" if cause in ids else "wrong"


def judge(scenario: dict, ids: list[str]) -> list[dict]:
    """Each id given, as the scenario sees it: the cause, a knock-on of it, or not part of it."""
    expect = set(scenario.get("expect") or [])
    return [{"id": i, "is": "the cause" if i == scenario["cause"] else
             "a knock-on of the cause" if i in expect else "not part of this failure"} for i in ids]


def check_ids(ids: list[str]) -> list[str]:
    """The ids, each once, in the order given; one the cause catalog does not have is refused by name."""
    cat = catalog.load()
    unknown = [i for i in ids if i not in cat]
    if unknown:
        raise DrillError(f"unknown finding id(s) {', '.join(repr(i) for i in unknown)}: not in the cause catalog "
                         "(ids are section.name, as the verdicts print them)")
    return list(dict.fromkeys(ids))


# --- the drill's state ------------------------------------------------------------------------------

def read_state(d: Path | None = None) -> dict | None:
    """The running drill's state, or None when no drill runs (or one is still starting)."""
    try:
        return json.loads(((d or drill_dir()) / STATE_NAME).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _write_state(d: Path, state: dict) -> None:
    from .records import write_atomic

    write_atomic(d / STATE_NAME, json.dumps(state, indent=1) + "\n")


@contextmanager
def _locked(d: Path) -> Iterator[None]:
    """One answer or stop at a time."""
    try:
        fd = open(d / ".lock", "a")
    except FileNotFoundError:  # stopped meanwhile
        raise DrillError("no drill is running (start one with `runbook drill start`)") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        fd.close()


def _busy_message(d: Path) -> str:
    state = read_state(d)
    if state is None:
        return "a drill is starting, or a start was interrupted; `runbook drill stop` clears it"
    if state.get("answered"):
        return (f"drill {state['drill_id']} was answered but not ended; end it with `runbook drill stop` "
                "before starting another")
    return (f"drill {state['drill_id']} is running (since {state['started']}); answer it with "
            "`runbook drill answer ID...` or end it with `runbook drill stop`")


@dataclass
class Lab:
    """The lab twin's modules (loaded by name: the product never imports them) and the directory of
    the twin ``runbook lab up`` keeps."""

    load: Callable[[str], Any]
    dir: Path


def start(lab: Lab, *, section: str | None = None, seed: int | None = None) -> dict:
    """Draw a scenario, bring it up as the background twin, keep the drill's state; returns the state
    (which does not name the scenario)."""
    causes = lab.load("model").scenario_causes()
    name = choose(causes, section, seed)  # an unknown section is refused before anything starts
    d = drill_dir()
    d.parent.mkdir(parents=True, exist_ok=True)
    try:
        d.mkdir(mode=0o700)  # claims the drill: a second start at the same moment finds it taken
    except FileExistsError:
        raise DrillError(_busy_message(d)) from None
    twin = None
    try:
        began = utc_now()
        twin = lab.load("supervise").up(lab.dir, name, hidden=True)
        salt = secrets.token_hex(16)
        state = {"drill_id": new_run_id(began), "started": iso(began), "started_at": began.timestamp(),
                 "section": section, "seed": seed, "salt": salt, "scenario_hmac": fingerprint(salt, name),
                 "site": twin["site"], "site_name": _site_name(twin["site"]), "twin_pid": twin["pid"],
                 "answered": None}
        _write_state(d, state)
    except BaseException:
        if twin is not None:
            lab.load("supervise").down(lab.dir)
        shutil.rmtree(d, ignore_errors=True)
        raise
    return state


def _site_name(site_file: str) -> str:
    import yaml

    try:
        return str((yaml.safe_load(Path(site_file).read_text(encoding="utf-8")) or {}).get("name") or "lab")
    except (OSError, yaml.YAMLError, AttributeError):
        return "lab"


def twin_running(lab: Lab, state: dict) -> bool:
    """True while the drill's own twin runs (not a twin `runbook lab up` started after a `lab down`)."""
    twin = lab.load("supervise").running(lab.dir)
    return twin is not None and int(twin["pid"]) == int(state.get("twin_pid") or -1)


def stop(lab: Lab) -> dict | None:
    """Stop the drill's twin and remove its state; returns the state it had (None: no drill ran)."""
    d = drill_dir()
    if not d.exists():
        return None
    with _locked(d):
        state = read_state(d)
        twin = lab.load("supervise").running(lab.dir)
        if twin is not None and (twin.get("hidden") or (state and int(twin["pid"]) == int(state.get("twin_pid") or -1))):
            lab.load("supervise").down(lab.dir)
        elif twin is None and state is None:
            lab.load("supervise").down(lab.dir)  # a start interrupted while its twin was coming up
        shutil.rmtree(d, ignore_errors=True)
    return state or {}


# --- answering ------------------------------------------------------------------------------------------

@dataclass
class Answer:
    doc: dict  # the drill record (drill.json)
    record: Path  # where it was written
    entry: dict = field(default_factory=dict)  # its index line

    @property
    def exit_code(self) -> int:
        return SCORES[self.doc["score"]]


def answer(lab: Lab, ids: list[str], *, outputs: Path) -> Answer:
    """Score ``ids`` against the drill's scenario, reveal it, keep the record; the drill is then over."""
    ids = check_ids(ids)
    d = drill_dir()
    if read_state(d) is None:
        raise DrillError("no drill is running (start one with `runbook drill start`)")
    with _locked(d):
        state = read_state(d)
        if state is None:
            raise DrillError("no drill is running (start one with `runbook drill start`)")
        if state.get("answered"):
            done = state["answered"]
            raise DrillError(f"drill {state['drill_id']} is over: it was answered at {done['at']} ({done['score']}); "
                             f"`runbook records show {state['drill_id']}` shows it, `runbook drill stop` ends it")
        model = lab.load("model")
        name = match(state, model.list_scenarios())
        if name is None:
            raise DrillError(f"drill {state['drill_id']}: its scenario is not among the shipped ones any more "
                             "(the lab package changed since the drill started)")
        scenario = model.load_scenario(name)
        finished = utc_now()
        doc = record_doc(state, scenario, ids, finished, outputs)
        record, entry = write_record(outputs, doc)
        state["answered"] = {"at": doc["finished"], "score": doc["score"], "record": str(record)}
        _write_state(d, state)
    return Answer(doc, record, entry)


def record_doc(state: dict, scenario: dict, ids: list[str], finished: datetime, outputs: Path) -> dict:
    """The drill record: what was drawn, what was answered, the score, how long it took, and the
    incident records made meanwhile (the investigation)."""
    from .records import read_index

    verdict = score(scenario["cause"], ids)
    started = state["started"]
    made = [e for e in read_index(outputs)
            if not e.get("kind") and started <= (e.get("started") or "") <= iso(finished)]
    return {
        "kind": KIND,
        "run_id": state["drill_id"],
        "runbook": KIND,
        "site": state.get("site_name") or "lab",
        "started": started,
        "finished": iso(finished),
        "seconds": round(finished.timestamp() - state["started_at"], 1),
        "section": state.get("section"),
        "seed": state.get("seed"),
        "scenario": {"name": scenario["name"], "summary": scenario["summary"].strip(),
                     "cause": scenario["cause"], "expect": list(scenario.get("expect") or [])},
        "answer": ids,
        "judged": judge(scenario, ids),
        "score": verdict,
        "exit_code": SCORES[verdict],
        "investigation": [{"run_id": e.get("run_id"), "runbook": e.get("runbook"),
                           "root_causes": e.get("root_causes") or []} for e in made[-50:]],
        "provenance": {"run_id": state["drill_id"], "runbook": KIND, "project_version": _version(),
                       "indexed": True, "checksums": {}},
    }


def _version() -> str:
    from .runner import project_version

    return project_version()


def write_record(outputs: Path, doc: dict) -> tuple[Path, dict]:
    """Keep the drill as ``<outputs>/<day>/<drill id>/drill.json``, published whole, and its
    hash-chained index line."""
    from .record import Record

    started = datetime.strptime(doc["started"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc)
    with Record.claim(outputs, KIND, doc["run_id"], started=started, kind=KIND) as rec:
        rec.publish_document(doc)
        return rec.paths.verdict, rec.index(index_entry(rec.outputs, rec.paths.verdict, doc))


def index_entry(outputs: Path, path: Path, doc: dict) -> dict:
    """A drill's index line: the fields every line has (no findings: a drill observes no site), with
    what the drill was under ``drill`` (the record adds ``kind`` and the checksums)."""
    return {
        "run_id": doc["run_id"], "runbook": KIND, "site": doc.get("site"),
        "started": doc.get("started"), "finished": doc.get("finished"), "exit_code": doc.get("exit_code"),
        "counts": {}, "problems": [], "root_causes": [], "unknown": [], "error": None,
        "record": {"verdict": str(path.relative_to(outputs))}, "parts": [], "writes": 0,
        "drill": {"scenario": doc["scenario"]["name"], "cause": doc["scenario"]["cause"], "answer": doc["answer"],
                  "score": doc["score"], "section": doc.get("section"), "seconds": doc.get("seconds")},
    }


def is_drill(doc_or_entry: dict) -> bool:
    return doc_or_entry.get("kind") == KIND


# --- reading it back -------------------------------------------------------------------------------------

def duration(seconds: float | None) -> str:
    """``38s``, ``4m 12s``, ``1h 02m``."""
    if seconds is None:
        return "?"
    s = int(round(seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m {s % 60:02d}s"
    return f"{s // 3600}h {s % 3600 // 60:02d}m"


HEADLINES = {"right": "RIGHT: the root cause, first", "partly": "PARTLY: the root cause, but not first",
             "wrong": "WRONG: not the root cause"}


def reveal(doc: dict) -> list[str]:
    """The drill as text: the score, the scenario, the answer judged id by id, how long it took."""
    sc = doc["scenario"]
    cat = catalog.load()
    means = cat[sc["cause"]].means if sc["cause"] in cat else ""
    out = [f"drill {doc['run_id']}: {HEADLINES[doc['score']]} (after {duration(doc.get('seconds'))})",
           f"  scenario    {sc['name']}"]
    out += [f"              {line}" for line in _wrap(sc["summary"])]
    out.append(f"  cause       {sc['cause']}" + (f": {means}" if means else ""))
    out.append(f"  expects     {', '.join(sc['expect'])}")
    first = True
    for j in doc.get("judged") or []:
        out.append(f"  {'answered' if first else '':<11} {j['id']}: {j['is']}")
        first = False
    out.append(f"  section     {doc.get('section') or 'any'}" + (f", seed {doc['seed']}" if doc.get("seed") is not None
                                                                 else ""))
    out.append(f"  started     {doc['started']}, answered {doc['finished']}")
    made = doc.get("investigation") or []
    if made:
        shown = ", ".join(f"{e['run_id']} ({e['runbook']})" for e in made[:5]) + (" ..." if len(made) > 5 else "")
        out.append(f"  records     {len(made)} made meanwhile: {shown}")
    return out


def _wrap(text: str, width: int = 96) -> list[str]:
    import textwrap

    return textwrap.wrap(" ".join(text.split()), width) or [""]


def show_record(outputs: Path, entry: dict) -> str:
    """``runbook records show`` for a drill: the reveal, then where its file is and its check."""
    from . import archive

    doc = archive.load_verdict(outputs, entry)
    check = archive.verify_entry(outputs, entry)
    return "\n".join(reveal(doc) + [
        f"  files       {archive.record_dir(outputs, entry)}",
        "  checksums   " + ("valid" if check.ok else "MISMATCH: " + "; ".join(check.problems))])


def format_row(e: dict) -> str:
    """A drill's line in ``runbook records list``: its score where a run has its status."""
    d = e.get("drill") or {}
    answer = ", ".join(d.get("answer") or [])
    mark = "TAMPERED " if e.get("tampered") else ""
    return (f"{e.get('run_id', '?'):<22} {KIND:<12} {e.get('started', ''):<20} {d.get('score', '?'):<8} "
            f"{mark}{d.get('scenario', '?')}: cause {d.get('cause', '?')}, answered {answer or '-'} "
            f"({duration(d.get('seconds'))})")


# --- the command line ----------------------------------------------------------------------------------

def add_parser(verbs, debug_option, run: Callable) -> None:
    """``runbook drill start|answer|status|stop`` under the command's verbs; ``run(args)`` runs them."""
    drill = verbs.add_parser(
        "drill", help="practise: a twin with a failure of the guide you are not told; find its root cause",
        description="Practise under pressure: `start` brings up the lab twin with a failure drawn from the "
                    "shipped scenarios and does not say which; investigate with the runbooks; `answer` with the "
                    "root cause's finding id. Exit status of answer: 0 right, 1 partly (the cause named, not "
                    "first), 2 wrong, 3 it could not be scored.")
    sub = drill.add_subparsers(dest="drill_verb", required=True, metavar="{start,answer,status,stop}")
    st = sub.add_parser("start", help="bring up a twin with a hidden failure, in the background")
    st.add_argument("--section", metavar="S", help="a failure whose cause is in this section of the guide "
                                                   "(provider, storage, provisioning, ...)")
    st.add_argument("--seed", type=int, metavar="N", help="draw the same failure every time (for the same "
                                                          "shipped scenarios)")
    an = sub.add_parser("answer", help="name the root cause (its finding id first); scored, revealed, recorded")
    an.add_argument("ids", nargs="+", metavar="ID", help="finding ids, the root cause first (e.g. section.name)")
    an.add_argument("--outputs", metavar="DIR", help="where records go (default: $RUNBOOK_OUTPUTS or ./outputs)")
    sub.add_parser("status", help="the running drill: since when, its section, answered or not")
    sub.add_parser("stop", help="stop the drill's twin and end the drill")
    for p in (drill, *sub.choices.values()):
        debug_option(p)
        p.set_defaults(func=run)


def command(args, lab: Lab) -> int:
    verb = args.drill_verb
    if verb == "start":
        return _cmd_start(args, lab)
    if verb == "answer":
        return _cmd_answer(args, lab)
    if verb == "status":
        return _cmd_status(lab)
    return _cmd_stop(lab)


def _cmd_start(args, lab: Lab) -> int:
    from .site import SITE_ENV

    began = time.monotonic()
    state = start(lab, section=args.section, seed=args.seed)
    site = state["site"]
    jupyter = Path(sys.executable).parent / "jupyter"
    where = f" in section {args.section}" if args.section else ""
    print(f"drill {state['drill_id']} started{where} ({time.monotonic() - began:.1f} s): something on the lab "
          "site is broken; find the root cause")
    print(f"  site file    {site}")
    print(f"  investigate  runbook triage --site {site}")
    print(f"               runbook run SECTION --site {site}    "
          f"SECTION: {', '.join(catalog.load().sections)}, logs")
    print(f"               {SITE_ENV}={site} {jupyter} lab notebooks/    the notebooks in JupyterLab")
    print("               (without --site, runbook run/triage use this twin too: it is `runbook lab site`)")
    print("  answer       runbook drill answer ID [ID...]    the root cause's finding id first (section.name)")
    print("  also         runbook drill status    runbook drill stop")
    return 0


def _cmd_answer(args, lab: Lab) -> int:
    from . import records

    outputs = records.outputs_dir(args.outputs)
    result = answer(lab, args.ids, outputs=outputs)
    print("\n".join(reveal(result.doc)))
    print(f"  record      {result.record}  (runbook records show {result.doc['run_id']})")
    print("  the twin keeps running, so you can look again knowing the answer; `runbook drill stop` ends the drill")
    return result.exit_code


def _cmd_status(lab: Lab) -> int:
    d = drill_dir()
    state = read_state(d)
    if state is None:
        print("runbook: " + (_busy_message(d) if d.exists() else "no drill is running (start one with "
                                                                  "`runbook drill start`)"), file=sys.stderr)
        return 1
    elapsed = duration(time.time() - state["started_at"])
    done = state.get("answered")
    print(f"drill {state['drill_id']}: running since {state['started']} ({elapsed}), section "
          f"{state.get('section') or 'any'}")
    print("  answered     " + (f"yes, {done['score']}, at {done['at']} (record {done['record']})" if done else "not yet"))
    print(f"  site file    {state['site']}")
    print("  twin         " + ("running" if twin_running(lab, state) else "stopped (`runbook drill stop` ends the drill)"))
    return 0


def _cmd_stop(lab: Lab) -> int:
    state = stop(lab)
    if state is None:
        print("no drill was running", file=sys.stderr)
        return 0
    if not state:
        print("a drill that had not finished starting was cleared", file=sys.stderr)
    elif state.get("answered"):
        print(f"drill {state['drill_id']} ended (answered: {state['answered']['score']}); its twin is stopped",
              file=sys.stderr)
    else:
        model = lab.load("model")
        name = match(state, model.list_scenarios())
        was = (f"; it was {name}: {model.load_scenario(name)['summary'].strip().splitlines()[0]}" if name
               else "")
        print(f"drill {state['drill_id']} ended without an answer (nothing recorded); its twin is stopped{was}",
              file=sys.stderr)
    return 0
