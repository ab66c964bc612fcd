"""`runbook run argocd --lab`: the runbook's wall time against the floor any runbook pays.

The floor is papermill running an empty notebook on the same kernel, plus the raw API calls the
runbook makes, made directly with the ``kubernetes`` client one after another, without
runbook_lib. The raw calls are timed warm (this process, client already imported and its models
built) and as a script an operator would run (a fresh interpreter). The twin runs in its own
process so that it does not share the measured process's GIL.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPEAT = 3
NS = "argocd"


def raw_calls(site_file: Path) -> None:
    """What the argocd runbook asks, made directly: no runbook_lib, no parallelism."""
    from kubernetes import client, config

    doc = yaml.safe_load(site_file.read_text())
    kubeconfig = next(iter(doc["kubernetes"].values()))["kubeconfig"]
    api = config.new_client_from_config(config_file=kubeconfig, persist_config=False)
    t = (5, 15)
    core, apps = client.CoreV1Api(api), client.AppsV1Api(api)
    client.VersionApi(api).get_code(_request_timeout=t)
    core.list_namespaced_pod(NS, _request_timeout=t)
    core.list_namespaced_service(NS, _request_timeout=t)
    core.list_namespaced_endpoints(NS, _request_timeout=t)
    client.DiscoveryV1Api(api).list_namespaced_endpoint_slice(NS, _request_timeout=t)
    client.NetworkingV1Api(api).list_namespaced_network_policy(NS, _request_timeout=t)
    apps.list_namespaced_stateful_set(NS, _request_timeout=t)
    apps.list_namespaced_deployment(NS, _request_timeout=t)
    client.CustomObjectsApi(api).list_namespaced_custom_object("argoproj.io", "v1alpha1", NS, "applications",
                                                               _request_timeout=t)
    apps.list_daemon_set_for_all_namespaces(_request_timeout=t)
    core.list_event_for_all_namespaces(field_selector="involvedObject.kind=DaemonSet,reason=FailedCreate",
                                       _request_timeout=t)
    core.list_namespace(_request_timeout=t)
    pods = core.list_namespaced_pod(NS, label_selector="app.kubernetes.io/name=argocd-application-controller",
                                    _request_timeout=t)
    resp = core.read_namespaced_pod_log(pods.items[0].metadata.name, NS, tail_lines=200, _preload_content=False,
                                        _request_timeout=t)
    resp.data.decode()
    api.close()


def main() -> dict:

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from _common import empty_notebook_seconds, median_clean_run, median_time, report, run_vs_floor, twin_process

    from runbook_lib.calls import CallLog
    from runbook_lib.checks import run_checks
    from runbook_lib.gather import argocd as gather
    from runbook_lib.runner import run_runbook
    from runbook_lib.site import load_site

    tmp = Path(tempfile.mkdtemp(prefix="bench-argocd-"))
    t0 = time.perf_counter()
    with twin_process() as site_file:
        t_twin = time.perf_counter() - t0
        t_empty = empty_notebook_seconds(tmp, REPEAT)
        raw_calls(site_file)  # build the client's models once: "warm" means what a kernel has after one run
        t_raw = median_time(lambda: raw_calls(site_file), REPEAT)
        t_script = median_time(lambda: subprocess.run(
            [sys.executable, __file__, "--raw-calls", str(site_file)], check=True, timeout=120), REPEAT)
        site = load_site(site_file)
        evs = []

        def gather_once():
            kube = gather.connect(site, CallLog())
            evs.append(gather.gather(kube))
            kube.close()

        t_gather = median_time(gather_once, REPEAT)
        t_checks = median_time(lambda: run_checks("argocd", evs[-1]), REPEAT)
        t_run = median_clean_run(lambda: run_runbook("argocd", site_file=site_file,
                                                      outputs_dir=tmp / "outputs"), REPEAT)
    figures = {"twin start, own process (s)": t_twin, **run_vs_floor(
        "argocd", empty=t_empty, raw=t_raw, script=t_script, gather=t_gather, checks=t_checks, run=t_run)}
    return report(figures)


if __name__ == "__main__":
    if sys.argv[1:2] == ["--raw-calls"]:
        raw_calls(Path(sys.argv[2]))
    else:
        main()
