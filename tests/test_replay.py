"""Replay's parts without a record on disk: the evidence document and its versions, the comparison
of a recorded verdict with today's, and a fixture's expected outcome."""

from __future__ import annotations

import json

import pytest

from runbook_lib import evidence, replay
from runbook_lib.evidence import Evidence, EvidenceFormatError
from runbook_lib.verdict import Finding, Verdict

# the omnictl section judged from evidence alone: a config whose context is missing is a problem
KEY = "omnictl.key_expired"


def recorded(findings: list[Finding], **kw) -> dict:
    return json.loads(Verdict("triage", findings, run_id="20261201T000000Z-abcd", **kw).to_json())


def test_a_document_reads_back_as_the_evidence_it_was():
    ev = {"provider": Evidence({"container": {"name": "omni-infra-provider-proxmox", "running": True}},
                               {"config": "provider host: timed out after 10 s"})}
    doc = json.loads(json.dumps(evidence.to_document(ev, runbook="provider", run_id="r1")))
    back = evidence.from_document(doc)
    assert back["provider"].to_dict() == ev["provider"].to_dict()
    assert doc["version"] == evidence.EVIDENCE_VERSION and doc["format"] == evidence.EVIDENCE_FORMAT


@pytest.mark.parametrize("doc, says", [
    ({"format": "something else", "version": 1, "sections": {}}, "not an evidence document"),
    ([], "not an evidence document"),
    ({"format": evidence.EVIDENCE_FORMAT, "sections": {}}, "version is missing"),
    ({"format": evidence.EVIDENCE_FORMAT, "version": "1", "sections": {}}, "version is missing"),
    ({"format": evidence.EVIDENCE_FORMAT, "version": evidence.EVIDENCE_VERSION + 1, "sections": {}},
     "written by a newer omni-runbooks"),
    ({"format": evidence.EVIDENCE_FORMAT, "version": 0, "sections": {}}, "was ever written"),
    ({"format": evidence.EVIDENCE_FORMAT, "version": 1, "sections": {"provider": []}}, "'sections' must map"),
])
def test_a_document_this_version_cannot_read_is_refused_by_name(doc, says):
    with pytest.raises(EvidenceFormatError, match=says) as err:
        evidence.from_document(doc, where="run r1")
    assert str(err.value).startswith("run r1: ")


def finding(fid: str, status: str = "problem") -> Finding:
    return Finding(fid, status, f"{fid} is {status}")


def test_nothing_changed_is_no_change():
    found = [finding("provider.key_invalid"), finding("provider.unhealthy"), finding(KEY, "ok")]
    assert replay.compare(recorded(found), Verdict("triage", [finding(f.id, f.status) for f in found])) == []


def test_added_gone_and_status_changes_are_named():
    before = recorded([finding("provider.key_invalid"), finding(KEY, "unknown"), finding("storage.pool_inactive", "ok")])
    today = Verdict("triage", [finding("provider.key_invalid"), finding(KEY, "problem"),
                               finding("provider.container_missing", "ok")])
    kinds = {(c.kind, c.id, c.before, c.after) for c in replay.compare(before, today)}
    assert ("status", KEY, "unknown", "problem") in kinds
    assert ("gone", "storage.pool_inactive", "ok", "") in kinds
    assert ("added", "provider.container_missing", "", "ok") in kinds


def test_a_problem_that_becomes_a_knock_on_is_a_root_cause_change():
    # recorded before a causal link existed: two independent root causes, key_invalid first
    before = recorded([finding("provider.key_invalid"), finding("provider.unhealthy")])
    before["root_causes"] = ["provider.unhealthy", "provider.key_invalid"]
    for f in before["findings"]:
        f["explained_by"] = []
    today = Verdict("triage", [finding("provider.key_invalid"), finding("provider.unhealthy")])
    assert today.root_causes == ["provider.key_invalid"]  # today's catalog: a bad key explains it
    changes = replay.compare(before, today)
    assert [(c.kind, c.id, c.after) for c in changes] == [
        ("root cause", "provider.unhealthy", "explained by provider.key_invalid"),
        ("fix first", "", "provider.key_invalid")]
    assert changes[-1].before == "provider.unhealthy"


def test_the_recorded_root_causes_are_taken_as_written():
    """A record's root causes are not recomputed with today's catalog, or a changed link would hide."""
    before = recorded([finding("provider.key_invalid")])
    before["root_causes"] = ["provider.key_invalid"]
    today = Verdict("triage", [finding("provider.key_invalid")])
    assert replay.compare(before, today) == []


def test_security_events_are_raised_again_from_the_recorded_calls():
    calls = [{"target": "provider-host", "action": "ssh", "error_kind": "host_key",
              "detail": "provider-host: host key mismatch"}]
    found = replay.judge({}, calls)
    assert [f.id for f in found] == ["security.host_key_mismatch"]


def test_replay_over_a_section_judges_it_and_keeps_the_run():
    ev = {"omnictl": Evidence(errors={"config": "no omniconfig at ~/.config/omni/config"})}
    rec = recorded([], site="lab")
    result = replay.replay(rec, ev)
    assert result.verdict.run_id == rec["run_id"] and result.verdict.site == "lab"
    assert {c.id for c in result.changes if c.kind == "added"} == {f.id for f in result.verdict.findings}
    assert all(f.id.startswith("omnictl.") for f in result.verdict.findings)
    assert not result.same and result.line().startswith(rec["run_id"])


def test_a_fixture_holds_its_record_and_reports_disagreement():
    ev = {"omnictl": Evidence(errors={"config": "no omniconfig"})}
    doc = evidence.to_document(ev, runbook="omnictl")
    today = Verdict("omnictl", replay.judge(evidence.from_document(doc)))
    fx = replay.fixture(json.loads(today.to_json()), doc, "no-config")
    assert fx["expect"] == sorted(f.id for f in today.problems)
    assert replay.fixture_mismatches(fx) == []
    fx["expect"] = fx["expect"] + ["provider.key_invalid"]
    assert "missing ['provider.key_invalid']" in replay.fixture_mismatches(fx, "no-config")[0]
