"""One run's record from claim to index (runbook_lib.record.Record), without a kernel.

A claimed record is invisible (a hidden staging directory) until it is published whole by one
rename; its index line is chained to the one before it; whatever was claimed and not published,
and the run's private directory, go when the record is left, however it is left.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

import pytest
from nbformat.v4 import new_code_cell, new_notebook, new_output

from runbook_lib import archive, index_chain, notebook, record, records, runner
from runbook_lib.errors import RunbookError, RunFailed
from runbook_lib.record import Record
from runbook_lib.redact import Redactor
from runbook_lib.verdict import Finding, Verdict

SECRET = "rec0rd-Secret-71kq"
STARTED = datetime(2026, 11, 27, 10, 15, 0, tzinfo=timezone.utc)
INDEX_KEYS = ["run_id", "runbook", "site", "started", "finished", "exit_code", "counts", "problems", "root_causes",
              "unknown", "error", "record", "parts", "writes", "verdict_sha256", "manifest_sha256", "prev_sha256"]


@pytest.fixture
def outputs(tmp_path, monkeypatch):
    monkeypatch.setattr("tempfile.tempdir", str(tmp_path / "tmp"))  # where private directories go
    (tmp_path / "tmp").mkdir()
    monkeypatch.setenv("RUNBOOK_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("RUNBOOK_RETENTION_DAYS", raising=False)
    return tmp_path / "outputs"


def executed_notebook():
    return new_notebook(cells=[new_code_cell("print(value)", outputs=[
        new_output("stream", name="stdout", text=f"value is {SECRET}\n")])])


def verdict_for(rec: Record, status: str = "problem") -> Verdict:
    return Verdict(runbook=rec.runbook, run_id=rec.run_id, site="lab", started=record.iso(STARTED),
                   finished=record.iso(STARTED), findings=[Finding("provider.key_invalid", status, "x", ["e"])],
                   provenance={"run_id": rec.run_id, "runbook": rec.runbook, "indexed": True})


def tree(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*")) if root.exists() else []


def test_a_record_is_hidden_until_published_whole_then_indexed(outputs):
    rec = Record.claim(outputs, "provider", started=STARTED)
    assert rec.kind == "incident" and rec.run_id.startswith("20261127T101500Z-")
    day = outputs / "2026-11-27"
    assert tree(outputs) == [day.name, f"{day.name}/.{rec.run_id}.{os.getpid()}.partial"]
    assert list(records.record_dirs(outputs)) == []  # nothing a reader could take for a record
    work = rec.workdir
    assert work.is_dir() and work.stat().st_mode & 0o777 == 0o700 and not work.is_relative_to(outputs)

    verdict = verdict_for(rec)
    rec.publish(executed_notebook(), verdict, Redactor([SECRET]))
    assert tree(day) == [rec.run_id, *(f"{rec.run_id}/provider.{s}" for s in ("html", "ipynb", "json"))]
    assert rec.paths.dir == day / rec.run_id and rec.published
    assert verdict.record == f"outputs/2026-11-27/{rec.run_id}/provider.ipynb"
    assert sorted(verdict.provenance["checksums"]) == ["provider.html", "provider.ipynb"]
    for p in rec.paths.as_dict().values():
        assert SECRET.encode() not in p.read_bytes() and p.stat().st_mode & 0o077 == 0
    nb = json.loads(rec.paths.notebook.read_text())
    assert nb["metadata"]["papermill"]["output_path"] == str(rec.paths.notebook)
    assert nb["metadata"]["runbook"]["provenance"]["run_id"] == rec.run_id

    entry = rec.index()
    assert list(entry) == INDEX_KEYS[:-1]  # the line as written also carries prev_sha256
    [line] = records.read_index(outputs)
    assert list(line) == INDEX_KEYS and line["prev_sha256"] == index_chain.GENESIS
    assert (line["exit_code"], line["problems"], line["parts"]) == (2, ["provider.key_invalid"], [])
    assert line["record"]["notebook"] == f"2026-11-27/{rec.run_id}/provider.ipynb"
    assert all(v.ok for v in archive.verify_all(outputs).values()) and archive.verify_chain(outputs) == []

    rec.discard()  # a published record stays; the private directory goes
    assert not work.exists() and rec.paths.notebook.is_file()


def test_leaving_the_block_removes_what_was_not_published(outputs):
    with pytest.raises(KeyboardInterrupt):
        with Record.claim(outputs, "provider") as rec:
            work = rec.workdir
            raise KeyboardInterrupt  # a SIGTERM while the notebook runs
    assert not work.exists()
    assert tree(outputs) == []  # no staging directory, no empty day folder
    rec.discard()  # again: nothing left to do


def test_a_taken_run_id_is_drawn_again_and_a_given_one_is_refused(outputs, monkeypatch):
    drawn = iter(["20261127T100000Z-0001", "20261127T100000Z-0001", "20261127T100000Z-0002"])
    monkeypatch.setattr(record, "new_run_id", lambda now=None: next(drawn))
    first = Record.claim(outputs, "provider", started=STARTED)
    second = Record.claim(outputs, "provider", started=STARTED)  # the first is still being written
    assert (first.run_id, second.run_id) == ("20261127T100000Z-0001", "20261127T100000Z-0002")
    first.publish(executed_notebook(), verdict_for(first), Redactor([]))
    with pytest.raises(RunbookError, match="already taken"):
        Record.claim(outputs, "provider", "20261127T100000Z-0001", started=STARTED)
    with pytest.raises(RunbookError, match="may hold only"):
        Record.claim(outputs, "provider", "../elsewhere")
    second.discard()
    assert [p.name for p in (outputs / "2026-11-27").iterdir()] == ["20261127T100000Z-0001"]


def test_outputs_that_cannot_be_written_cost_the_record_not_the_run(outputs, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    with Record.claim(blocker / "outputs", "provider") as rec:
        assert rec.run_id and rec.workdir.is_dir()  # the run goes on
        verdict = verdict_for(rec)
        with pytest.raises(RunFailed, match="cannot create the record directory"):
            rec.publish(executed_notebook(), verdict, Redactor([]))
        assert verdict.record == "" and not rec.published
        with pytest.raises(RunbookError, match="not published"):
            rec.index()
        work = rec.workdir
    assert not work.exists()


def test_an_attachment_is_one_more_checksummed_file(outputs):
    with Record.claim(outputs, "provider") as rec:
        verdict = verdict_for(rec, "ok")
        rec.publish(executed_notebook(), verdict, Redactor([]), attachments={"notes.txt": "gathered at 10:15"})
        rec.index()
    assert (rec.paths.dir / "notes.txt").read_text() == "gathered at 10:15"
    assert sorted(verdict.provenance["checksums"]) == ["notes.txt", "provider.html", "provider.ipynb"]
    assert all(v.ok for v in archive.verify_all(outputs).values())
    for bad in ("provider.json", "../x.txt", ".hidden"):
        with Record.claim(outputs, "provider") as rec, pytest.raises(ValueError, match="not a free file name"):
            rec.publish(executed_notebook(), verdict_for(rec), Redactor([]), attachments={bad: "x"})
    assert len(list(records.record_dirs(outputs))) == 1


def test_what_a_killed_run_left_goes_with_the_next_claim(outputs):
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead_pid = int(gone.stdout)
    day = outputs / "2026-11-27"
    day.mkdir(parents=True)
    (day / f".20261127T090000Z-dead.{dead_pid}.partial").mkdir()
    (day / f".20261127T090000Z-dead.{dead_pid}.partial" / "provider.ipynb").write_text("{}")
    alive = day / f".20261127T090000Z-live.{os.getpid()}.partial"
    alive.mkdir()
    with Record.claim(outputs, "provider", started=STARTED) as rec:
        assert sorted(p.name for p in day.iterdir()) == [alive.name, f".{rec.run_id}.{os.getpid()}.partial"]


def test_run_ids_and_stamps_have_one_definition():
    assert notebook.new_run_id is record.new_run_id and notebook.iso is record.iso and runner.iso is record.iso
    assert record.iso(STARTED) == "2026-11-27T10:15:00Z"
    assert record.new_run_id(STARTED).startswith("20261127T101500Z-")
