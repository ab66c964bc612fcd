"""`runbook check`: the health runbook for schedulers, its exit status and its alert files.

The healthy twin and one scenario per `health.*` id run through :func:`alerts.run_check` on one
shared kernel (fast); the installed command is run once for real. The JUnit XML is read with the
standard library's parser (what CI servers do) and the textfile with prometheus_client's own
parser (what node_exporter does).
"""

from __future__ import annotations

import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from runbook_lab.model import list_scenarios, load_scenario
from runbook_lab.twin import Twin
from runbook_lib import alerts, runner
from runbook_lib.verdict import Finding, Verdict

pytestmark = pytest.mark.runbook
HEALTH_IDS = {"health.omni_reachable", "health.omni_services", "health.provider_running",
              "health.provider_registered", "health.proxmox_api", "health.machines_available",
              "health.clusters_healthy"}
SCENARIOS = sorted(n for n in list_scenarios() if n.startswith("health-"))


@pytest.fixture(scope="module")
def checks(tmp_path_factory):
    """name -> (verdict, exit code, junit path, prom path) for healthy and every health scenario."""
    root = tmp_path_factory.mktemp("check")
    out = {}
    with runner.KernelSession(root / "outputs") as session:
        for name in ["healthy", *SCENARIOS]:
            with Twin(None if name == "healthy" else name) as twin:
                junit, prom = root / f"{name}.xml", root / f"{name}.prom"
                verdict, code = alerts.run_check(twin.site_file, outputs_dir=root / "outputs", junit=junit,
                                                 prometheus=prom, session=session)
            out[name] = (verdict, code, junit, prom)
        assert session.starts == 1
    return out


def junit_cases(path: Path) -> dict[str, ET.Element]:
    root = ET.parse(path).getroot()
    assert root.tag == "testsuites"
    suites = root.findall("testsuite")
    assert len(suites) == 1
    return {c.get("name"): c for c in suites[0].findall("testcase")}


def prom_samples(path: Path) -> dict[str, list]:
    families = {f.name: f.samples for f in text_string_to_metric_families(path.read_text())}
    return families


def finding_values(path: Path) -> dict[str, tuple[str, float]]:
    """id -> (status, value); the status is read from the value: it is never a label of the series."""
    samples = prom_samples(path)["runbook_finding"]
    assert all(set(s.labels) == {"runbook", "site", "id"} for s in samples)
    return {s.labels["id"]: ({0: "ok", 1: "unknown", 2: "problem"}[int(s.value)], s.value) for s in samples}


def test_every_health_id_has_a_scenario_that_fails_it():
    failed = set()
    for name in SCENARIOS:
        failed |= {i for i in load_scenario(name)["expect"] if i.startswith("health.")}
    assert failed == HEALTH_IDS


def test_the_healthy_twin_passes_every_check(checks):
    verdict, code, junit, prom = checks["healthy"]
    assert code == 0 and not verdict.error
    cases = junit_cases(junit)
    assert set(cases) == HEALTH_IDS
    assert all(len(c) == 0 for c in cases.values())  # no failure, error or skipped element
    suite = ET.parse(junit).getroot().find("testsuite")
    assert (suite.get("tests"), suite.get("failures"), suite.get("errors")) == ("7", "0", "0")
    assert finding_values(prom) == {i: ("ok", 0.0) for i in HEALTH_IDS}
    samples = prom_samples(prom)
    assert samples["runbook_last_run_exit_code"][0].value == 0
    assert abs(samples["runbook_last_run_timestamp_seconds"][0].value - time.time()) < 600
    assert {s.labels["status"]: s.value for s in samples["runbook_findings"]} == \
        {"problem": 0, "unknown": 0, "ok": 7, "skipped": 0}


@pytest.mark.parametrize("name", SCENARIOS)
def test_each_scenario_fails_exactly_its_checks(checks, name):
    expected = {i for i in load_scenario(name)["expect"] if i.startswith("health.")}
    verdict, code, junit, prom = checks[name]
    assert code == 2, verdict.text()
    assert {f.id for f in verdict.problems} == expected

    cases = junit_cases(junit)
    failed = {n for n, c in cases.items() if c.find("failure") is not None}
    assert failed == expected
    assert not any(c.find("error") is not None for c in cases.values())
    for n in failed:
        failure = cases[n].find("failure")
        assert failure.get("message") and failure.get("type") == "problem"
        assert "fix:" in failure.text  # the evidence and the fix travel with the alert
    assert int(ET.parse(junit).getroot().find("testsuite").get("failures")) == len(expected)
    marked = {n: cases[n].find("failure").get("message") for n in failed}
    assert [n for n, m in marked.items() if m.startswith("root cause 1: ")] == verdict.root_causes[:1]
    assert all(m.startswith(("root cause ", "explained by ")) for m in marked.values())

    values = finding_values(prom)
    assert {i for i, (status, value) in values.items() if status == "problem" and value == 2} == expected
    assert all(value == 0 for i, (status, value) in values.items() if i not in expected)
    assert prom_samples(prom)["runbook_last_run_exit_code"][0].value == 2
    roots = {s.labels["id"]: s.value for s in prom_samples(prom)["runbook_root_cause"] if s.value}
    assert roots == {fid: place for place, fid in enumerate(verdict.root_causes, 1)} and 1 in roots.values()

    line = alerts.summary_line(verdict, code)
    assert "\n" not in line and line.startswith("health PROBLEM") and all(i in line for i in expected)


