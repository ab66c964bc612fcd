"""Replay and export over real records: a triage of the twin, its evidence kept in the record,
judged again by `runbook replay` (contacting nothing), refused when it cannot be read, and turned
into a regression fixture that passes as tests/test_incidents.py runs it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import test_incidents

from runbook_lib import archive, cli, evidence, records, replay

pytestmark = pytest.mark.runbook

SCENARIO = "key-invalid"


@pytest.fixture(scope="module")
def incident(tmp_path_factory):
    """One triage record of a broken twin, made once for the module (copied per test)."""
    made = tmp_path_factory.mktemp("made") / "outputs"
    code = cli.main(["triage", "--lab", SCENARIO, "--outputs", str(made)])
    assert code == 2
    return made


@pytest.fixture
def outputs(incident, tmp_path):
    import shutil

    copy = tmp_path / "outputs"
    shutil.copytree(incident, copy)
    return copy


def evidence_file(outputs: Path) -> Path:
    entry = archive.find(outputs, "last")
    return records.paths_in(outputs, archive.record_dir(outputs, entry), entry["runbook"]).evidence


def test_the_record_keeps_its_evidence_checksummed(outputs):
    path = evidence_file(outputs)
    doc = json.loads(path.read_text())
    assert doc["format"] == evidence.EVIDENCE_FORMAT and doc["version"] == evidence.EVIDENCE_VERSION
    assert set(doc["sections"]) >= {"provider", "storage", "health"}
    assert cli.main(["records", "verify", "--outputs", str(outputs)]) == 0
    path.write_text(path.read_text().replace('"running"', '"stopped"', 1))
    assert cli.main(["records", "verify", "--outputs", str(outputs)]) == 2  # the evidence is covered


def test_replay_gives_the_recorded_verdict(outputs, capsys):
    recorded = archive.load_verdict(outputs, archive.find(outputs, "last"))
    assert cli.main(["replay", "last", "--outputs", str(outputs), "--json"]) == 2
    shown = json.loads(capsys.readouterr().out)
    assert shown["same"] is True and shown["changes"] == []
    assert shown["verdict"]["root_causes"] == recorded["root_causes"]
    assert [(f["id"], f["status"]) for f in shown["verdict"]["findings"]] == \
        [(f["id"], f["status"]) for f in recorded["findings"]]


def test_replay_names_what_todays_checks_would_change(outputs, capsys):
    """A record whose verdict missed the cause (as older checks might have) shows the difference."""
    entry = archive.find(outputs, "last")
    path = records.paths_in(outputs, archive.record_dir(outputs, entry), entry["runbook"]).verdict
    doc = json.loads(path.read_text())
    doc["findings"] = [f | {"status": "ok"} if f["id"] == "provider.key_invalid" else f for f in doc["findings"]]
    doc["root_causes"] = ["provider.container_down"]
    path.write_text(json.dumps(doc))
    assert cli.main(["replay", "last", "--outputs", str(outputs)]) == 2
    out = capsys.readouterr().out
    assert "~ provider.key_invalid: status ok -> problem" in out
    assert "~ fix first: provider.container_down -> provider.key_invalid" in out
    assert cli.main(["replay", "--all", "--outputs", str(outputs)]) == 2
    captured = capsys.readouterr()
    assert captured.out.count("\n") == 1 and entry["run_id"] in captured.out
    assert "1 record(s): 0 same verdict, 1 differ" in captured.err


@pytest.mark.parametrize("damage, says", [
    (lambda p: p.unlink(), "keeps no evidence"),
    (lambda p: p.write_text(p.read_text().replace('"version": 1', '"version": 7', 1)), "newer omni-runbooks"),
    (lambda p: p.write_text("{not json"), "cannot be read"),
])
def test_evidence_that_cannot_be_read_is_refused_not_misread(outputs, capsys, damage, says):
    damage(evidence_file(outputs))
    assert cli.main(["replay", "last", "--outputs", str(outputs)]) == 3
    err = capsys.readouterr().err
    assert says in err and "Traceback" not in err
    assert cli.main(["replay", "--all", "--outputs", str(outputs)]) == 0
    assert "0 differ, 1 not replayed" in capsys.readouterr().err


def test_an_export_round_trips_into_a_passing_fixture(outputs, tmp_path, capsys):
    target = tmp_path / "key-invalid-incident.json"
    assert cli.main(["records", "export", "last", "--outputs", str(outputs), "--scenario", str(target)]) == 0
    fixture = json.loads(target.read_text())
    assert fixture["cause"] == "provider.key_invalid"
    recorded = archive.load_verdict(outputs, archive.find(outputs, "last"))
    assert fixture["expect"] == sorted(f["id"] for f in recorded["findings"] if f["status"] == "problem")
    test_incidents.test_todays_checks_still_name_the_incident(target)  # as the suite runs it
    fixture["root_causes"] = ["provider.unhealthy"]
    assert replay.fixture_mismatches(fixture)  # and it can fail
    assert cli.main(["records", "export", "last", "--outputs", str(outputs), "--scenario", str(target)]) == 3
    assert "exists already" in capsys.readouterr().err


def test_a_tampered_record_is_not_replayed(outputs, capsys):
    path = evidence_file(outputs)
    path.write_text(path.read_text().replace('"running"', '"stopped"', 1))
    archive.rebuild(outputs)  # the index now marks the record tampered
    assert archive.find(outputs, "last").get("tampered")
    assert cli.main(["replay", "last", "--outputs", str(outputs)]) == 3
    assert "changed after it was written" in capsys.readouterr().err
