"""Headless runs end to end with papermill on tests/data/echo.ipynb.

The echo notebook resolves the ``leak`` parameter (a secret reference), prints the value, raises
when ``mode`` says so, and writes a verdict whose one finding follows ``mode``. Each mode runs
once (module fixture); the tests read what those runs left behind.
"""

from __future__ import annotations

import json
import re
import secrets
import sys
import tempfile
from pathlib import Path

import nbformat
import pytest

from runbook_lib import record, records, runner
from runbook_lib.errors import RunbookError, SiteError

DATA = Path(__file__).parent / "data"
CANARY = f"canary-{secrets.token_hex(8)}"  # resolved by the notebook through the redact file
SITE_CANARY = f"sitecanary-{secrets.token_hex(8)}"  # only in the site file's token_secret

CONTRACT_KEYS = {"runbook", "run_id", "site", "started", "finished", "parameters", "findings", "root_causes",
                 "calls", "record"}
FINDING_KEYS = {"id", "status", "summary", "evidence", "fix"}
RUN_ID = re.compile(r"^\d{8}T\d{6}Z-[0-9a-f]{4}$")
STAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")

MODES = {  # mode -> (extra run_runbook arguments, expected exit code)
    "ok": ({}, 0),
    "problem": ({}, 2),
    "unknown": ({}, 1),
    "crash": ({}, 3),
    "crash_after_verdict": ({}, 3),
    "sleep": ({"timeout": 2}, 3),
}


def write_site(path: Path, token_secret: str = "env:SITE_TOKEN_VAR") -> Path:
    """A minimal valid site file (see runbook_lib/site.py)."""
    path.write_text(
        "name: testsite\n"
        "omni:\n  url: https://127.0.0.1:8099\n"
        "hosts:\n  omni: {host: 127.0.0.1}\n  provider: {host: 127.0.0.1}\n"
        "proxmox:\n  c1:\n    endpoints: [https://127.0.0.1:8006]\n"
        '    token_id: "runbook@pve!audit"\n'
        f"    token_secret: {token_secret}\n"
        "provider: {cluster: c1}\n",
        encoding="utf-8",
    )
    return path


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    root = tmp_path_factory.mktemp("runner")
    tmp = root / "tmp"
    tmp.mkdir()
    # a decoy for the kernel the echo notebook names ("python3"): a kernel that exits at once.
    # Runs only succeed if the runner uses its own kernel instead of the notebook's.
    decoy = root / "decoy" / "kernels" / "python3"
    decoy.mkdir(parents=True)
    (decoy / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-c", "raise SystemExit(7)", "{connection_file}"],
        "display_name": "decoy", "language": "python"}))
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("RUNBOOK_NOTEBOOKS", str(DATA))
        mp.setenv("RUNBOOK_HOME", str(root / "home"))
        mp.setenv("JUPYTER_PATH", str(root / "decoy"))  # restored afterwards
        mp.setenv("CANARY_VAR", CANARY)
        mp.setenv("SITE_TOKEN_VAR", SITE_CANARY)
        mp.delenv("RUNBOOK_OUTPUTS", raising=False)
        mp.setattr(tempfile, "tempdir", str(tmp))  # where the runner's private work dirs go
        yield {"root": root, "tmp": tmp, "outputs": root / "outputs",
               "site": write_site(root / "site.yaml")}


@pytest.fixture(scope="module")
def runs(env):
    out = {}
    for mode, (extra, _) in MODES.items():
        out[mode] = runner.run_runbook(
            "echo", site_file=env["site"], parameters={"mode": mode, "leak": "env:CANARY_VAR"},
            outputs_dir=env["outputs"], **extra)
    return out


def read_nb(result) -> nbformat.NotebookNode:
    return nbformat.read(result.paths["notebook"], as_version=4)


def outputs_text(nb) -> str:
    return json.dumps([c.get("outputs", []) for c in nb.cells])


