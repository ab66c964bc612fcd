"""Streaming a 200 MB provider log over SSH through the SSH source with the log check applied.

Compared with what an operator types by hand on the same twin:
    ssh ... docker logs <provider> 2>&1 | grep -c '<pattern>'
Targets: >= 80 % of that throughput, <= 100 MB peak RSS in the process that reads the log.
The twin runs in its own process; the reader runs in a fresh interpreter so its peak RSS is its own.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import twin_process  # noqa: E402

TARGET_MB = int(os.environ.get("BENCH_LOG_MB", "200"))
CONTAINER = "omni-provider-proxmox-provider-1"
LINE = {"level": "info", "caller": "qruntime/qruntime.go:310", "msg": "reconcile succeeded",
        "context": {"id": "homelab-workers-x7kq2m"}, "fields": {"busy": 0.140967833}}
LINE_BYTES = 260  # a rendered "reconcile succeeded" line with its controller context, measured
ERRORS = 200


def scenario() -> dict:
    n = TARGET_MB * 1_000_000 // LINE_BYTES
    logs = [
        {"ago": n // 10 + 100, "level": "info", "caller": "omni-infra-provider-proxmox/main.go:117",
         "msg": "starting infra provider"},
        {**LINE, "ago": 60, "repeat": n, "every": 0.1},
        {"ago": 0, "level": "error", "caller": "controllers/provision.go:335", "msg": "machine provision failed",
         "context": {"id": "homelab-workers-b7kq2m"}, "repeat": ERRORS, "every": 0.001,
         "fields": {"error": "not authorized to access endpoint", "step": "pickNode"}},
    ]
    return {"name": "big-log", "summary": f"a {TARGET_MB} MB provider log", "expect": [],
            "changes": {"hosts": {"provider": {"containers": {CONTAINER: {"logs": logs}}}}}}


READER = r"""
import json, resource, sys, time
from runbook_lib.calls import CallLog
from runbook_lib.model.provider_log import LOG_CATEGORIES, LOG_TRIGGERS, START_LINE
from runbook_lib.logscan import LogScan
from runbook_lib.site import load_site
from runbook_lib.sources import docker
from runbook_lib.sources.ssh import SSHHost
site = load_site(sys.argv[1])
host = SSHHost(site.hosts.provider, CallLog())
scan = LogScan(LOG_CATEGORIES, triggers=LOG_TRIGGERS, reset=START_LINE)
t0 = time.perf_counter()
docker.logs(host, sys.argv[2], tail=None, timeout=600, on_lines=scan.feed_lines)
seconds = time.perf_counter() - t0
host.close()
print(json.dumps({"seconds": seconds, "bytes": scan.bytes, "lines": scan.lines,
                  "auth_lines": scan.count("proxmox_auth"),
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def by_hand(site_file: Path) -> dict:
    doc = yaml.safe_load(site_file.read_text())
    h = doc["hosts"]["provider"]
    ssh = (f"ssh -T -p {h['port']} -i {h['key_file']} -o UserKnownHostsFile={h['known_hosts']} "
           f"-o StrictHostKeyChecking=yes -o BatchMode=yes -F /dev/null {h['user']}@{h['host']}")
    cmd = f"{ssh} docker logs {CONTAINER} 2>&1 | grep -c 'not authorized to access endpoint'"
    t0 = time.perf_counter()
    out = subprocess.run(cmd, shell=True, capture_output=True, text=True, timeout=600)
    return {"seconds": time.perf_counter() - t0, "count": int(out.stdout.strip() or 0)}


def main() -> dict:
    with twin_process(scenario()) as site_file:
        manual = by_hand(site_file)
        proc = subprocess.run([sys.executable, "-c", READER, str(site_file), CONTAINER],
                              capture_output=True, text=True, timeout=900)
        if proc.returncode:
            raise SystemExit(proc.stderr[-3000:])
        ours = json.loads(proc.stdout)
    mb = ours["bytes"] / 1e6
    figures = {
        "log size (MB)": mb,
        "lines": ours["lines"],
        "ssh | grep -c: seconds": manual["seconds"],
        "ssh | grep -c: MB/s": mb / manual["seconds"],
        "SSH source + log check: seconds": ours["seconds"],
        "SSH source + log check: MB/s": mb / ours["seconds"],
        "throughput vs ssh | grep (target >= 0.8)": manual["seconds"] / ours["seconds"],
        "peak RSS of the reader (MB, target <= 100)": ours["peak_rss_mb"],
        "matching lines: grep / log check": f"{manual['count']} / {ours['auth_lines']}",
    }
    for k, v in figures.items():
        print(f"{k:<45} {v:>10.3f}" if isinstance(v, float) else f"{k:<45} {v:>10}")
    return figures


if __name__ == "__main__":
    main()
