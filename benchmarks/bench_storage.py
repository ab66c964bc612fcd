"""`runbook run storage` on a big site: 3 nodes, 5,000 VMs, 200 storages, 1,000 Omni machines.

The twin runs in its own process, serving the healthy site plus that inventory and a dozen more
MachineClasses whose selectors exercise every kind of term (names, lists, types, free space,
prefixes, the node). Measured, each the median of a few runs:

* gathering the evidence in this process (omnictl, Proxmox; wall time);
* the storage analysis from that evidence, caches cleared each time: compiling every selector,
  running the provider's loop on every node, the eight checks, and the per-storage pick table
  the notebook shows (time and tracemalloc peak; target < 2 s and < 500 MB);
* the whole runbook headless, as `runbook run storage` does it (papermill, record written), with
  the peak RSS of its kernel.

Run: `.venv/bin/python benchmarks/bench_storage.py [--vms 5000 --machines 1000 --storages 200]`.
"""

from __future__ import annotations

import argparse
import resource
import statistics
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

REPEAT = 3
NODES = ("pve1", "pve2", "pve3")
STORAGE_TYPES = ("lvmthin", "lvm", "zfspool", "rbd", "dir", "nfs")
SELECTORS = (
    'name == "vm_ssd"',
    'name in ["bench-007", "bench-013", "local-lvm"]',
    'storageType == "zfspool" && availableSpace > 300000000000u',
    'storageType == "rbd" || storageType == "lvmthin" && availableSpace > 100000000000u',
    'name.startsWith("bench-1") && storageType != "dir"',
    'node == "pve2" ? name == "bench-002" : name == "bench-003"',
    'availableSpace > 400000000000u',
    'name.matches("^bench-0[0-9]7$")',
    'size(name) == 9 && name.endsWith("9") && storageType == "lvm"',
    '["bench-100", "bench-101"].exists(n, n == name)',
    'type == "rbd"',
    'name == "bench-05"',
)


def big_site(vms: int, machines: int, storages: int) -> dict:
    """A scenario: the healthy site plus the inventory and more machine classes."""
    storage_cfg = {f"bench-{i:03d}": {"type": STORAGE_TYPES[i % len(STORAGE_TYPES)],
                                      "content": "iso,backup" if i % len(STORAGE_TYPES) == 4 else "images,rootdir",
                                      "shared": 1 if STORAGE_TYPES[i % len(STORAGE_TYPES)] in ("rbd", "nfs") else 0,
                                      "total_gib": 1000, "avail_gib": 50 + i % 400} for i in range(storages)}
    resources = {}
    for i in range(machines):
        uuid = f"00000000-0000-4000-8000-{i:012d}"
        resources[f"MachineStatuses.omni.sidero.dev/{uuid}"] = {
            "metadata": {"labels": {"omni.sidero.dev/infra-provider-id": "proxmox",
                                    "omni.sidero.dev/machine-request-set": "bench-workers"}},
            "spec": {"talosversion": "v1.9.3", "connected": True, "maintenance": False,
                     "network": {"hostname": f"bench-workers-{i:06d}", "addresses": [f"10.0.{i // 250}.{i % 250}/16"]}}}
    for i, selector in enumerate(SELECTORS):
        resources[f"MachineClasses.omni.sidero.dev/bench-{i:02d}"] = {
            "metadata": {"namespace": "default"},
            "spec": {"autoprovision": {"providerid": "proxmox", "kernelargs": [], "metavalues": [], "grpctunnel": 0,
                                       "providerdata": f"cores: 2\nmemory: 4096\ndisk_size: 20\n"
                                                       f"storage_selector: {selector}\n"}}}
    guests = [{"vmid": 2000 + i, "name": f"bench-vm-{i:05d}", "node": NODES[i % 3],
               "status": "running" if i % 2 else "stopped", "cores": 2, "memory": 4096} for i in range(vms)]
    return {"name": "bench-storage", "summary": "a big site", "expect": [],
            "changes": {"omnictl": {"resources": resources},
                        "proxmox": {"clusters": {"matrix": {"storages": storage_cfg,
                                                            "guests": {"vms": guests, "cts": []}}}}}}


def analysis(ev) -> int:
    """The storage runbook's work after gathering: checks plus the tables the notebook shows."""
    from runbook_lib import cel
    from runbook_lib.checks import run_checks
    from runbook_lib.model.storage_selectors import subjects
    from runbook_lib.views import storage

    cel.compile_selector.cache_clear()
    findings = run_checks("storage", ev)
    rows = len(storage.outcomes(ev))
    for subject in subjects(ev):
        rows += len(storage.pick_table(subject.text, ev.get("storages")))
    assert findings
    return rows


def main() -> dict:
    parser = argparse.ArgumentParser()
    parser.add_argument("--vms", type=int, default=5000)
    parser.add_argument("--machines", type=int, default=1000)
    parser.add_argument("--storages", type=int, default=200)
    args = parser.parse_args()
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from _common import median_time, twin_process

    from runbook_lib.calls import CallLog
    from runbook_lib.gather import storage as gather
    from runbook_lib.runner import run_runbook
    from runbook_lib.site import load_site

    tmp = Path(tempfile.mkdtemp(prefix="bench-storage-"))
    with twin_process(big_site(args.vms, args.machines, args.storages)) as site_file:
        site = load_site(site_file)
        evs = []
        t_gather = median_time(lambda: evs.append(gather.gather(site, CallLog())), REPEAT)
        ev = evs[-1]
        rows_per_node = {n: len(r) for n, r in ev.get("storages").items()}
        classes = len(ev.get("machineclasses"))
        analysis(ev)  # warm: imports, celpy's parser
        t_analysis = median_time(lambda: analysis(ev), REPEAT)
        tracemalloc.start()
        rows = analysis(ev)
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        runs, codes = [], set()
        for _ in range(REPEAT):
            t = time.perf_counter()
            res = run_runbook("storage", site_file=site_file, outputs_dir=tmp / "outputs")
            runs.append(time.perf_counter() - t)
            codes.add(res.exit_code)
        kernel_rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    figures = {
        "storages listed per node": max(rows_per_node.values()),
        "machine classes": classes,
        "evidence, gather in-process (s)": t_gather,
        "storage analysis: checks + tables (s)": t_analysis,
        "storage analysis: table rows built": rows,
        "storage analysis: tracemalloc peak (MB)": peak / 2 ** 20,
        "runbook run storage, headless (s)": statistics.median(runs),
        "runbook exit codes": sorted(codes),
        "peak RSS of the runbook kernel (largest finished child, MB)": kernel_rss,
    }
    for k, v in figures.items():
        print(f"{k:<52} {v:10.3f}" if isinstance(v, float) else f"{k:<52} {v}")
    return figures


if __name__ == "__main__":
    main()