# --- exit codes, layout, contract -----------------------------------------------------------------

@pytest.mark.parametrize("mode", list(MODES))
def test_exit_code_follows_the_findings(runs, mode):
    assert runs[mode].exit_code == MODES[mode][1]
    assert runs[mode].verdict.exit_code() == MODES[mode][1]


@pytest.mark.parametrize("mode", list(MODES))
def test_record_files_are_where_the_layout_says(env, runs, mode):
    r = runs[mode]
    run_id = r.verdict.run_id
    assert RUN_ID.match(run_id)
    day = f"{run_id[:4]}-{run_id[4:6]}-{run_id[6:8]}"
    assert r.record_dir == env["outputs"] / day / run_id
    for kind, suffix in (("notebook", ".ipynb"), ("verdict", ".json"), ("html", ".html")):
        assert r.paths[kind] == r.record_dir / f"echo{suffix}"
        assert r.paths[kind].is_file()
        assert r.paths[kind].stat().st_mode & 0o077 == 0  # records are private to their owner
    assert sorted(p.name for p in r.record_dir.iterdir()) == ["echo.html", "echo.ipynb", "echo.json"]


@pytest.mark.parametrize("mode", ["ok", "problem", "crash"])
def test_verdict_json_has_the_contract_keys(env, runs, mode):
    r = runs[mode]
    doc = json.loads(r.paths["verdict"].read_text())
    assert CONTRACT_KEYS <= set(doc)
    assert doc == r.verdict.to_dict()
    assert doc["runbook"] == "echo" and doc["site"] == "testsite"
    assert STAMP.match(doc["started"]) and STAMP.match(doc["finished"])
    assert doc["started"] <= doc["finished"]
    assert doc["record"] == f"outputs/{r.record_dir.parent.name}/{doc['run_id']}/echo.ipynb"
    assert (env["outputs"].parent / doc["record"]).resolve() == r.paths["notebook"]
    assert doc["parameters"] == {"site_file": str(env["site"]), "mode": mode, "leak": "env:CANARY_VAR"}
    for finding in doc["findings"]:
        assert set(finding) == FINDING_KEYS | ({"explained_by"} if finding["status"] == "problem" else set())
    problems = [f["id"] for f in doc["findings"] if f["status"] == "problem"]
    assert doc["root_causes"] == problems  # one problem, explained by nothing: the root cause


def test_findings_follow_the_notebook(runs):
    assert runs["ok"].verdict.status_of("echo.mode") == "ok"
    assert runs["problem"].verdict.status_of("echo.mode") == "problem"
    assert runs["unknown"].verdict.status_of("echo.mode") == "unknown"


# --- failures keep their record -----------------------------------------------------------------

