"""`runbook records list` over an archive of 10,000 runs (target: under one second).

The index is filled with 10,000 lines shaped as the runner writes them (several runbooks, every
status, a month of days, findings that failed), then listed the way an operator would: the
installed command in a fresh process, all runs and with filters, and `archive.list_runs` in
process for the library's own share.
"""

from __future__ import annotations

import random
import subprocess
import sys
import tempfile
from pathlib import Path

RUNS = 10_000
RUNBOOKS = ["health", "provider", "storage", "provisioning", "cluster", "triage"]


def fill(outputs: Path) -> None:
    from runbook_lib import records

    rng = random.Random(7)
    entries = []
    for i in range(RUNS):
        day = 1 + i * 30 // RUNS
        runbook = rng.choice(RUNBOOKS)
        code = rng.choice([0, 0, 0, 1, 2, 3])
        problems = [f"{runbook}.cause_{rng.randint(1, 9)}"] if code == 2 else []
        run_id = f"202611{day:02d}T{i % 24:02d}{i % 60:02d}00Z-{i:04x}"
        entries.append({
            "run_id": run_id, "runbook": runbook, "site": "lab", "started": f"2026-11-{day:02d}T10:00:00Z",
            "finished": f"2026-11-{day:02d}T10:00:04Z", "exit_code": code,
            "counts": {"problem": len(problems), "unknown": int(code == 1), "ok": 9, "skipped": 0},
            "problems": problems, "unknown": [f"{runbook}.cause_0"] if code == 1 else [],
            "error": "kernel died" if code == 3 else "",
            "record": {k: f"2026-11-{day:02d}/{run_id}/{runbook}.{ext}"
                       for k, ext in (("notebook", "ipynb"), ("verdict", "json"), ("html", "html"))},
            "parts": [], "verdict_sha256": f"{i:064x}"})
    records.write_index(outputs, entries)


def timed_cli(outputs: Path, *args: str) -> tuple[float, int]:
    exe = Path(sys.executable).parent / "runbook"
    code = ("import subprocess, sys, time; t = time.perf_counter(); "
            "p = subprocess.run(sys.argv[1:], capture_output=True, text=True, check=True); "
            "print(time.perf_counter() - t, p.stdout.count(chr(10)))")
    out = subprocess.run([sys.executable, "-c", code, str(exe), "records", "list", "--outputs", str(outputs), *args],
                         capture_output=True, text=True, check=True).stdout.split()
    return float(out[0]), int(out[1])


def main() -> dict:
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from _common import median_time

    from runbook_lib import archive

    outputs = Path(tempfile.mkdtemp(prefix="bench-records-")) / "outputs"
    fill(outputs)
    figures = {}
    for label, args in (("all runs", ()), ("--runbook health --status problem", ("--runbook", "health", "--status",
                                                                                 "problem")),
                        ("--finding provider.cause_3 --since 2026-11-15", ("--finding", "provider.cause_3", "--since",
                                                                          "2026-11-15"))):
        times = [timed_cli(outputs, *args) for _ in range(3)]
        figures[f"runbook records list {label} (s, fresh process)"] = sorted(t for t, _ in times)[1]
        figures[f"  rows printed ({label})"] = times[0][1] - 1
    figures["archive.list_runs, all 10,000, in process (s)"] = median_time(lambda: archive.list_runs(outputs), 5)
    for k, v in figures.items():
        print(f"{k:<66} {v:10.3f}")
    return figures


if __name__ == "__main__":
    main()
