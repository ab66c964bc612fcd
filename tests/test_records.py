"""Records without a kernel: atomic writes, whole-notebook scrubbing, HTML, the index."""

from __future__ import annotations

import base64
import json
import os
import threading
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

from runbook_lib import records
from runbook_lib.redact import MASK, Redactor
from runbook_lib.verdict import Finding, Verdict

SECRET = "s3cr3t-Value-93xq"
PNG = base64.b64encode(b"\x89PNG\r\n\x1a\n" + SECRET.encode() + b"\x00" * 40).decode()


# --- paths ------------------------------------------------------------------------------------------

def test_outputs_dir_explicit_then_env_then_cwd(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv(records.OUTPUTS_ENV, raising=False)
    assert records.outputs_dir() == tmp_path / "outputs"
    monkeypatch.setenv(records.OUTPUTS_ENV, "elsewhere")
    assert records.outputs_dir() == tmp_path / "elsewhere"
    assert records.outputs_dir("given") == tmp_path / "given"


def test_record_paths_layout(tmp_path):
    p = records.record_paths(tmp_path / "outputs", "20261127T101500Z-3f9c", "provider", "2026-11-27")
    assert p.notebook == tmp_path / "outputs/2026-11-27/20261127T101500Z-3f9c/provider.ipynb"
    assert p.verdict.name == "provider.json" and p.html.name == "provider.html"
    assert p.relative(p.notebook) == "outputs/2026-11-27/20261127T101500Z-3f9c/provider.ipynb"
    assert p.relative(p.notebook, to=p.outputs) == "2026-11-27/20261127T101500Z-3f9c/provider.ipynb"
    assert p.relative(Path("/elsewhere/x")) == "/elsewhere/x"


# --- atomic writes ----------------------------------------------------------------------------------

def test_write_atomic_replaces_whole_file_privately(tmp_path):
    target = tmp_path / "sub" / "f.json"
    records.write_atomic(target, "first")
    records.write_atomic(target, b"second")
    assert target.read_bytes() == b"second"
    assert target.stat().st_mode & 0o777 == 0o600
    assert [p.name for p in target.parent.iterdir()] == ["f.json"]


def test_write_atomic_failure_leaves_the_old_file_and_no_temp(tmp_path, monkeypatch):
    target = tmp_path / "f.json"
    records.write_atomic(target, "old")

    def broken_replace(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(records.os, "replace", broken_replace)
    with pytest.raises(OSError):
        records.write_atomic(target, "new")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["f.json"]


# --- scrubbing --------------------------------------------------------------------------------------

def dirty_notebook():
    params = new_code_cell('mode = "ok"', metadata={"tags": ["parameters"]})
    injected = new_code_cell(f'# Parameters\napi_token = "{SECRET}"\nmode = "x"\n',
                             metadata={"tags": ["injected-parameters"], "note": f"from {SECRET}"})
    cell = new_code_cell("print(value)", outputs=[
        new_output("stream", name="stdout", text=f"value is {SECRET}\n"),
        new_output("display_data", data={
            "text/plain": f"plain {SECRET}",
            "text/html": f"<b>{SECRET}</b>",
            "application/json": {"nested": [f"deep {SECRET}"], "password": "other-literal"},
            "image/png": PNG,
        }),
        new_output("error", ename="RuntimeError", evalue=f"failed with {SECRET}",
                   traceback=[f"\x1b[0;31mRuntimeError\x1b[0m: failed with {SECRET}"]),
    ])
    md = new_markdown_cell(f"notes mention {SECRET}")
    nb = new_notebook(cells=[params, injected, cell, md])
    nb.metadata["papermill"] = {"parameters": {"api_token": "literal-in-metadata", "mode": "x",
                                               "leak": "env:SOME_VAR"},
                                "exception": True}
    nb.metadata["title"] = f"run with {SECRET}"
    return nb


def test_scrub_notebook_masks_every_part():
    clean = records.scrub_notebook(dirty_notebook(), Redactor([SECRET]))
    text = nbformat.writes(clean)
    assert SECRET not in text.replace(PNG, "")
    assert "literal-in-metadata" not in text and "other-literal" not in text
    params = clean.metadata.papermill.parameters
    assert params["api_token"] == MASK
    assert params["leak"] == "env:SOME_VAR" and params["mode"] == "x"  # references and plain values stay
    out = clean.cells[2].outputs
    assert out[0]["text"] == f"value is {MASK}\n"
    assert out[1]["data"]["application/json"]["nested"] == [f"deep {MASK}"]
    assert out[2]["evalue"] == f"failed with {MASK}"
    assert MASK in clean.cells[1].source and MASK in clean.cells[3].source
    nbformat.validate(clean)


def test_scrub_notebook_keeps_binary_payloads_and_leaves_the_input_alone():
    nb = dirty_notebook()
    before = nbformat.writes(nb)
    clean = records.scrub_notebook(nb, Redactor([SECRET]))
    assert clean.cells[2].outputs[1]["data"]["image/png"] == PNG  # untouched, still decodable
    assert nbformat.writes(nb) == before


# --- HTML ---------------------------------------------------------------------------------------

def test_html_hides_inputs_and_shows_outputs():
    nb = new_notebook(cells=[
        new_markdown_cell("# Provider runbook"),
        new_code_cell("unique_input_marker = 1\nprint('visible output marker')",
                      outputs=[new_output("stream", name="stdout", text="visible output marker\n")]),
    ])
    html = records.render_html(nb)
    assert "visible output marker" in html and "Provider runbook" in html
    assert "unique_input_marker" not in html


# --- the index ------------------------------------------------------------------------------------

def test_concurrent_appends_keep_every_line_intact(tmp_path):
    threads, per_thread = 12, 40
    padding = "x" * 9000  # lines larger than a pipe buffer and than stdio's buffer

    def worker(t):
        for i in range(per_thread):
            records.append_index(tmp_path, {"thread": t, "i": i, "pad": padding})

    pool = [threading.Thread(target=worker, args=(t,)) for t in range(threads)]
    for th in pool:
        th.start()
    for th in pool:
        th.join()
    raw = (tmp_path / "index.jsonl").read_text().split("\n")
    assert raw[-1] == ""
    entries = [json.loads(line) for line in raw[:-1]]  # every line parses on its own
    assert len(entries) == threads * per_thread
    assert {(e["thread"], e["i"]) for e in entries} == {(t, i) for t in range(threads)
                                                         for i in range(per_thread)}
    assert all(e["pad"] == padding for e in entries)


def test_read_index_skips_a_torn_line(tmp_path):
    records.append_index(tmp_path, {"run_id": "a"})
    with open(tmp_path / "index.jsonl", "a") as fh:
        fh.write('{"run_id": "tor')
    with open(tmp_path / "index.jsonl", "a") as fh:
        fh.write("\n")
    records.append_index(tmp_path, {"run_id": "b"})
    assert [e["run_id"] for e in records.read_index(tmp_path)] == ["a", "b"]
    assert records.read_index(tmp_path / "none") == []


def test_index_entry_counts_and_problems(tmp_path):
    v = Verdict(runbook="provider", run_id="r1", site="lab", started="s", finished="f", findings=[
        Finding("provider.key_invalid", "problem", "x"),
        Finding("provider.container_down", "problem", "x"),
        Finding("provider.omni_tls", "ok", "x"),
        Finding("provider.unhealthy", "unknown", "x"),
    ])
    paths = records.record_paths(tmp_path, "r1", "provider", "2026-11-27")
    e = records.index_entry(v, paths, v.exit_code())
    assert e["exit_code"] == 2
    assert e["counts"] == {"problem": 2, "unknown": 1, "ok": 1, "skipped": 0}
    assert e["problems"] == ["provider.container_down", "provider.key_invalid"]
    assert e["record"]["notebook"] == "2026-11-27/r1/provider.ipynb"
    assert os.sep not in e["run_id"]
