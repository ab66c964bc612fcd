"""Guarded fixes: plan ids, the apply_fix gate, the write record, the re-check; then the argocd fix end to end."""

from __future__ import annotations

import pytest

from runbook_lib.errors import PermissionDenied
from runbook_lib.fixes import Change, FixRefused, Plan, offer, run, select
from runbook_lib.verdict import Finding

RESTART = Change("kubernetes lab", "restart", "StatefulSet", "argocd-application-controller", "argocd", why="cache")
LABEL = Change("kubernetes lab", "patch", "Namespace", "monitoring",
               body={"metadata": {"labels": {"pod-security.kubernetes.io/enforce": "privileged"}}})


def plan(*changes: Change, finding: str = "argocd.stale_error_cache") -> Plan:
    return Plan(finding=finding, title="t", changes=tuple(changes or (RESTART,)), recheck=(finding,))


def problem(fid: str = "argocd.stale_error_cache") -> Finding:
    return Finding(fid, "problem", "cached error", ["e1"], "restart it")


def test_plan_id_is_stable_and_changes_with_the_changes():
    assert plan().id == plan().id
    assert plan().id.startswith("stale_error_cache-") and len(plan().id.split("-")[-1]) == 10
    assert plan(RESTART).id != plan(RESTART, LABEL).id
    other_ns = Change("kubernetes lab", "restart", "StatefulSet", "argocd-application-controller", "argo")
    assert plan(other_ns).id != plan().id
    other_body = Change("kubernetes lab", "patch", "Namespace", "monitoring",
                        body={"metadata": {"labels": {"pod-security.kubernetes.io/enforce": "baseline"}}})
    assert plan(other_body).id != plan(LABEL).id
    reworded = Change(RESTART.target, RESTART.verb, RESTART.kind, RESTART.name, RESTART.namespace, why="other words")
    assert plan(reworded).id == plan().id  # prose is not part of the change


def test_changes_describe_exactly_what_is_sent():
    assert LABEL.describe() == ('PATCH Namespace monitoring: {"metadata": {"labels": '
                                '{"pod-security.kubernetes.io/enforce": "privileged"}}}')
    assert "restartedAt" in RESTART.describe() and "<time of apply>" in RESTART.describe()
    assert Change("k", "delete", "NetworkPolicy", "x", "argocd").describe() == "DELETE NetworkPolicy argocd/x"
    with pytest.raises(ValueError):
        Change("k", "patch", "Namespace", "x")
    with pytest.raises(ValueError):
        Change("k", "create", "Namespace", "x")
    text = plan().text()
    assert plan().id in text and f"-p apply_fix {plan().id}" in text


def test_select_needs_the_exact_id():
    p = plan()
    assert select([p], "") is None and select([p], "  ") is None
    assert select([p], p.id) is p
    assert select([p], f" {p.id} ") is p
    with pytest.raises(FixRefused, match="names no plan of this run"):
        select([p], plan(LABEL).id)
    with pytest.raises(FixRefused, match="none"):
        select([], p.id)


class Recorder:
    def __init__(self, fail_on: str | None = None):
        self.done: list[str] = []
        self.fail_on = fail_on

    def __call__(self, change: Change) -> str:
        if change.kind == self.fail_on:
            raise PermissionDenied("kubernetes lab", "403 Forbidden: cannot patch namespaces")
        self.done.append(change.describe())
        return "resourceVersion 7"


def test_no_request_means_no_write():
    rec = Recorder()
    record = run([plan()], "", execute=rec, recheck=lambda ids: pytest.fail("no re-check"), findings=[problem()])
    assert rec.done == [] and not record.applied and not record.refused and record.plan is None
    assert record.findings([problem()]) == [problem()]


def test_a_wrong_id_is_refused_and_writes_nothing():
    rec = Recorder()
    record = run([plan()], "stale_error_cache-0000000000", execute=rec, recheck=lambda ids: [],
                 findings=[problem()])
    assert rec.done == [] and record.refused and "stale_error_cache-0000000000" in record.reason


def test_apply_then_recheck_until_ok():
    rec = Recorder()
    answers = [[problem()], [Finding("argocd.stale_error_cache", "ok", "clean", ["no errors"])]]
    asked = []

    def recheck(ids):
        asked.append(ids)
        return answers.pop(0)

    p = plan()
    other = Finding("argocd.endpoints_none", "ok", "fine")
    record = run([plan(LABEL, finding="argocd.podsecurity_violation"), p], p.id, execute=rec, recheck=recheck,
                 findings=[problem(), other], wait=5, interval=0.01)
    assert rec.done == [RESTART.describe()] and record.applied and record.rechecks == 2
    assert asked == [("argocd.stale_error_cache",)] * 2
    assert [s.outcome for s in record.steps] == ["ok"]
    table = record.frame()
    assert table.to_dict("records") == [{"finding": "argocd.stale_error_cache", "before": "problem", "after": "ok",
                                         "now": "clean"}]
    merged = {f.id: f for f in record.findings([problem(), other])}
    assert merged["argocd.stale_error_cache"].status == "ok"
    assert merged["argocd.stale_error_cache"].evidence[0].startswith(f"fix plan {p.id} applied (1/1 change(s) ok)")
    assert "before it: problem: cached error" in merged["argocd.stale_error_cache"].evidence[0]
    assert merged["argocd.endpoints_none"] is other


