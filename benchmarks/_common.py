"""Small helpers shared by the benchmarks: timing, a twin in its own process, peak memory."""

from __future__ import annotations

import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

import yaml


def median_time(fn, repeat: int = 3) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


@contextmanager
def twin_process(scenario: dict | str | None = None):
    """A lab twin in its own process (so the measured process does not share its GIL or memory)."""
    work = Path(tempfile.mkdtemp(prefix="bench-twin-"))
    args = [sys.executable, "-m", "runbook_lab", "serve", "--dir", str(work / "twin")]
    if isinstance(scenario, dict):
        path = work / "scenario.yaml"
        path.write_text(yaml.safe_dump(scenario))
        args += ["--scenario", str(path)]
    elif scenario:
        args += ["--scenario", scenario]
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=open(work / "twin.log", "w"),
                            start_new_session=True)
    ready = work / "twin" / "ready"
    deadline = time.monotonic() + 60
    while not ready.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"the twin did not start: {(work / 'twin.log').read_text()[-2000:]}")
        time.sleep(0.05)
    try:
        yield Path(json.loads(ready.read_text())["site"])
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=20)


def empty_notebook(tmp: Path) -> Path:
    import nbformat

    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("site_file = ''", metadata={"tags": ["parameters"]})]
    path = tmp / "empty.ipynb"
    nbformat.write(nb, path)
    return path


def empty_notebook_seconds(tmp: Path, repeat: int = 3) -> float:
    """The floor every runbook pays: papermill running an empty notebook on the project's kernel."""
    import papermill

    from runbook_lib.kernel import ensure_kernel

    kernel, empty = ensure_kernel(), empty_notebook(tmp)
    return median_time(lambda: papermill.execute_notebook(
        str(empty), str(tmp / "empty-out.ipynb"), kernel_name=kernel, progress_bar=False), repeat)


def median_clean_run(run, repeat: int = 3) -> float:
    """Median wall time of ``run()``, a runbook run that must find nothing wrong (exit 0)."""
    def once():
        res = run()
        assert res.exit_code == 0, res.verdict.text()
    return median_time(once, repeat)


def run_vs_floor(section: str, *, empty: float, raw: float, script: float, gather: float, checks: float,
                 run: float) -> dict:
    """The figures every runbook benchmark reports: the run against the floor, two ways."""
    floor = empty + raw
    return {
        "papermill empty notebook (s)": empty,
        "raw calls, warm (s)": raw,
        "raw calls as a script, cold interpreter (s)": script,
        "floor = empty notebook + raw calls warm (s)": floor,
        "evidence, gather in-process (s)": gather,
        "checks (s)": checks,
        f"runbook run {section}, without twin start (s)": run,
        "kernel start + notebook + record overhead (s)": run - gather - checks,
        "ratio run / (empty notebook + warm raw calls)": run / floor,
        "ratio run / (empty notebook + raw-calls script)": run / (empty + script),
    }


def report(figures: dict, width: int = 50) -> dict:
    for k, v in figures.items():
        print(f"{k:<{width}} {v:10.3f}" if isinstance(v, float) else f"{k:<{width}} {v:>10}")
    return figures
