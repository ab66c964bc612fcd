"""`runbook triage` of the healthy twin, against the floor any triage pays.

A healthy triage is one kernel start, the health runbook (every check's calls, in parallel), and
the summary notebook on the same kernel, each record scrubbed, rendered and checksummed. The
floor is papermill running one empty notebook (a kernel start and nothing else) plus the calls
the health checks make, made directly, one after another, without runbook_lib: `GET /healthz`,
`docker compose ps` and `docker ps` over SSH, six `omnictl get`, and per Proxmox cluster
`GET /version` on every endpoint, `/cluster/status` and `/cluster/resources`.

Target: triage wall time (the twin's start excluded) <= 1.3 x the floor.
"""

from __future__ import annotations

import shlex
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import paramiko
import yaml
from proxmoxer import ProxmoxAPI

REPEAT = 3
OMNICTL_TYPES = ("infraproviders", "infraprovidercombinedstatuses", "machinestatuses", "machinerequeststatuses",
                 "clusters", "clusterstatuses")


def ssh(host: dict, argv: list[str]) -> None:
    client = paramiko.SSHClient()
    client.load_host_keys(host["known_hosts"])
    client.set_missing_host_key_policy(paramiko.RejectPolicy())
    client.connect(host["host"], port=host["port"], username=host["user"], key_filename=host["key_file"],
                   allow_agent=False, look_for_keys=False, timeout=5)
    _, out, err = client.exec_command(shlex.join(argv), timeout=20)
    out.read(), err.read()
    client.close()


def raw_calls(site_file: Path) -> None:
    """What the health checks ask, made directly: no runbook_lib, no parallelism."""
    doc = yaml.safe_load(site_file.read_text())
    ctx = ssl.create_default_context(cafile=doc["omni"]["ca_file"])
    urllib.request.urlopen(doc["omni"]["url"] + "/healthz", context=ctx, timeout=5).read()
    omni_host = doc["hosts"]["omni"]
    ssh(omni_host, ["docker", "compose", "--project-directory", omni_host["compose_dir"], "ps", "--all",
                    "--format", "json"])
    ssh(doc["hosts"]["provider"], ["docker", "ps", "-a", "--no-trunc", "--format", "{{json .}}"])
    omnictl = doc["omni"]["omnictl"]["binary"]
    env = {"OMNI_SERVICE_ACCOUNT_KEY": Path(doc["omni"]["omnictl"]["service_account_key"][5:]).read_text().strip(),
           "OMNI_ENDPOINT": doc["omni"]["url"], "PATH": "/usr/bin:/bin"}
    for rtype in OMNICTL_TYPES:
        subprocess.run([omnictl, "get", rtype, "-o", "json"], capture_output=True, check=True, timeout=20, env=env)
    for cluster in doc["proxmox"].values():
        secret = Path(cluster["token_secret"][5:]).read_text().strip()
        user, token = cluster["token_id"].split("!")
        apis = [ProxmoxAPI(e.split("//")[1], user=user, token_name=token, token_value=secret,
                           verify_ssl=cluster["ca_file"], timeout=(3, 10)) for e in cluster["endpoints"]]
        for api in apis:
            api.version.get()
        apis[0].cluster.status.get()
        apis[0].cluster.resources.get(type="vm")


def main() -> dict:
    import papermill

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from _common import empty_notebook, median_time

    from runbook_lib.kernel import ensure_kernel
    from runbook_lib.lab.twin import Twin
    from runbook_lib.runner import KernelSession
    from runbook_lib.triage import run_triage

    tmp = Path(tempfile.mkdtemp(prefix="bench-triage-"))
    kernel = ensure_kernel()
    twin = Twin()
    site_file = twin.start()
    try:
        empty = empty_notebook(tmp)
        t_empty = median_time(lambda: papermill.execute_notebook(
            str(empty), str(tmp / "empty-out.ipynb"), kernel_name=kernel, progress_bar=False), REPEAT)
        t_raw = median_time(lambda: raw_calls(site_file), REPEAT)
        runs, starts = [], []
        for _ in range(REPEAT):
            t = time.perf_counter()
            with KernelSession(tmp / "outputs") as session:
                res = run_triage(site_file, outputs_dir=tmp / "outputs", session=session)
                starts.append(session.starts)
            runs.append(time.perf_counter() - t)
            assert res.exit_code == 0, res.verdict.text()
        t_run = statistics.median(runs)
    finally:
        twin.stop()
    floor = t_empty + t_raw
    figures = {
        "papermill empty notebook (s)": t_empty,
        "health calls made directly, one by one (s)": t_raw,
        "floor = empty notebook + raw calls (s)": floor,
        "runbook triage of the healthy twin (s)": t_run,
        "kernel starts per triage": statistics.median(starts),
        "ratio triage / floor (target <= 1.3)": t_run / floor,
    }
    for k, v in figures.items():
        print(f"{k:<50} {v:8.3f}")
    return figures


if __name__ == "__main__":
    main()
