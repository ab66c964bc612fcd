"""Drills (runbook_lib/drill.py): a twin with a hidden failure, an answer scored, revealed and kept.

The tests marked ``runbook`` start a real background twin (``runbook drill start``, as an operator
would); the others give the drill a stand-in for the twin's supervision, so the scoring and the
records are checked in a few milliseconds. Either way the test knows the scenario the way the
answer finds it: through :func:`drill.choose` with the same ``--section`` and ``--seed``, or by
matching the state file's fingerprint (:func:`drill.match`).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from runbook_lab import model as lab_model
from runbook_lab.twin import SITE_SECRETS
from runbook_lib import archive, catalog, cli, drill, records

SEED = 7


@pytest.fixture
def env(tmp_path, monkeypatch):
    monkeypatch.setenv("RUNBOOK_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("RUNBOOK_OUTPUTS", str(tmp_path / "outputs"))
    monkeypatch.delenv("RUNBOOK_SITE", raising=False)
    return tmp_path


def drawn(section: str | None = "provider", seed: int = SEED) -> dict:
    """The scenario `drill start --section S --seed N` brings up."""
    return lab_model.load_scenario(drill.choose(lab_model.scenario_causes(), section, seed))


def first_line(scenario: dict) -> str:
    return scenario["summary"].strip().splitlines()[0]


# --- drawing and scoring, no twin ------------------------------------------------------------------

def test_the_draw_is_reproducible_with_a_seed_and_stays_in_the_section():
    causes = lab_model.scenario_causes()
    pool = drill.candidates(causes, "storage")
    assert pool and all(causes[n].startswith("storage.") for n in pool)
    assert "healthy" not in drill.candidates(causes)  # no cause: nothing to find
    assert {drill.choose(causes, "storage", 3) for _ in range(5)} == {drill.choose(causes, "storage", 3)}
    assert len({drill.choose(causes, None, seed) for seed in range(40)}) > 5


def test_an_unknown_section_is_refused_by_name():
    with pytest.raises(drill.DrillError, match="unknown section 'nosuch'.*provider"):
        drill.choose(lab_model.scenario_causes(), "nosuch")


def test_scoring_right_partly_wrong():
    assert drill.score("provider.key_invalid", ["provider.key_invalid", "provider.unhealthy"]) == "right"
    assert drill.score("provider.key_invalid", ["provider.unhealthy", "provider.key_invalid"]) == "partly"
    assert drill.score("provider.key_invalid", ["provider.unhealthy"]) == "wrong"
    assert [drill.SCORES[s] for s in ("right", "partly", "wrong")] == [0, 1, 2]


def test_the_state_keeps_a_fingerprint_not_the_name():
    state = {"salt": "abc", "scenario_hmac": drill.fingerprint("abc", "key-invalid")}
    assert "key-invalid" not in json.dumps(state)
    assert drill.match(state, lab_model.list_scenarios()) == "key-invalid"
    assert drill.match({**state, "salt": "other"}, lab_model.list_scenarios()) is None


def test_a_drill_twin_names_no_secret_after_what_the_scenario_made_of_it():
    values: dict = {}
    assert lab_model.fill("${secret:stale_provider_token}", values).startswith("CANARY-stale_provider_token-")
    hidden = lab_model.fill("${secret:stale_provider_token}", {}, named_secrets=False)
    assert hidden.startswith("CANARY-") and "stale" not in hidden


# --- the command, with a stand-in for the twin's supervision ---------------------------------------------

class FakeSupervise:
    """``runbook_lab.supervise`` as the drill uses it: records what it was asked to bring up."""

    def __init__(self, d: Path):
        self.d, self.up_calls, self.down_calls, self.twin = d, [], 0, None

    def up(self, d, scenario=None, *, hidden=False):
        self.up_calls.append((scenario, hidden))
        d.mkdir(parents=True, exist_ok=True)
        (d / "site.yaml").write_text("name: lab\n")
        self.twin = {"site": str(d / "site.yaml"), "pid": 4242, "hidden": hidden}
        return self.twin

    def running(self, d):
        return self.twin

    def down(self, d):
        self.down_calls += 1
        self.twin = None
        return True


@pytest.fixture
def fake(env, monkeypatch):
    supervise = FakeSupervise(env / "home" / "lab")
    modules = {"model": lab_model, "supervise": supervise}
    monkeypatch.setattr(cli, "_lab", lambda name: modules[name])
    return supervise


def index(env) -> list[dict]:
    return records.read_index(env / "outputs")


@pytest.mark.parametrize("how, code", [("right", 0), ("partly", 1), ("wrong", 2)])
def test_an_answer_is_scored_revealed_and_kept_as_a_drill_record(fake, env, capsys, how, code):
    scenario = drawn("storage", 11)
    assert cli.main(["drill", "start", "--section", "storage", "--seed", "11"]) == 0
    assert fake.up_calls == [(scenario["name"], True)]
    capsys.readouterr()
    other = next(i for i in catalog.load().ids() if i not in scenario["expect"])
    knock_on = next((i for i in scenario["expect"] if i != scenario["cause"]), other)
    ids = {"right": [scenario["cause"], knock_on], "partly": [knock_on, scenario["cause"]], "wrong": [other]}[how]

    assert cli.main(["drill", "answer", *ids]) == code
    out = capsys.readouterr().out
    assert out.startswith("drill ") and how.upper() in out.splitlines()[0]
    assert scenario["name"] in out and first_line(scenario)[:40] in " ".join(out.split())
    assert scenario["cause"] in out and "drill stop" in out

    (entry,) = index(env)
    assert entry["kind"] == "drill" and entry["runbook"] == "drill" and entry["exit_code"] == code
    assert entry["drill"]["score"] == how and entry["drill"]["scenario"] == scenario["name"]
    doc = json.loads((env / "outputs" / entry["record"]["verdict"]).read_text())
    assert doc["answer"] == ids and doc["scenario"]["cause"] == scenario["cause"] and doc["seconds"] >= 0
    assert entry["record"]["verdict"].endswith(f"{entry['run_id']}/drill.json")
    assert archive.verify_all(env / "outputs")[entry["run_id"]].ok and archive.verify_chain(env / "outputs") == []
    assert fake.down_calls == 0  # the twin runs on: look again knowing the answer


def test_a_second_answer_is_refused_and_an_unknown_id_first(fake, env, capsys):
    assert cli.main(["drill", "start", "--seed", "1"]) == 0
    assert cli.main(["drill", "answer", "provider.nosuch"]) == 3
    assert "'provider.nosuch'" in capsys.readouterr().err and index(env) == []  # nothing scored yet
    assert cli.main(["drill", "answer", "provider.key_invalid"]) in (0, 1, 2)
    capsys.readouterr()
    assert cli.main(["drill", "answer", "provider.key_invalid"]) == 3
    err = capsys.readouterr().err
    assert "is over" in err and "drill stop" in err and len(index(env)) == 1
    assert cli.main(["drill", "status"]) == 0
    assert "answered     yes" in capsys.readouterr().out


def test_drill_records_are_not_incidents_by_default(fake, env, capsys):
    assert cli.main(["drill", "start", "--seed", "2"]) == 0
    assert cli.main(["drill", "answer", "health.proxmox_api"]) in (0, 2)
    run_id = index(env)[0]["run_id"]
    capsys.readouterr()
    assert cli.main(["records", "list"]) == 0
    assert run_id not in capsys.readouterr().out
    for flags in (["--drills"], ["--kind", "drill"], ["--kind", "all"]):
        assert cli.main(["records", "list", *flags]) == 0
        assert run_id in capsys.readouterr().out
    assert cli.main(["records", "show", run_id]) == 0
    shown = capsys.readouterr().out
    assert "checksums   valid" in shown and "scenario" in shown
    assert cli.main(["records", "diff", run_id]) == 3
    assert "is a drill" in capsys.readouterr().err
    before = index(env)
    archive.rebuild(env / "outputs")  # the index written again from the records keeps the kind
    assert [e["kind"] for e in index(env)] == ["drill"] and index(env)[0]["drill"] == before[0]["drill"]


def test_a_drill_refuses_to_start_beside_another(fake, env, capsys):
    assert cli.main(["drill", "start"]) == 0
    capsys.readouterr()
    assert cli.main(["drill", "start"]) == 3
    assert "is running" in capsys.readouterr().err and len(fake.up_calls) == 1


def test_an_unknown_section_is_refused_before_anything_starts(fake, env, capsys):
    assert cli.main(["drill", "start", "--section", "nosuch"]) == 3
    assert "unknown section 'nosuch'" in capsys.readouterr().err
    assert fake.up_calls == [] and not (env / "home" / "drill").exists()


def test_stop_without_a_drill_says_so(fake, env, capsys):
    assert cli.main(["drill", "stop"]) == 0
    assert "no drill was running" in capsys.readouterr().err
    assert cli.main(["drill", "status"]) == 1
    assert cli.main(["drill", "answer", "provider.key_invalid"]) == 3
    assert "no drill is running" in capsys.readouterr().err


def test_a_lab_twin_already_running_refuses_the_drill(env, capsys):
    """The real supervision: a `runbook lab up` twin (a stand-in process) is there first."""
    lab = env / "home" / "lab"
    lab.mkdir(parents=True)
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)", "runbook_lab"],
                            start_new_session=True)
    try:
        (lab / "ready").write_text(json.dumps({"site": str(lab / "site.yaml"), "pid": proc.pid}))
        assert cli.main(["drill", "start"]) == 3
        assert "already running" in capsys.readouterr().err
        assert not (env / "home" / "drill").exists() and proc.poll() is None  # not ours to stop
    finally:
        proc.kill()
        proc.wait(timeout=5)


# --- a real twin ------------------------------------------------------------------------------------------

def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    return not stat.exists() or stat.read_text().rsplit(")", 1)[1].split()[0] != "Z"


@pytest.mark.runbook
def test_a_real_drill_hides_its_scenario_until_the_answer(env, capsys):
    scenario = drawn("provider", SEED)
    hidden = (scenario["name"], first_line(scenario))
    started = time.monotonic()
    try:
        assert cli.main(["drill", "start", "--section", "provider", "--seed", str(SEED)]) == 0
        took = time.monotonic() - started
        out, err = capsys.readouterr()
        lab, state_dir = env / "home" / "lab", env / "home" / "drill"
        ready = json.loads((lab / "ready").read_text())
        pid = ready["pid"]
        texts = {"output": out + err, "ready file": (lab / "ready").read_text(),
                 "state file": (state_dir / "state.json").read_text(), "twin log": (lab / "twin.log").read_text(),
                 "site file": (lab / "site.yaml").read_text(),
                 "file names": "\n".join(str(p.relative_to(env)) for p in (env / "home").rglob("*")),
                 "command line": Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()}
        for what, text in texts.items():
            for secret in hidden:
                assert secret not in text, f"the {what} names the scenario ({secret!r})"
        assert ready.get("hidden") is True and "scenario" not in ready
        assert {p.name for p in (lab / "secrets").iterdir()} <= set(SITE_SECRETS)
        assert str(lab / "site.yaml") in out and "runbook triage --site" in out and "drill answer" in out
        assert took < 30, f"a drill took {took:.1f} s to start"

        state = drill.read_state(state_dir)
        assert drill.match(state, lab_model.list_scenarios()) == scenario["name"]
        assert cli.main(["lab", "site"]) == 0  # the twin of `runbook lab up`: run/triage find it
        assert capsys.readouterr().out.strip() == str(lab / "site.yaml")

        assert cli.main(["drill", "answer", scenario["cause"]]) == 0
        out = capsys.readouterr().out
        assert "RIGHT" in out and scenario["name"] in out
        assert alive(pid)  # answered: the twin runs on until the drill is stopped
        assert cli.main(["drill", "answer", scenario["cause"]]) == 3
        capsys.readouterr()
        (entry,) = index(env)
        assert entry["kind"] == "drill" and entry["drill"]["score"] == "right"

        assert cli.main(["drill", "stop"]) == 0
        deadline = time.monotonic() + 10
        while alive(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not alive(pid)
        assert not state_dir.exists() and not lab.exists()
        assert cli.main(["drill", "status"]) == 1
    finally:
        cli.main(["drill", "stop"])


def test_a_drill_stopped_unanswered_names_what_it_was(fake, env, capsys):
    assert cli.main(["drill", "start", "--seed", "5", "--section", "omnictl"]) == 0
    started = capsys.readouterr()
    name = drawn("omnictl", 5)["name"]
    assert name not in started.out + started.err  # hidden while it runs
    assert cli.main(["drill", "stop"]) == 0
    err = capsys.readouterr().err
    assert "without an answer" in err and f"it was {name}: " in err
    assert index(env) == []  # nothing recorded