def test_a_check_that_cannot_run_still_writes_both_files(tmp_path):
    bad = tmp_path / "site.yaml"
    bad.write_text("name: x\nomni: {url: not-a-url}\n")
    verdict, code = alerts.run_check(bad, outputs_dir=tmp_path / "outputs", junit=tmp_path / "j.xml",
                                     prometheus=tmp_path / "p.prom")
    assert code == 3 and "omni.url" in verdict.error
    cases = junit_cases(tmp_path / "j.xml")
    assert list(cases) == ["health.run"] and cases["health.run"].find("error") is not None
    assert prom_samples(tmp_path / "p.prom")["runbook_last_run_exit_code"][0].value == 3
    assert not (tmp_path / "outputs").exists() or not list((tmp_path / "outputs").rglob("*.json"))


def test_unknown_and_skipped_findings_map_to_error_and_skipped(tmp_path):
    verdict = Verdict("health", [Finding("health.proxmox_api", "unknown", "token rejected", ["401"]),
                                 Finding("health.clusters_healthy", "skipped", "no clusters"),
                                 Finding("health.omni_reachable", "ok", "fine")],
                      site="lab", started="2026-11-27T10:00:00Z", finished="2026-11-27T10:00:03Z")
    alerts.write_junit(verdict, tmp_path / "j.xml")
    cases = junit_cases(tmp_path / "j.xml")
    assert cases["health.proxmox_api"].find("error").get("type") == "unknown"
    assert cases["health.clusters_healthy"].find("skipped") is not None
    suite = ET.parse(tmp_path / "j.xml").getroot().find("testsuite")
    assert (suite.get("errors"), suite.get("skipped"), float(suite.get("time"))) == ("1", "1", 3.0)
    alerts.write_prometheus(verdict, tmp_path / "p.prom")
    assert finding_values(tmp_path / "p.prom")["health.proxmox_api"] == ("unknown", 1.0)


def test_the_installed_command_prints_one_line_and_exits_2(tmp_path):
    exe = Path(sys.executable).parent / "runbook"
    junit, prom = tmp_path / "j.xml", tmp_path / "health.prom"
    proc = subprocess.run([str(exe), "check", "--lab", "health-proxmox-api", "--outputs", str(tmp_path / "o"),
                           "--junit", str(junit), "--prometheus", str(prom)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert proc.stdout.count("\n") == 1 and "health.proxmox_api" in proc.stdout
    assert junit_cases(junit)["health.proxmox_api"].find("failure") is not None
    assert finding_values(prom)["health.proxmox_api"] == ("problem", 2.0)


def test_a_finding_keeps_its_series_when_its_status_changes(tmp_path):
    def series(status: str) -> set:
        verdict = Verdict("health", [Finding("health.proxmox_api", status, "x")], site="lab",
                          started="2026-11-27T10:00:00Z", finished="2026-11-27T10:00:01Z")
        alerts.write_prometheus(verdict, tmp_path / f"{status}.prom")
        return {(s.name, tuple(sorted(s.labels.items()))) for fam in
                text_string_to_metric_families((tmp_path / f"{status}.prom").read_text()) for s in fam.samples}

    assert series("ok") == series("problem") == series("unknown")


def test_the_duration_is_the_measured_one_and_writes_are_counted(tmp_path):
    verdict = Verdict("health", [Finding("health.proxmox_api", "ok", "x")], site="lab",
                      started="2026-11-27T10:00:00Z", finished="2026-11-27T10:00:01Z",
                      parameters={"apply_fix": "f-1a2b"}, provenance={"seconds": 2.25},
                      calls=[{"target": "kubernetes lab", "action": "PATCH deployment argocd/argocd-repo-server",
                              "outcome": "ok", "write": True},
                             {"target": "kubernetes lab", "action": "GET pods", "outcome": "ok", "write": False}])
    alerts.write_prometheus(verdict, tmp_path / "p.prom")
    samples = prom_samples(tmp_path / "p.prom")
    assert samples["runbook_last_run_duration_seconds"][0].value == 2.25  # not the 1 s between the stamps
    assert samples["runbook_last_run_writes"][0].value == 1
    line = alerts.summary_line(verdict, 0)
    assert line.splitlines()[0] == "CHANGED: f-1a2b: PATCH deployment argocd/argocd-repo-server on kubernetes lab"


def test_a_run_measures_its_own_duration(checks):
    verdict, *_ = checks["healthy"]
    measured = verdict.provenance["seconds"]
    assert 0 < measured < 600 and alerts.duration(verdict) == measured


def test_unwritable_outputs_still_give_the_verdict_and_the_alert_files(tmp_path, capsys):
    from runbook_lib.cli import main

    blocker = tmp_path / "not-a-directory"
    blocker.write_text("")
    junit, prom = tmp_path / "alerts" / "j.xml", tmp_path / "alerts" / "health.prom"
    code = main(["check", "--lab", "--outputs", str(blocker / "outputs"), "--junit", str(junit),
                 "--prometheus", str(prom)])
    out, err = capsys.readouterr()
    assert code == 3
    assert out.startswith("health FAILED: 7 ok") and "the record could not be written" in out
    assert "Traceback" not in err and f"alert files written: {junit}, {prom}" in err
    assert prom_samples(prom)["runbook_last_run_exit_code"][0].value == 3
    assert set(finding_values(prom).values()) == {("ok", 0.0)}  # the checks themselves ran
    assert "health.run" in junit_cases(junit)
