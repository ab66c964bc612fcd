"""The ``runbook`` command: exit statuses, messages, --json, --lab, and the background twin's state.

The lab twin itself is the lead's (runbook_lab); here a stand-in Twin class records what the
command asked of it, and a stand-in process plays a `lab up` twin for `lab site` / `lab down`.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import types
from pathlib import Path

import pytest

from runbook_lib import cli

DATA = Path(__file__).parent / "data"


def write_site(path: Path, token_secret: str = "env:CLI_SITE_TOKEN") -> Path:
    """A minimal valid site file (see runbook_lib/site.py)."""
    path.write_text(
        "name: clisite\n"
        "omni:\n  url: https://127.0.0.1:8099\n"
        "hosts:\n  omni: {host: 127.0.0.1}\n  provider: {host: 127.0.0.1}\n"
        "proxmox:\n  c1:\n    endpoints: [https://127.0.0.1:8006]\n"
        '    token_id: "runbook@pve!audit"\n'
        f"    token_secret: {token_secret}\n"
        "provider: {cluster: c1}\n",
        encoding="utf-8",
    )
    return path


@pytest.fixture
def env(tmp_path, monkeypatch):
    monkeypatch.setenv("RUNBOOK_NOTEBOOKS", str(DATA))
    monkeypatch.setenv("RUNBOOK_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("RUNBOOK_OUTPUTS", str(tmp_path / "outputs"))
    monkeypatch.setenv("JUPYTER_PATH", "")
    monkeypatch.delenv("RUNBOOK_SITE", raising=False)
    return tmp_path


# --- errors the user can cause ---------------------------------------------------------------------

def test_bad_site_file_names_the_field_and_exits_3_without_traceback(env, capsys):
    bad = write_site(env / "bad.yaml", token_secret="literal-token-value")
    assert cli.main(["run", "echo", "--site", str(bad)]) == 3
    out, err = capsys.readouterr()
    assert out == ""
    assert "proxmox.c1.token_secret" in err and "secret reference" in err
    assert "Traceback" not in err and "literal-token-value" not in err


def test_bad_site_file_via_the_installed_command(env):
    bad = write_site(env / "bad.yaml", token_secret="literal-token-value")
    proc = subprocess.run([sys.executable, "-m", "runbook_lib.cli", "run", "echo", "--site", str(bad)],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 3
    assert "proxmox.c1.token_secret" in proc.stderr and "Traceback" not in proc.stderr


def test_unknown_section_lists_the_available_ones(env, capsys):
    site = write_site(env / "site.yaml")
    assert cli.main(["run", "nosuch", "--site", str(site)]) == 3
    err = capsys.readouterr().err
    assert "unknown runbook 'nosuch'" in err and "echo" in err and "Traceback" not in err


def test_a_secret_parameter_literal_is_refused(env, capsys):
    site = write_site(env / "site.yaml")
    assert cli.main(["run", "echo", "--site", str(site), "-p", "password", "hunter2-literal"]) == 3
    err = capsys.readouterr().err
    assert "parameters hold references" in err and "hunter2-literal" not in err


def test_no_site_anywhere_is_a_clear_error(env, capsys):
    assert cli.main(["run", "echo"]) == 3
    err = capsys.readouterr().err
    assert "--site" in err and "RUNBOOK_SITE" in err and "lab up" in err


def test_usage_errors_exit_3_not_2(env, capsys):
    with pytest.raises(SystemExit) as stop:
        cli.main(["run", "echo", "--no-such-flag"])
    assert stop.value.code == 3  # 2 would read as "a problem was found"


# --- real runs -----------------------------------------------------------------------------------------

def test_run_json_prints_the_verdict_file_and_exits_with_its_status(env, monkeypatch, capsys):
    monkeypatch.setenv("CLI_SITE_TOKEN", "cli-site-token-value")
    monkeypatch.setenv("RUNBOOK_SITE", str(write_site(env / "site.yaml")))  # no --site: from the env
    assert cli.main(["run", "echo", "-p", "mode", "problem", "--json", "--no-progress"]) == 2
    printed = json.loads(capsys.readouterr().out)
    assert printed["findings"][0]["status"] == "problem"
    assert printed["site"] == "clisite"
    record = Path(printed["record"])
    assert record.parts[0] == "outputs"
    on_disk = json.loads((env / record).with_suffix(".json").read_text())
    assert printed == on_disk


class FakeTwin:
    """Stands in for runbook_lab.twin.Twin: records calls, writes a site file."""

    instances: list["FakeTwin"] = []
    workdir: Path

    def __init__(self, scenario=None):
        self.scenario = scenario
        self.started = self.stopped = False
        FakeTwin.instances.append(self)

    def start(self) -> Path:
        self.started = True
        return write_site(self.workdir / f"twin-site-{len(FakeTwin.instances)}.yaml")

    def stop(self) -> None:
        self.stopped = True


@pytest.fixture
def fake_twin(env, monkeypatch):
    FakeTwin.instances = []
    FakeTwin.workdir = env
    module = types.ModuleType("runbook_lab.twin")
    module.Twin = FakeTwin
    monkeypatch.setitem(sys.modules, "runbook_lab.twin", module)
    monkeypatch.setenv("CLI_SITE_TOKEN", "cli-site-token-value")
    return FakeTwin


def test_lab_run_starts_the_twin_and_stops_it(fake_twin, capsys):
    assert cli.main(["run", "echo", "--lab", "-p", "mode", "unknown"]) == 1
    (twin,) = fake_twin.instances
    assert twin.scenario is None and twin.started and twin.stopped
    assert "UNKNOWN" in capsys.readouterr().out


def test_lab_run_stops_the_twin_when_the_run_cannot_happen(fake_twin, capsys):
    assert cli.main(["run", "echo", "--lab", "key-invalid", "--timeout", "0.000001"]) == 3
    (twin,) = fake_twin.instances
    assert twin.scenario == "key-invalid" and twin.stopped


def test_a_run_that_cannot_start_starts_no_twin(fake_twin, capsys):
    assert cli.main(["run", "nosuch", "--lab", "key-invalid"]) == 3
    assert "unknown runbook" in capsys.readouterr().err
    assert cli.main(["run", "echo", "--lab", "-p", "mode", "sideways"]) == 3
    err = capsys.readouterr().err
    assert "parameter 'mode' expects one of ok, problem, unknown" in err and "'sideways'" in err
    assert fake_twin.instances == []  # refused before anything was started or contacted


def test_lab_scenarios_lists_names_and_expected_ids(env, monkeypatch, capsys):
    module = types.ModuleType("runbook_lab.model")
    docs = {"key-invalid": {"name": "key-invalid", "summary": "The key is revoked.\nMore.",
                            "expect": ["provider.key_invalid", "provider.unhealthy"], "changes": {}},
            "healthy": {"name": "healthy", "summary": "All fine.", "expect": [], "changes": {}}}
    module.list_scenarios = lambda: {n: env / f"{n}.yaml" for n in docs}
    module.load_scenario = lambda name: docs[name]
    monkeypatch.setitem(sys.modules, "runbook_lab.model", module)
    assert cli.main(["lab", "scenarios"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["healthy", "expects", "(nothing:", "healthy)"]
    assert lines[2].split()[:3] == ["key-invalid", "expects", "provider.key_invalid,"]
    assert "The key is revoked." in lines[3] and "More." not in lines[3]


# --- the background twin's state ---------------------------------------------------------------------

@pytest.fixture
def stand_in(env):
    """A process that looks like `python -m runbook_lab serve` to the pid guard."""
    procs = []

    def spawn(looks_like_twin=True):
        argv = [sys.executable, "-c", "import time; time.sleep(60)"]
        if looks_like_twin:
            argv.append("runbook_lab")
        proc = subprocess.Popen(argv, start_new_session=True)
        procs.append(proc)
        lab = env / "home" / "lab"
        lab.mkdir(parents=True, exist_ok=True)
        site = write_site(lab / "site.yaml")
        (lab / "ready").write_text(json.dumps({"site": str(site), "pid": proc.pid}))
        return proc, site

    yield spawn
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=5)


def test_lab_site_and_down_manage_a_running_twin(env, stand_in, capsys):
    proc, site = stand_in()
    assert cli.main(["lab", "site"]) == 0
    assert capsys.readouterr().out.strip() == str(site)
    assert cli._site_for_run(cli.build_parser().parse_args(["run", "echo"])) == site
    assert cli.main(["lab", "up"]) == 3
    assert "already running" in capsys.readouterr().err

    started = time.monotonic()
    assert cli.main(["lab", "down"]) == 0
    assert proc.wait(timeout=1) is not None and time.monotonic() - started < 5
    assert not (env / "home" / "lab").exists()
    assert cli.main(["lab", "site"]) == 1


def test_a_recycled_pid_is_not_taken_for_a_twin(env, stand_in, capsys):
    proc, _ = stand_in(looks_like_twin=False)
    assert cli.main(["lab", "site"]) == 1
    assert cli.main(["lab", "down"]) == 0
    assert "no lab twin was running" in capsys.readouterr().err
    time.sleep(0.2)
    assert proc.poll() is None  # not ours to stop


@pytest.mark.parametrize("how", ["exits 1", "interrupted"])
def test_lab_jupyter_stops_the_twin_however_jupyter_ends(env, monkeypatch, capsys, how):
    calls = []
    monkeypatch.setattr(cli, "lab_up", lambda scenario: calls.append(("up", scenario)) or {"site": "/s.yaml", "pid": 1})
    monkeypatch.setattr(cli, "lab_down", lambda: calls.append(("down",)) or True)
    monkeypatch.setattr(cli.os, "geteuid", lambda: 0)
    script = ("import sys; sys.exit(1)" if how == "exits 1" else
              "import os, signal, time; os.kill(os.getppid(), signal.SIGTERM); time.sleep(30)")
    seen, real = {}, cli.jupyter_argv

    def argv(folder, *, as_root):
        seen["as_root"] = as_root
        return [sys.executable, "-c", script]

    monkeypatch.setattr(cli, "jupyter_argv", argv)
    code = cli.main(["lab", "jupyter", "key-invalid"])
    assert code == (1 if how == "exits 1" else 143)
    assert calls == [("up", "key-invalid"), ("down",)] and seen["as_root"]
    assert real("notebooks", as_root=True)[-1] == "--allow-root"
    assert "--allow-root" not in real("notebooks", as_root=False)


def test_the_record_path_is_shown_from_where_the_user_stands(env, monkeypatch, capsys):
    site = write_site(env / "site.yaml")
    (env / "here").mkdir()
    monkeypatch.chdir(env / "here")
    assert cli.main(["run", "echo", "--site", str(site), "--outputs", "../deep/outputs", "--no-progress"]) == 0
    line = next(x for x in capsys.readouterr().out.splitlines() if x.strip().startswith("record:"))
    shown = line.split("record:", 1)[1].strip()
    assert Path(shown).is_file() and shown.endswith("echo.ipynb")  # openable as printed, from here
    assert cli.shown_path(env / "here" / "x" / "y.ipynb") == "x/y.ipynb"
    assert cli.shown_path(env / "deep") == str(env / "deep")  # above the current directory: absolute


def test_a_record_that_cannot_be_written_still_prints_the_verdict(env, capsys):
    site = write_site(env / "site.yaml")
    blocker = env / "a-file"
    blocker.write_text("")
    code = cli.main(["run", "echo", "--site", str(site), "--outputs", str(blocker / "outputs"),
                     "-p", "mode", "problem"])
    out, err = capsys.readouterr()
    assert code == 3 and "Traceback" not in err
    assert "RUN FAILED: the record could not be written" in out and "echo.mode" in out  # the findings too


def test_an_unexpected_failure_is_one_line_and_exit_3(env, monkeypatch, capsys):
    from runbook_lib import runner

    def boom(*a, **kw):
        raise ValueError("something\nbroke")

    monkeypatch.setattr(runner, "run_runbook", boom)
    site = str(write_site(env / "site.yaml"))
    assert cli.main(["run", "echo", "--site", site]) == 3
    assert capsys.readouterr().err == "runbook: ValueError: something broke\n"
    assert cli.main(["run", "echo", "--site", site, "--debug"]) == 3
    assert "Traceback (most recent call last)" in capsys.readouterr().err


def test_lab_modules_import_asyncssh_without_dsa_warnings():
    proc = subprocess.run([sys.executable, "-W", "default", "-c",
                           "import runbook_lab.ssh_server, runbook_lab.twin"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "DSA" not in proc.stderr and "Warning" not in proc.stderr


def test_a_check_stopped_by_sigterm_still_writes_its_alert_files(env, monkeypatch, capsys):
    import signal

    from runbook_lib import alerts, interrupts

    def stopped(*a, **kw):
        raise interrupts.Interrupted(signal.SIGTERM)

    monkeypatch.setattr(alerts, "run_check", stopped)
    monkeypatch.delenv("RUNBOOK_NOTEBOOKS")  # the real health notebook: its parameters are checked first
    prom = env / "health.prom"
    code = cli.main(["check", "--site", str(write_site(env / "site.yaml")), "--prometheus", str(prom)])
    assert code == 143
    text = prom.read_text()
    assert 'runbook_last_run_exit_code{runbook="health",site=""} 3.0' in text
    err = capsys.readouterr().err
    assert "alert files written" in err and "interrupted by SIGTERM" in err


def test_each_records_verb_has_its_own_function():
    parser = cli.build_parser()
    for verb, extra in (("list", []), ("show", ["last"]), ("html", ["last"]), ("diff", ["last"]), ("verify", []),
                        ("rebuild", []), ("prune", [])):
        assert parser.parse_args(["records", verb, *extra]).func is getattr(cli, f"cmd_records_{verb}")
