"""Every shipped scenario through every section at once, in process, as triage runs them.

For each scenario: the union of `problem` ids over every section is exactly its `expect` (a check
tuned to one section's scenarios can misfire on another's: this is where a false `problem`
anywhere shows); the scenario's `cause` comes first in the root causes, and every other expected
id is a root cause or explained by one; no read was made twice and nothing was written; and the
evidence, saved as a record keeps it and read back, is judged to the same findings (replay).
(tests/test_runbooks.py runs the notebooks end to end through papermill.)
"""

from __future__ import annotations

import json
from collections import Counter

import pytest

from runbook_lab.model import list_scenarios, load_scenario
from runbook_lab.twin import Twin
from runbook_lib import catalog, evidence, replay, triage
from runbook_lib.calls import CallLog
from runbook_lib.rootcause import attribute
from runbook_lib.site import load_site


def run(name: str):
    with Twin(name) as twin:
        calls = CallLog()
        incident = triage.run(load_site(twin.site_file), calls, collect_logs=False)
        writes = twin.writes()
    return incident, calls, writes


@pytest.mark.parametrize("name", sorted(list_scenarios()))
def test_every_section_finds_exactly_what_the_scenario_expects(name):
    scenario = load_scenario(name)
    incident, calls, writes = run(name)
    found = incident.all_findings()
    problems = [f.id for f in found if f.status == "problem"]
    shown = "\n".join(f"{f.id}: {f.status}: {f.summary}" for f in found if f.status != "ok")
    expect = set(scenario["expect"])
    extra, missing = sorted(set(problems) - expect), sorted(expect - set(problems))
    assert set(problems) == expect, f"extra {extra}, missing {missing}\n{shown}"
    assert sorted(f.id for f in found) == sorted(catalog.load().ids())

    roots = attribute(problems)
    if expect:
        assert roots.root_causes[0] == scenario["cause"], roots
    for fid in expect - set(roots.root_causes):
        assert roots.explained_by[fid], f"{fid} is neither a root cause nor explained"
    if not expect:
        assert roots.root_causes == []

    made = Counter((c.target, c.action) for c in calls.calls)
    assert [k for k, n in made.items() if n > 1 and "connect" not in k[1]] == []  # each read once
    assert calls.shared.hits > 0  # sections shared what they read
    assert writes == [], "a diagnostic run wrote to the twin"

    saved = json.loads(json.dumps(evidence.to_document(incident.evidence, runbook="triage")))
    again = replay.judge(evidence.from_document(saved))
    assert [f.to_dict() for f in again] == [f.to_dict() for f in found]


def test_the_healthy_twin_is_healthy_in_every_section():
    incident, _, _ = run("healthy")
    assert [f"{f.id}: {f.status}" for f in incident.all_findings() if f.status not in ("ok", "skipped")] == []
