"""What the recovery gathering reads: the provider's teardown log lines and Omni's requests."""

from __future__ import annotations

import json

from runbook_lib.gather.recovery import TeardownLog, summarize_omni

NOW = 1_800_000_000.0
CP, WK = "homelab-control-planes-pnsg8n", "homelab-workers-x7kq2m"


def test_teardown_log_keeps_picks_failures_and_counts_from_the_last_start():
    line = lambda msg, **f: json.dumps({"level": "info", "ts": NOW - 30, "msg": msg, **f},  # noqa: E731
                                       separators=(",", ":"))  # as zap writes it
    scan = TeardownLog(NOW)
    scan.feed_lines("stderr", [
        line("starting infra provider"),
        line("auto-selected node for the Proxmox VM", id=WK, node="pve1"),
        line("reconcile failed", id=WK, error="old process"),
        line("starting infra provider"),
        line("reconcile failed", id=WK, error="500 Internal Server Error"),
        line("reconcile failed", id=WK, error="500 Internal Server Error"),
        line("machine deprovisioned", request_id=CP),
        "Error: not json",
    ])
    s = scan.summary("tail 5000")
    assert s["picks"] == {WK: "pve1"} and s["deprovisioned"] == [CP]
    assert s["failures"][WK]["count"] == 2 and s["failures"][WK]["error"] == "500 Internal Server Error"


def test_summarize_keeps_phase_and_finalizers():
    res = {"metadata": {"id": WK, "phase": "tearingDown", "finalizers": ["proxmox.ProvisionController"],
                        "created": "2026-11-27T10:00:00Z", "updated": "2026-11-27T11:00:00Z",
                        "labels": {"omni.sidero.dev/infra-provider-id": "proxmox",
                                   "omni.sidero.dev/machine-request-set": "homelab-workers"}}, "spec": {}}
    other = {"metadata": {"id": "x", "labels": {"omni.sidero.dev/infra-provider-id": "other"}}, "spec": {}}
    got = summarize_omni("machine_requests", [res, other], "proxmox")
    assert [(r["id"], r["phase"], r["finalizers"], r["set"]) for r in got] == \
        [(WK, "tearingDown", ["proxmox.ProvisionController"], "homelab-workers")]
    assert got[0]["updated"] - got[0]["created"] == 3600