def test_recheck_gives_up_after_the_wait():
    p = plan()
    record = run([p], p.id, execute=Recorder(), recheck=lambda ids: [problem()], findings=[problem()],
                 wait=0.05, interval=0.01)
    assert record.rechecks >= 2 and record.after[0].status == "problem"


def test_a_failed_change_stops_the_plan():
    p = plan(LABEL, RESTART)
    rec = Recorder(fail_on="Namespace")
    record = run([p], p.id, execute=rec, recheck=lambda ids: [problem()], findings=[problem()], wait=0)
    assert rec.done == [] and [s.outcome for s in record.steps] == ["error", "not run"]
    assert "403 Forbidden" in record.steps[0].detail and not record.applied and "in part" in record.reason


def test_offer_adds_the_command_to_problems_only():
    p = plan()
    ok = Finding("argocd.endpoints_none", "ok", "fine")
    out = offer([problem(), ok], [p], "runbook run argocd")
    assert out[0].fix.startswith("restart it Or let the runbook do it: `runbook run argocd -p apply_fix ")
    assert p.id in out[0].fix and out[1] is ok


# --- end to end: the argocd runbook against the stale-cache scenario --------------------------------
@pytest.mark.runbook
def test_argocd_fix_is_shown_then_applied_only_when_named(tmp_path):
    import json

    from runbook_lab.twin import Twin
    from runbook_lib.runner import run_runbook

    out = tmp_path / "outputs"
    with Twin("argocd-stale-cache") as twin:
        shown = run_runbook("argocd", site_file=twin.site_file, outputs_dir=out)
        assert shown.exit_code == 2 and twin.writes() == []
        (finding,) = shown.verdict.problems
        plan_id = finding.fix.split("apply_fix ")[1].split("`")[0]
        notebook = shown.paths["notebook"].read_text()
        assert f"plan {plan_id}: Restart the Argo CD application controller" in notebook
        assert "PATCH StatefulSet argocd/argocd-application-controller" in notebook

        refused = run_runbook("argocd", site_file=twin.site_file, outputs_dir=out,
                              parameters={"apply_fix": "stale_error_cache-0123456789"})
        assert refused.exit_code == 3 and "names no plan of this run" in refused.verdict.error
        assert refused.verdict.status_of("argocd.stale_error_cache") == "problem"  # the findings are kept
        assert twin.writes() == []

        applied = run_runbook("argocd", site_file=twin.site_file, outputs_dir=out,
                              parameters={"apply_fix": plan_id, "recheck_timeout": 10})
        writes = twin.writes()
    assert applied.exit_code == 0, applied.verdict.text()
    assert [(w["action"].split(" ")[0], w["status"]) for w in writes] == [("PATCH", 200)]
    assert writes[0]["action"] == "PATCH /apis/apps/v1/namespaces/argocd/statefulsets/argocd-application-controller"
    fixed = next(f for f in applied.verdict.findings if f.id == "argocd.stale_error_cache")
    assert fixed.status == "ok" and fixed.evidence[0].startswith(f"fix plan {plan_id} applied (1/1 change(s) ok)")
    recorded = [c for c in applied.verdict.calls if c["write"]]
    assert len(recorded) == 1 and recorded[0]["outcome"] == "ok" and "restartedAt" in recorded[0]["action"]
    doc = json.loads(applied.paths["notebook"].read_text())
    text = json.dumps(doc)
    assert "before" in text and "after" in text and "applied" in text
    # the write is visible everywhere a person or an alert looks, first
    from runbook_lib import archive, records
    from runbook_lib.cli import main, verdict_text

    first = verdict_text(applied).splitlines()[0]
    assert first.startswith(f"CHANGED: {plan_id}: PATCH /apis/apps/v1/namespaces/argocd/statefulsets/"
                            "argocd-application-controller")
    assert shown.verdict.changed_line() == "" and not verdict_text(shown).startswith("CHANGED")
    entry = archive.find(out, applied.verdict.run_id)
    assert entry["writes"] == 1 and archive.find(out, shown.verdict.run_id)["writes"] == 0
    assert "CHANGED(1 write)" in archive.format_row(entry) and "CHANGED" not in archive.format_row(
        archive.find(out, shown.verdict.run_id))
    assert archive.show(out, entry).splitlines()[0].startswith(f"CHANGED: {plan_id}:")
    assert main(["records", "list", "--outputs", str(out)]) == 0
    assert records.read_index(out)[-1]["writes"] == 1
