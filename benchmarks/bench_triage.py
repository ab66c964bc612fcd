"""`runbook triage`: every section at once, against what a triage cannot avoid and against a script.

(a) The healthy twin, as fast as loopback. A full triage through papermill (the twin already
    running) against the floor: papermill on an empty notebook (a kernel start and nothing else)
    plus the slowest single section's own calls (each section gathered alone, in-process, with a
    fresh CallLog: the sections overlap, so the slowest bounds the whole). Target <= 1.3.
(b) The same site behind a VPN (the twin's latency knob: 30 ms a SSH command, 30 ms an API
    request, 0.4 s an omnictl call). The triage, in-process (`triage.run`, no log collection) and
    end to end through papermill, against the distinct calls it made, made again one after another
    through the same sources as an operator's shell script would (benchmarks/_replay.py). Target
    <= 0.5.

Every figure is the median of REPEAT runs; the machine's load is printed before and after. The
twin runs in its own process, so the measured process does not share its GIL. Where a papermill
triage's time goes is printed too: papermill times every cell, so the record of the median run
splits it into the kernel's start, each cell, and the runner's own work around papermill (site
check, scrubbing, the HTML record); a fresh interpreter's first and second ``triage.run`` show what
first use costs (the libraries the sources import lazily).
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPEAT = 3
VPN = {"ssh": 0.03, "api": 0.03, "omnictl": 0.4}


def load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg()) + f" ({os.cpu_count()} CPUs)"


def site_scenario(latency: dict) -> dict:
    return {"name": "vpn", "summary": "the healthy site behind a VPN", "expect": [],
            "changes": {"latency": latency}}


# ----------------------------------------------------------------------------------- (a)


def slowest_section(site) -> tuple[str, float, dict]:
    """Each section gathered alone in-process (median of REPEAT); the slowest and all the times."""
    from _common import median_time

    from runbook_lib.calls import CallLog
    from runbook_lib.gather import section
    from runbook_lib.triage import sections

    times = {name: median_time(lambda n=name: section(n, site, CallLog()), REPEAT) for name in sections()}
    name = max(times, key=times.get)
    return name, times[name], times


def papermill_triage(site_file: Path, outputs: Path) -> tuple[float, dict]:
    """Median wall time of ``run_runbook("triage")`` (must exit 0) and where the median run's time went."""
    from runbook_lib.runner import run_runbook

    runs = []
    for _ in range(REPEAT):
        t0 = time.perf_counter()
        res = run_runbook("triage", site_file=site_file, outputs_dir=outputs)
        seconds = time.perf_counter() - t0
        assert res.exit_code == 0, res.verdict.text()
        runs.append((seconds, breakdown(Path(res.paths["notebook"]), seconds)))
    runs.sort(key=lambda r: r[0])
    return runs[len(runs) // 2]


def breakdown(record: Path, total: float) -> dict:
    """Where one papermill run's time went, from its record (papermill times every cell)."""
    nb = json.loads(record.read_text(encoding="utf-8"))
    cells = [(_first_line(c), (c["metadata"].get("papermill") or {}).get("duration") or 0.0)
             for c in nb["cells"] if c["cell_type"] == "code"]
    executed = float(nb["metadata"].get("papermill", {}).get("duration") or 0.0)
    in_cells = sum(d for _, d in cells)
    out = {"kernel start and papermill, outside the cells (s)": executed - in_cells}
    out.update({f"cell `{line}` (s)": d for line, d in cells if d >= 0.05})
    out["runner outside papermill: site check, scrub, HTML, record, index (s)"] = total - executed
    return out


def _first_line(cell: dict) -> str:
    source = "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]
    line = next((ln for ln in source.splitlines() if ln.strip() and not ln.startswith("#")), "")
    return line[:40]


def cold_triage(site_file: Path) -> dict:
    """A fresh interpreter: importing triage, its first ``triage.run`` and a second one (first-use costs:
    the libraries the sources import lazily, the kubernetes client above all)."""
    out = subprocess.run([sys.executable, __file__, "--cold", str(site_file)], capture_output=True, text=True,
                         timeout=300, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def _cold(site_file: str) -> None:
    t0 = time.perf_counter()
    from runbook_lib import notebook, triage  # noqa: F401  (what the notebook's first cell imports)
    from runbook_lib.calls import CallLog
    from runbook_lib.site import load_site

    figures = {"import runbook_lib.notebook and triage (s)": time.perf_counter() - t0}
    site = load_site(site_file)
    for label in ("first triage.run in a fresh interpreter (s)", "second triage.run, warm (s)"):
        t0 = time.perf_counter()
        triage.run(site, CallLog(), collect_logs=False)
        figures[label] = time.perf_counter() - t0
    print(json.dumps(figures))


def healthy_figures(tmp: Path) -> dict:
    from _common import empty_notebook_seconds, twin_process

    from runbook_lib.site import load_site

    with twin_process() as site_file:
        t_empty = empty_notebook_seconds(tmp, REPEAT)
        name, t_section, per_section = slowest_section(load_site(site_file))
        t_run, where = papermill_triage(site_file, tmp / "outputs-healthy")
        cold = cold_triage(site_file)
    floor = t_empty + t_section
    return {
        **{f"  section {n} alone, in-process (s)": t for n, t in per_section.items()},
        "papermill empty notebook (s)": t_empty,
        f"slowest section alone: {name} (s)": t_section,
        "floor = empty notebook + slowest section (s)": floor,
        "runbook triage through papermill (s)": t_run,
        "(a) ratio triage / floor (target <= 1.3)": t_run / floor,
        "(a) where the papermill triage's time went (median run):": "",
        **{f"  (a) {k}": v for k, v in where.items()},
        **{f"  (a) {k}": v for k, v in cold.items()},
        "  (a) warm triage.run / slowest section alone": cold["second triage.run, warm (s)"] / t_section,
    }


# ----------------------------------------------------------------------------------- (b)


def in_process_triage(site) -> tuple[float, object]:
    """Median wall time of ``triage.run`` (no log collection) and the CallLog of its last run."""
    from runbook_lib import triage
    from runbook_lib.calls import CallLog

    times, logs = [], []
    for _ in range(REPEAT):
        calls = CallLog()
        t0 = time.perf_counter()
        incident = triage.run(site, calls, collect_logs=False)
        times.append(time.perf_counter() - t0)
        assert not incident.needs_logs(), incident.overview()
        logs.append(calls)
    return statistics.median(times), logs[-1]


def serial_script(site, calls, request_log: Path, offset: int) -> tuple[float, object]:
    """The triage's distinct calls made one after another (median of REPEAT), and the plan."""
    import _replay

    roles = _replay.ssh_roles(request_log, offset)
    times, plan = [], None
    for _ in range(REPEAT):
        src = _replay.Sources(site)
        plan = _replay.plan(calls, src, roles)
        try:
            times.append(plan.run())
        finally:
            src.close()
    return statistics.median(times), plan


def vpn_figures(tmp: Path) -> dict:
    from _common import twin_process

    from runbook_lib.site import load_site

    with twin_process(site_scenario(VPN)) as site_file:
        site = load_site(site_file)
        request_log = site_file.parent / "requests.jsonl"
        offset = request_log.stat().st_size
        t_triage, calls = in_process_triage(site)
        t_script, plan = serial_script(site, calls, request_log, offset)
        t_run, where = papermill_triage(site_file, tmp / "outputs-vpn")
    kept = plan.kept
    figures = {
        "latency per SSH command / API request / omnictl call (s)": "{ssh}/{api}/{omnictl}".format(**VPN),
        "distinct calls of the triage (replayed + kept)": f"{len(plan.replayed)} + {len(kept)}",
        "serial script: the calls one after another (s)": t_script,
        "triage in-process, triage.run (s)": t_triage,
        "triage end to end through papermill (s)": t_run,
        "(b) ratio in-process triage / script (target <= 0.5)": t_triage / t_script,
        "(b) ratio papermill triage / script (target <= 0.5)": t_run / t_script,
        "(b) where the papermill triage's time went (median run):": "",
        **{f"  (b) {k}": v for k, v in where.items()},
    }
    if kept:
        figures["not replayed, their recorded time added (s)"] = sum(s.recorded for s in kept)
        figures["not replayed"] = "; ".join(f"{s.target}: {s.action}" for s in kept)
    return figures


def main() -> dict:
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from _common import report

    from runbook_lib.kernel import ensure_kernel

    ensure_kernel()
    tmp = Path(tempfile.mkdtemp(prefix="bench-triage-"))
    figures = {"load average 1/5/15 min, before": load()}
    figures.update(healthy_figures(tmp))
    figures.update(vpn_figures(tmp))
    figures["load average 1/5/15 min, after"] = load()
    return report(figures, width=60)


if __name__ == "__main__":
    if sys.argv[1:2] == ["--cold"]:
        _cold(sys.argv[2])
    else:
        main()