def test_a_failing_cell_keeps_the_record_with_the_error(runs):
    r = runs["crash"]
    assert "RuntimeError" in r.verdict.error and "crash requested" in r.verdict.error
    assert r.verdict.findings == []  # it failed before the verdict cell
    nb = read_nb(r)
    errors = [o for c in nb.cells for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert errors and errors[0]["ename"] == "RuntimeError"
    assert nb.metadata.papermill.exception is True


def test_findings_written_before_a_failure_are_kept(runs):
    r = runs["crash_after_verdict"]
    assert "crash requested after the verdict" in r.verdict.error
    assert r.verdict.status_of("echo.mode") == "ok"


def test_a_cell_over_the_timeout_is_stopped_and_recorded(runs):
    r = runs["sleep"]
    assert "longer than 2 s" in r.verdict.error
    assert r.paths["notebook"].is_file()


# --- secrets ------------------------------------------------------------------------------------

def test_canary_is_in_no_file_under_outputs(env, runs):
    files = [p for p in env["outputs"].rglob("*") if p.is_file()]
    assert {p.suffix for p in files} >= {".ipynb", ".json", ".html", ".jsonl"}
    for p in files:
        data = p.read_bytes()
        assert CANARY.encode() not in data, p
        assert SITE_CANARY.encode() not in data, p


def test_the_notebook_did_print_the_secret_and_the_record_masks_it(runs):
    # without this the canary test above could pass because nothing was ever printed
    assert "resolved value: ***" in outputs_text(read_nb(runs["ok"]))
    crash = outputs_text(read_nb(runs["crash"]))
    assert "resolved value: ***" in crash
    assert "crash requested while holding ***" in crash  # the traceback's evalue
    assert "crash requested while holding ***" in runs["crash"].verdict.error


def test_the_site_secrets_are_masked_even_when_the_kernel_never_resolved_them(env, tmp_path):
    values = runner.secret_values(env["site"], None)
    assert SITE_CANARY in values
    # a reference that does not resolve here is skipped, not an error: the record still gets written
    unresolvable = write_site(tmp_path / "site.yaml", token_secret="env:RUNBOOK_TEST_UNSET_VAR")
    assert isinstance(runner.secret_values(unresolvable, None), set)


def test_the_secret_channel_feeds_the_redactor_and_writes_nothing(tmp_path):
    from runbook_lib import secret_channel

    sink = secret_channel.SecretSink(tmp_path)
    try:
        assert secret_channel.send(str(sink.path), "first-secret-value")
        assert secret_channel.send(str(sink.path), "line\nbreak\\secret")
        values = runner.secret_values(None, sink)  # acknowledged: known before send returned
        assert {"first-secret-value", "line\nbreak\\secret"} <= values
        assert [p.name for p in tmp_path.iterdir()] == ["secrets.sock"]  # a socket: no data on disk
    finally:
        sink.close()
    assert not sink.path.exists()


def test_a_secret_looking_parameter_with_a_literal_is_refused(env):
    with pytest.raises(RunbookError, match="parameters hold references") as err:
        runner.run_runbook("echo", site_file=env["site"], parameters={"api_token": "hunter2-literal"},
                           outputs_dir=env["outputs"])
    assert "hunter2-literal" not in str(err.value)


@pytest.mark.parametrize("value, allowed", [
    ("env:PASSWORD_VAR", True), ("file:~/.secrets/pw", True), (True, True), (None, True),
    ("hunter2", False), (12345678, False), (1.5, False), ("", False),
])
def test_secret_looking_parameters_hold_references_or_switches(value, allowed):
    if allowed:
        runner.check_parameters({"password": value, "try_provider_credentials": value})
    else:
        with pytest.raises(RunbookError, match="parameters hold references"):
            runner.check_parameters({"password": value})


def test_parameters_the_notebook_does_not_declare_are_refused(env):
    with pytest.raises(RunbookError, match="no parameter 'mdoe'.*leak, mode"):
        runner.run_runbook("echo", site_file=env["site"], parameters={"mdoe": "crash"},
                           outputs_dir=env["outputs"])
    with pytest.raises(RunbookError, match="set by the runner"):
        runner.run_runbook("echo", site_file=env["site"], parameters={"run_id": "x"},
                           outputs_dir=env["outputs"])


def test_a_site_file_with_a_literal_secret_is_refused_naming_the_field(env, tmp_path):
    bad = write_site(tmp_path / "bad.yaml", token_secret="literal-token-value")
    with pytest.raises(SiteError) as err:
        runner.run_runbook("echo", site_file=bad, outputs_dir=env["outputs"])
    assert "proxmox.c1.token_secret" in str(err.value)
    assert "literal-token-value" not in str(err.value)


def test_an_unknown_runbook_lists_the_available_ones(env):
    with pytest.raises(RunbookError, match=r"unknown runbook 'nosuch'; available: echo"):
        runner.run_runbook("nosuch", site_file=env["site"], outputs_dir=env["outputs"])


# --- kernel, parameters, cleanup, index -----------------------------------------------------------

def test_ensure_kernel_writes_a_findable_spec_for_this_interpreter(env):
    from jupyter_client.kernelspec import KernelSpecManager

    from runbook_lib import kernel

    name = kernel.ensure_kernel()
    assert name == kernel.ensure_kernel()  # idempotent
    spec = KernelSpecManager().get_kernel_spec(name)
    assert spec.argv[:3] == [sys.executable, "-m", "ipykernel_launcher"]
    assert spec.display_name == "runbook (this environment)"
    assert Path(spec.resource_dir).is_relative_to(env["root"] / "home")
    assert (env["root"] / "home" / "jupyter").stat().st_mode & 0o077 == 0
    assert kernel.kernel_name("/other/venv/bin/python") != name


def test_the_kernel_runs_this_interpreter(runs):
    text = "".join(o.get("text", "") for c in read_nb(runs["ok"]).cells for o in c.get("outputs", []))
    found = re.search(r"kernel executable: (\S+)", text)
    assert found and found.group(1) == sys.executable


def test_the_runner_injects_its_parameters(env, runs):
    r = runs["ok"]
    nb = read_nb(r)
    injected = [c for c in nb.cells if "injected-parameters" in c.metadata.get("tags", [])]
    assert len(injected) == 1
    assert "headless = True" in injected[0].source
    assert f'run_id = "{r.verdict.run_id}"' in injected[0].source
    assert nb.metadata.papermill.parameters["site_file"] == str(env["site"])
    assert nb.metadata.papermill.output_path == str(r.paths["notebook"])  # not the temp dir


def test_temporary_directories_are_removed(env, runs):
    assert [p.name for p in env["tmp"].iterdir() if p.name.startswith("runbook-")] == []


def test_the_index_has_one_line_per_run(env, runs):
    lines = (env["outputs"] / "index.jsonl").read_text().splitlines()
    entries = [json.loads(line) for line in lines]
    assert [e["run_id"] for e in entries] == [runs[m].verdict.run_id for m in MODES]
    for mode, e in zip(MODES, entries):
        assert e["exit_code"] == MODES[mode][1]
        assert e["runbook"] == "echo" and e["site"] == "testsite"
        assert (env["outputs"] / e["record"]["notebook"]).is_file()
    by_mode = dict(zip(MODES, entries))
    assert by_mode["problem"]["problems"] == ["echo.mode"]
    assert by_mode["problem"]["counts"]["problem"] == 1
    assert by_mode["ok"]["problems"] == []
    assert records.read_index(env["outputs"]) == entries


def test_run_ids_sort_by_time():
    from datetime import datetime, timezone

    rid = record.new_run_id(datetime(2026, 11, 27, 10, 15, tzinfo=timezone.utc))
    assert RUN_ID.match(rid) and rid.startswith("20261127T101500Z-")


def test_the_kernel_listens_on_unix_sockets_and_its_key_file_goes_once_read(env):
    with runner.KernelSession(env["outputs"]) as session:
        result = runner.run_runbook("echo", site_file=env["site"], outputs_dir=env["outputs"], session=session)
        assert result.exit_code == 0
        km = session.manager()
        assert km.has_kernel and km.transport == "ipc" and km.ip.startswith(str(session.work))
        sockets = sorted(p.name for p in session.work.iterdir())
        assert any(name.startswith("kernel-") for name in sockets)  # ipc endpoints, no TCP port
        assert "kernel.json" not in sockets  # the HMAC key lived on disk only until the kernel read it
    assert not session.work.exists()


def test_a_session_that_runs_nothing_leaves_nothing(env):
    """A triage summary whose records are all there opens a session and never runs anything; its
    kernel is then shut down without its atexit handlers: the session must have made nothing."""
    places = [env["tmp"], env["root"] / "home" / "tmp"]
    before = [sorted(p.iterdir()) if p.exists() else [] for p in places]
    runner.KernelSession(env["outputs"])  # never closed, as in a kernel stopped with SIGKILL
    assert [sorted(p.iterdir()) if p.exists() else [] for p in places] == before
