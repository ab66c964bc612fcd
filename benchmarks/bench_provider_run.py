"""`runbook run provider --lab`: where the time goes, against the floor any runbook pays.

The floor is papermill running an empty notebook on the same kernel, plus the raw calls the
runbook makes (SSH commands, omnictl, Proxmox GETs) made directly, one after another, without
runbook_lib. The raw calls are timed twice: warm (in this process, libraries already imported)
and as a script an operator would run (a fresh interpreter importing paramiko and proxmoxer).
Target: the runbook's wall time (without the twin's start) <= 1.3 x the floor.
"""

from __future__ import annotations

import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import paramiko
import yaml
from proxmoxer import ProxmoxAPI

REPEAT = 3


def raw_calls(site_file: Path) -> None:
    """What the provider runbook asks, made directly: no runbook_lib, no parallelism."""
    doc = yaml.safe_load(site_file.read_text())
    h = doc["hosts"]["provider"]
    client = paramiko.SSHClient()
    client.load_host_keys(h["known_hosts"])
    client.set_missing_host_key_policy(paramiko.RejectPolicy())
    client.connect(h["host"], port=h["port"], username=h["user"], key_filename=h["key_file"],
                   allow_agent=False, look_for_keys=False, timeout=5)
    client.get_transport().sock.setsockopt(6, 1, 1)  # TCP_NODELAY
    name = h["container"]
    for cmd in (["docker", "ps", "-a", "--no-trunc", "--format", "{{json .}}"], ["docker", "inspect", name],
                ["cat", "/opt/omni-provider/config.yaml"], ["docker", "logs", "--tail", "5000", name],
                ["curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}", doc["omni"]["url"] + "/healthz"],
                ["curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}",
                 doc["proxmox"]["matrix"]["endpoints"][0] + "/api2/json/version"]):
        _, out, err = client.exec_command(shlex.join(cmd), timeout=20)
        out.read(), err.read()
    client.close()
    omnictl = doc["omni"]["omnictl"]["binary"]
    for rtype in ("infraproviders", "infraprovidercombinedstatuses", "infraproviderhealthstatuses"):
        subprocess.run([omnictl, "get", rtype, "-o", "json"], capture_output=True, check=True, timeout=20)
    cluster = doc["proxmox"]["matrix"]
    secret = Path(cluster["token_secret"][5:]).read_text().strip()
    user, token = cluster["token_id"].split("!")
    for endpoint in cluster["endpoints"] + cluster["endpoints"][:1]:
        host = endpoint.split("//")[1]
        ProxmoxAPI(host, user=user, token_name=token, token_value=secret, verify_ssl=cluster["ca_file"],
                   timeout=(3, 10)).version.get()


def main() -> dict:

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from _common import empty_notebook_seconds, median_clean_run, median_time, report, run_vs_floor

    from runbook_lab.twin import Twin
    from runbook_lib.calls import CallLog
    from runbook_lib.checks import run_checks
    from runbook_lib.gather import provider as gather
    from runbook_lib.runner import run_runbook
    from runbook_lib.site import load_site

    tmp = Path(tempfile.mkdtemp(prefix="bench-provider-"))
    t0 = time.perf_counter()
    twin = Twin()
    site_file = twin.start()
    t_twin = time.perf_counter() - t0
    try:
        t_empty = empty_notebook_seconds(tmp, REPEAT)
        t_raw = median_time(lambda: raw_calls(site_file), REPEAT)
        t_script = median_time(lambda: subprocess.run(
            [sys.executable, __file__, "--raw-calls", str(site_file)], check=True, timeout=120), REPEAT)
        site = load_site(site_file)
        evs = []
        t_gather = median_time(lambda: evs.append(gather.gather(site, CallLog())), REPEAT)
        t_checks = median_time(lambda: run_checks("provider", evs[-1]), REPEAT)
        t_run = median_clean_run(lambda: run_runbook("provider", site_file=site_file,
                                                      outputs_dir=tmp / "outputs"), REPEAT)
    finally:
        twin.stop()
    figures = {"twin start (s)": t_twin, **run_vs_floor(
        "provider", empty=t_empty, raw=t_raw, script=t_script, gather=t_gather, checks=t_checks, run=t_run)}
    figures["with twin start: runbook run provider --lab (s)"] = t_run + t_twin
    return report(figures)


if __name__ == "__main__":
    if sys.argv[1:2] == ["--raw-calls"]:
        raw_calls(Path(sys.argv[2]))
    else:
        main()
