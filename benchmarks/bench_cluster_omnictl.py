"""`runbook run cluster --lab` and `runbook run omnictl --lab`: wall time against the floor.

The floor is what bench_provider_run.py uses: papermill running an empty notebook on the same
kernel, plus the raw calls the runbook makes, made directly, one after another, without
runbook_lib. For the cluster runbook on the healthy twin those are seven `omnictl get -o json`
(nothing waits for machines, so neither Proxmox nor the provider's log is read); against the
`cluster-rate-limited` scenario two more `omnictl get`, the Proxmox node and storage reads and
the provider's `docker logs` over SSH are added. For the omnictl runbook: `omnictl --version`, one
`omnictl get clusters`, a DNS lookup, a TCP connect and a TLS `GET /healthz`.
Target, as for the provider runbook: the runbook's wall time <= 1.3 x the floor.
"""

from __future__ import annotations

import http.client
import json
import shlex
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlsplit

import yaml

REPEAT = 3
OMNI_TYPES = ("clusters", "clusterstatuses", "machinesetstatuses", "controlplanestatuses", "clustermachinestatuses",
              "machineclasses", "clustermachinerequeststatuses")
SUPPLY_TYPES = ("machinerequestsets", "machinerequeststatuses")


def _omnictl(doc: dict, *args: str) -> None:
    env = {"OMNI_SERVICE_ACCOUNT_KEY": Path(doc["omni"]["omnictl"]["service_account_key"][5:]).read_text().strip(),
           "OMNI_ENDPOINT": doc["omni"]["url"], "PATH": "/usr/bin:/bin"}
    subprocess.run([doc["omni"]["omnictl"]["binary"], *args], capture_output=True, env=env, timeout=30)


def raw_cluster_calls(site_file: Path, with_supply: bool = False) -> None:
    """What the cluster runbook asks, made directly (sequentially)."""
    doc = yaml.safe_load(site_file.read_text())
    for rtype in OMNI_TYPES + (SUPPLY_TYPES if with_supply else ()):
        _omnictl(doc, "get", rtype, "-o", "json")
    if not with_supply:
        return
    import paramiko
    from proxmoxer import ProxmoxAPI

    cluster = doc["proxmox"]["matrix"]
    secret = Path(cluster["token_secret"][5:]).read_text().strip()
    user, token = cluster["token_id"].split("!")
    px = ProxmoxAPI(cluster["endpoints"][0].split("//")[1], user=user, token_name=token, token_value=secret,
                    verify_ssl=cluster["ca_file"], timeout=(3, 10))
    for n in px.nodes.get():
        px.nodes(n["node"]).storage.get()
    h = doc["hosts"]["provider"]
    client = paramiko.SSHClient()
    client.load_host_keys(h["known_hosts"])
    client.set_missing_host_key_policy(paramiko.RejectPolicy())
    client.connect(h["host"], port=h["port"], username=h["user"], key_filename=h["key_file"],
                   allow_agent=False, look_for_keys=False, timeout=5)
    for cmd in (["docker", "ps", "-a", "--no-trunc", "--format", "{{json .}}"],
                ["docker", "logs", "--tail", "5000", h["container"]]):
        _, out, err = client.exec_command(shlex.join(cmd), timeout=20)
        out.read(), err.read()
    client.close()


def raw_omnictl_calls(site_file: Path) -> None:
    """What the omnictl runbook asks, made directly."""
    doc = yaml.safe_load(site_file.read_text())
    _omnictl(doc, "--version")
    _omnictl(doc, "get", "clusters", "-o", "json")
    url = urlsplit(doc["omni"]["url"])
    addr = socket.getaddrinfo(url.hostname, url.port, type=socket.SOCK_STREAM)[0][4]
    socket.create_connection(addr[:2], timeout=5).close()
    ctx = ssl.create_default_context(cafile=doc["omni"]["ca_file"])
    conn = http.client.HTTPSConnection(url.hostname, url.port, context=ctx, timeout=5)
    conn.request("GET", "/healthz")
    conn.getresponse().read()
    conn.close()


def main() -> dict:
    import papermill

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from _common import empty_notebook, median_time

    from runbook_lab.twin import Twin
    from runbook_lib.calls import CallLog
    from runbook_lib.checks import run_checks
    from runbook_lib.gather import cluster as gather_cluster
    from runbook_lib.gather import omnictl as gather_omnictl
    from runbook_lib.kernel import ensure_kernel
    from runbook_lib.runner import run_runbook
    from runbook_lib.site import load_site

    gatherers = {"cluster": gather_cluster.gather, "omnictl": gather_omnictl.gather}

    tmp = Path(tempfile.mkdtemp(prefix="bench-cluster-omnictl-"))
    kernel = ensure_kernel()
    empty = empty_notebook(tmp)
    t_empty = median_time(lambda: papermill.execute_notebook(
        str(empty), str(tmp / "empty-out.ipynb"), kernel_name=kernel, progress_bar=False), REPEAT)
    figures = {"papermill empty notebook (s)": t_empty}
    cases = (("cluster", None, lambda f: raw_cluster_calls(f)),
             ("omnictl", None, raw_omnictl_calls),
             ("cluster", "cluster-rate-limited", lambda f: raw_cluster_calls(f, with_supply=True)))
    for section, scenario, raw in cases:
        label = f"{section}" + (f" ({scenario})" if scenario else " (healthy)")
        with Twin(scenario) as twin:
            t_raw = median_time(lambda: raw(twin.site_file), REPEAT)
            site = load_site(twin.site_file)
            t_gather = median_time(lambda: run_checks(section, gatherers[section](site, CallLog())), REPEAT)
            runs, notebook = [], []
            for _ in range(REPEAT):
                t = time.perf_counter()
                res = run_runbook(section, site_file=twin.site_file, outputs_dir=tmp / "outputs")
                runs.append(time.perf_counter() - t)
                assert res.exit_code == (0 if scenario is None else 2), res.verdict.text()
                meta = json.loads(Path(res.paths["notebook"]).read_text())["metadata"].get("papermill", {})
                notebook.append(meta.get("duration") or 0.0)
        t_run = statistics.median(runs)
        figures[f"{label}: raw calls, warm (s)"] = t_raw
        figures[f"{label}: gather + checks in-process (s)"] = t_gather
        figures[f"{label}: notebook under papermill, in the run (s)"] = statistics.median(notebook)
        figures[f"{label}: runbook run, without twin start (s)"] = t_run
        figures[f"{label}: ratio run / (empty notebook + raw calls)"] = t_run / (t_empty + t_raw)
    for k, v in figures.items():
        print(f"{k:<72} {v:8.3f}")
    return figures


if __name__ == "__main__":
    main()
