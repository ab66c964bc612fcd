"""The archive: list with filters, show, diff, verify, rebuild, prune, and concurrent runs.

Most tests build records with :func:`records.write_record` (no kernel), exactly as a Record
writes them. The concurrency test runs eight real headless runs in eight processes at once.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

import nbformat
import pytest

from runbook_lib import archive, records
from runbook_lib.cli import main
from runbook_lib.verdict import Finding, Verdict

DATA = Path(__file__).parent / "data"
HEALTHY = [("health.omni_reachable", "ok", ["GET https://omni/healthz: HTTP 200"]),
           ("health.provider_running", "ok", ["docker ps -a: provider running, Up 3 days"])]


def make_record(outputs: Path, runbook: str, run_id: str, started: str, findings, *, error: str = "",
                index: bool = True) -> Path:
    """A record as the runner leaves it: notebook, HTML, verdict JSON with provenance, index line."""
    verdict = Verdict(runbook=runbook, run_id=run_id, site="lab", started=started, finished=started,
                      findings=[Finding(i, s, f"{i} is {s}", list(ev), "do this" if s == "problem" else "")
                                for i, s, ev in findings], error=error,
                      provenance={"run_id": run_id, "runbook": runbook, "input_sha256": "0" * 64, "indexed": index})
    paths = records.record_paths(outputs, run_id, runbook, started[:10])
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell(f"# {runbook}")])
    digest = records.write_record(paths, nb, verdict)
    if index:
        records.index_run(outputs, verdict, paths, verdict.exit_code(), verdict_sha256=digest)
    return paths.dir


@pytest.fixture
def archive_dir(tmp_path):
    out = tmp_path / "outputs"
    make_record(out, "health", "20261120T100000Z-aaaa", "2026-11-20T10:00:00Z", HEALTHY)
    make_record(out, "provider", "20261121T100000Z-bbbb", "2026-11-21T10:00:00Z",
                [("provider.key_invalid", "problem", ["3 authentication line(s)"])])
    make_record(out, "health", "20261125T100000Z-cccc", "2026-11-25T10:00:00Z",
                [("health.omni_reachable", "ok", ["GET https://omni/healthz: HTTP 200"]),
                 ("health.provider_running", "problem", ["docker ps -a: provider exited, Exited (2)"])])
    make_record(out, "health", "20261126T100000Z-dddd", "2026-11-26T10:00:00Z",
                [("health.omni_reachable", "unknown", ["GET https://omni/healthz: timeout"]),
                 ("health.provider_running", "ok", ["docker ps -a: provider running, Up 1 hour"])])
    return out


def ids(entries) -> list[str]:
    return [e["run_id"][-4:] for e in entries]


@pytest.mark.parametrize("filters, expected", [
    (archive.Filters(), ["aaaa", "bbbb", "cccc", "dddd"]),
    (archive.Filters(runbook="health"), ["aaaa", "cccc", "dddd"]),
    (archive.Filters(status="problem"), ["bbbb", "cccc"]),
    (archive.Filters(status="unknown"), ["dddd"]),
    (archive.Filters(since="2026-11-21", until="2026-11-25"), ["bbbb", "cccc"]),
    (archive.Filters(finding="health.provider_running"), ["cccc"]),
    (archive.Filters(finding="health.omni_reachable"), ["dddd"]),
    (archive.Filters(runbook="health", status="ok"), ["aaaa"]),
])
def test_list_filters(archive_dir, filters, expected):
    assert ids(archive.list_runs(archive_dir, filters)) == expected


def test_list_command_prints_a_row_per_run(archive_dir, capsys):
    assert main(["records", "list", "--outputs", str(archive_dir), "--status", "problem"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 3 and "provider.key_invalid" in lines[1] and "health.provider_running" in lines[2]
    assert main(["records", "list", "--outputs", str(archive_dir), "--json", "--limit", "1"]) == 0
    assert json.loads(capsys.readouterr().out)["run_id"].endswith("dddd")


def test_find_by_id_prefix_and_last(archive_dir):
    assert archive.find(archive_dir, "20261121")["runbook"] == "provider"
    assert archive.find(archive_dir, "last")["run_id"].endswith("dddd")
    with pytest.raises(archive.RecordNotFound, match="matches 4 runs"):
        archive.find(archive_dir, "2026112")
    with pytest.raises(archive.RecordNotFound):
        archive.find(archive_dir, "nosuch")


def test_show_gives_the_verdict_provenance_and_checksums(archive_dir):
    text = archive.show(archive_dir, archive.find(archive_dir, "20261125"))
    assert "Fix first: health.provider_running" in text and "Exited (2)" in text
    assert "input_sha256" in text and "checksums        valid" in text


def test_diff_against_the_last_healthy_run_by_default(archive_dir):
    d = archive.diff(archive_dir, "20261125T100000Z-cccc")
    assert d.base["run_id"].endswith("aaaa")
    assert [(c.id, c.before, c.after) for c in d.status_changes] == [("health.provider_running", "ok", "problem")]
    change = d.status_changes[0]
    assert change.removed == ["docker ps -a: provider running, Up 3 days"]
    assert change.added == ["docker ps -a: provider exited, Exited (2)"]
    assert d.evidence_changes == []
    assert "health.provider_running: ok -> problem" in d.text()


def test_diff_of_two_named_runs_lists_evidence_only_changes(archive_dir, capsys):
    d = archive.diff(archive_dir, "20261126T100000Z-dddd", "20261120T100000Z-aaaa")
    assert (d.base["run_id"][-4:], d.other["run_id"][-4:]) == ("aaaa", "dddd")  # earlier run is the base
    assert [c.id for c in d.status_changes] == ["health.omni_reachable"]
    assert [(c.id, c.added) for c in d.evidence_changes] == \
        [("health.provider_running", ["docker ps -a: provider running, Up 1 hour"])]
    assert main(["records", "diff", "--outputs", str(archive_dir), "20261126T100000Z-dddd", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["base"].endswith("aaaa")


def test_diff_without_a_healthy_run_says_what_to_do(tmp_path):
    out = tmp_path / "outputs"
    make_record(out, "provider", "20261121T100000Z-bbbb", "2026-11-21T10:00:00Z",
                [("provider.key_invalid", "problem", ["x"])])
    with pytest.raises(archive.RecordNotFound, match="name the run to compare with"):
        archive.diff(out, "last")


def test_verify_finds_every_kind_of_change(archive_dir, capsys):
    assert all(v.ok for v in archive.verify_all(archive_dir).values())
    entry = archive.find(archive_dir, "20261125")
    folder = archive.record_dir(archive_dir, entry)
    (folder / "health.ipynb").write_text((folder / "health.ipynb").read_text().replace("# health", "# edited"))
    doc = json.loads((folder / "health.json").read_text())
    doc["findings"][0]["status"] = "ok"  # someone hides the problem
    (folder / "health.json").write_text(json.dumps(doc))
    (folder / "health.html").unlink()
    (folder / "notes.txt").write_text("added later")
    check = archive.verify_all(archive_dir)[entry["run_id"]]
    assert not check.ok
    assert (check.changed, check.missing, check.unlisted) == (["health.ipynb", "health.json"], ["health.html"],
                                                               ["notes.txt"])
    assert main(["records", "verify", "--outputs", str(archive_dir)]) == 2
    assert entry["run_id"] in capsys.readouterr().out
    assert main(["records", "verify", "--outputs", str(archive_dir), "20261120"]) == 0


def test_rebuild_recreates_the_index_from_the_records(archive_dir):
    before = records.read_index(archive_dir)
    records.index_path(archive_dir).unlink()
    incident = make_record(archive_dir, "health", "20261127T100000Z-eeee", "2026-11-27T10:00:00Z", HEALTHY,
                           index=False)
    make_record(archive_dir, "triage", "20261127T100000Z-eeee", "2026-11-27T10:00:00Z", HEALTHY, index=False)
    doc = json.loads((incident / "triage.json").read_text())
    doc["provenance"]["indexed"] = True
    (incident / "triage.json").write_text(json.dumps(doc))
    after = archive.rebuild(archive_dir)
    assert after[:4] == before
    assert (after[4]["runbook"], after[4]["parts"]) == ("triage", ["health"])
    assert records.read_index(archive_dir) == after


def test_prune_keeps_the_last_healthy_run_of_each_runbook(archive_dir, capsys):
    now = datetime(2026, 11, 27, 12, tzinfo=timezone.utc)
    plan = archive.prune(archive_dir, 3, dry_run=True, now=now)
    assert ids(plan.delete) == ["bbbb"] and ids(plan.kept_healthy) == ["aaaa"]
    assert len(records.read_index(archive_dir)) == 4  # a dry run changes nothing
    archive.prune(archive_dir, 3, now=now)
    assert ids(records.read_index(archive_dir)) == ["aaaa", "cccc", "dddd"]
    assert not (archive_dir / "2026-11-21").exists()
    assert (archive_dir / "2026-11-20" / "20261120T100000Z-aaaa" / "health.json").is_file()


def test_retention_setting_is_applied_and_validated(archive_dir, monkeypatch):
    monkeypatch.delenv(archive.RETENTION_ENV, raising=False)
    assert archive.apply_retention(archive_dir) is None
    monkeypatch.setenv(archive.RETENTION_ENV, "0")
    archive.apply_retention(archive_dir, keep=["20261126T100000Z-dddd"])  # the run that just finished
    assert ids(records.read_index(archive_dir)) == ["aaaa", "dddd"]  # the healthy one stays too
    monkeypatch.setenv(archive.RETENTION_ENV, "a week")
    with pytest.raises(Exception, match="not a number"):
        archive.retention_days()


def test_eight_runs_at_once_leave_eight_intact_records(tmp_path):
    site = tmp_path / "site.yaml"
    site.write_text("name: concurrent\nomni: {url: 'https://127.0.0.1:8099'}\n"
                    "hosts: {omni: {host: 127.0.0.1}, provider: {host: 127.0.0.1}}\n"
                    "proxmox: {c1: {endpoints: ['https://127.0.0.1:8006'], token_id: 'runbook@pve!audit',"
                    " token_secret: 'env:UNSET_TOKEN_VAR'}}\nprovider: {cluster: c1}\n")
    outputs = tmp_path / "outputs"
    env = dict(os.environ, RUNBOOK_NOTEBOOKS=str(DATA))
    exe = Path(sys.executable).parent / "runbook"
    procs = [subprocess.Popen([str(exe), "run", "echo", "--site", str(site), "--outputs", str(outputs),
                               "-p", "mode", "problem" if i % 2 else "ok"],
                              env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE) for i in range(8)]
    codes = [p.wait(timeout=240) for p in procs]
    assert codes == [0, 2] * 4, [p.stderr.read() for p in procs]
    entries = records.read_index(outputs)
    assert len(entries) == 8 and len({e["run_id"] for e in entries}) == 8
    assert sorted(e["exit_code"] for e in entries) == [0] * 4 + [2] * 4
    checks = archive.verify_all(outputs)
    assert len(checks) == 8 and all(c.ok for c in checks.values()), checks
    assert len(list(records.record_dirs(outputs))) == 8
    assert archive.verify_chain(outputs) == []  # eight appends at once, each linked to the one before

    def unlinked(es):
        return [{k: v for k, v in e.items() if k != "prev_sha256"} for e in es]

    assert unlinked(archive.rebuild(outputs)) == unlinked(sorted(entries, key=lambda e: (e["started"], e["run_id"])))
    assert archive.verify_chain(outputs) == []


def test_findings_only_one_run_has_are_changes_only_when_they_fail():
    base = {"run_id": "a", "runbook": "triage", "exit_code": 0}
    other = {"run_id": "b", "runbook": "triage", "exit_code": 2}
    before = {"findings": [{"id": "health.x", "status": "ok", "evidence": ["e"]}]}
    after = {"findings": [{"id": "health.x", "status": "ok", "evidence": ["e"]},
                          {"id": "provider.a", "status": "problem", "evidence": ["why"]},
                          {"id": "provider.b", "status": "ok", "evidence": ["fine"]}]}
    d = archive.compare(base, other, before, after)
    assert [(c.id, c.before, c.after, c.added) for c in d.status_changes] == [("provider.a", None, "problem", ["why"])]
    assert [c.id for c in d.only_checked_in_one] == ["provider.b"] and d.evidence_changes == []
    assert "checked only in the later run, all ok or skipped: provider.b" in d.text()


def test_records_list_names_the_cause_to_fix_first(tmp_path, capsys):
    out = tmp_path / "outputs"
    make_record(out, "triage", "20261127T100000Z-eeee", "2026-11-27T10:00:00Z",
                [("provider.container_down", "problem", ["docker ps -a: restarting"]),
                 ("health.provider_running", "problem", ["restarting"]),
                 ("provider.key_invalid", "problem", ["Unauthenticated"])])
    [entry] = records.read_index(out)
    assert entry["root_causes"] == ["provider.key_invalid"]
    assert main(["records", "list", "--outputs", str(out)]) == 0
    row = capsys.readouterr().out.splitlines()[1]
    assert row.split("problem", 1)[1].strip().startswith("fix first provider.key_invalid, ")


def test_rebuild_never_approves_a_record_changed_after_it_was_written(archive_dir, capsys):
    entry = archive.find(archive_dir, "20261121T100000Z-bbbb")
    verdict_file = archive_dir / entry["record"]["verdict"]
    doc = json.loads(verdict_file.read_text())
    doc["findings"][0]["status"] = "ok"  # a problem laundered into a healthy run
    verdict_file.write_text(json.dumps(doc))
    archive.rebuild(archive_dir)
    rebuilt = archive.find(archive_dir, "20261121T100000Z-bbbb")
    assert rebuilt["exit_code"] == 2 and rebuilt["problems"] == ["provider.key_invalid"]  # what the run recorded
    assert rebuilt["tampered"] == ["provider.json: changed"]
    assert archive.last_healthy(archive_dir, "provider") is None
    assert main(["records", "verify", "--outputs", str(archive_dir)]) == 2
    assert "bbbb: provider.json: changed" in capsys.readouterr().out
    archive.rebuild(archive_dir)  # a second rebuild does not forget it either
    assert main(["records", "verify", "--outputs", str(archive_dir)]) == 2
    assert main(["records", "list", "--outputs", str(archive_dir), "--runbook", "provider"]) == 0
    assert "TAMPERED" in capsys.readouterr().out


def test_rebuild_without_an_index_still_checks_each_record_against_its_manifest(archive_dir):
    records.index_path(archive_dir).unlink()
    page = archive_dir / "2026-11-20" / "20261120T100000Z-aaaa" / "health.html"
    page.write_text(page.read_text().replace("health", "HEALTH"))
    entries = {e["run_id"][-4:]: e for e in archive.rebuild(archive_dir)}
    assert entries["aaaa"]["tampered"] == ["health.html: changed"]
    assert archive.last_healthy(archive_dir, "health") is None  # not the reference for diff or prune
    assert [k for k, e in entries.items() if e.get("tampered")] == ["aaaa"]


@pytest.mark.parametrize("edit", ["change", "remove", "insert"])
def test_the_index_is_a_hash_chain_and_verify_finds_a_hand_edit(archive_dir, capsys, edit):
    assert archive.verify_chain(archive_dir) == []
    lines = records.index_path(archive_dir).read_text().splitlines()
    if edit == "change":
        lines[1] = lines[1].replace('"exit_code":2', '"exit_code":0')
    elif edit == "remove":
        del lines[1]
    else:
        lines.insert(2, lines[0])
    records.index_path(archive_dir).write_text("\n".join(lines) + "\n")
    breaks = archive.verify_chain(archive_dir)
    assert breaks and all("changed, removed or inserted" in b for b in breaks)
    assert main(["records", "verify", "--outputs", str(archive_dir)]) == 2
    assert "index chain: index line" in capsys.readouterr().out
