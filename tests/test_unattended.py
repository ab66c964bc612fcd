"""Runs stopped by a scheduler: SIGTERM, SIGHUP and SIGKILL at the worst moment.

The echo notebook resolves a secret from a FIFO: the test writes the canary into it, so it knows
the kernel holds the secret, then signals the run while a cell sleeps. Whatever the signal,
nothing left in the run's TMPDIR, its state directory or the outputs may contain the canary.
SIGTERM and SIGHUP must also leave a whole record marked interrupted, a consistent index, no
temporary directory, no empty directory and no kernel. One more run is killed against the lab
twin itself and everything it left is searched for the twin's own canaries (``CANARY-``).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest

from runbook_lib import archive, kernel_session, record, records

DATA = Path(__file__).parent / "data"
EXE = Path(sys.executable).parent / "runbook"


def write_site(path: Path) -> Path:
    path.write_text("name: unattended\nomni: {url: 'https://127.0.0.1:8099'}\n"
                    "hosts: {omni: {host: 127.0.0.1}, provider: {host: 127.0.0.1}}\n"
                    "proxmox: {c1: {endpoints: ['https://127.0.0.1:8006'], token_id: 'runbook@pve!audit',"
                    " token_secret: 'env:UNSET_TOKEN_VAR'}}\nprovider: {cluster: c1}\n")
    return path


def everything_under(*roots: Path) -> list[Path]:
    return [p for root in roots if root.exists() for p in root.rglob("*")]


def files_holding(needle: bytes, *roots: Path) -> list[str]:
    found = []
    for p in everything_under(*roots):
        if p.is_file() and not p.is_symlink():
            try:
                if needle in p.read_bytes():
                    found.append(str(p))
            except OSError:
                continue
    return found


def processes_mentioning(text: str) -> list[str]:
    out = subprocess.run(["ps", "-eo", "pid,args"], capture_output=True, text=True).stdout
    return [line for line in out.splitlines() if text in line and "ps -eo" not in line]


@pytest.fixture
def place(tmp_path):
    d = {name: tmp_path / name for name in ("home", "outputs", "secret")}
    for p in d.values():
        p.mkdir()
    # $TMPDIR short enough for the kernel's Unix sockets wherever pytest puts tmp_path (as on a real host)
    d["tmp"] = Path(tempfile.mkdtemp(prefix="rb-", dir="/tmp"))
    d["site"] = write_site(tmp_path / "site.yaml")
    d["env"] = dict(os.environ, TMPDIR=str(d["tmp"]), RUNBOOK_HOME=str(d["home"]), RUNBOOK_NOTEBOOKS=str(DATA))
    yield d
    shutil.rmtree(d["tmp"], ignore_errors=True)


def start_holding_a_secret(place, canary: str) -> subprocess.Popen:
    """An echo run that has resolved ``canary`` and sleeps in its next cell."""
    fifo = place["secret"] / "leak"
    os.mkfifo(fifo)
    proc = subprocess.Popen([str(EXE), "run", "echo", "--site", str(place["site"]), "--outputs",
                             str(place["outputs"]), "-p", "mode", "sleep", "-p", "leak", f"file:{fifo}"],
                            env=place["env"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    fed = threading.Event()

    def feed():
        with open(fifo, "w") as fh:  # blocks until the kernel opens it to resolve the secret
            fh.write(canary)
        fed.set()

    threading.Thread(target=feed, daemon=True).start()
    assert fed.wait(60), "the kernel never read the secret"
    time.sleep(1.0)  # registered and printed; the cell after it sleeps
    assert proc.poll() is None
    return proc


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP])
def test_sigterm_and_sighup_keep_a_partial_record_and_leave_nothing_else(place, sig):
    canary = f"CANARY-signal-{sig.name}-7d1f"
    proc = start_holding_a_secret(place, canary)
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 128 + sig, err
    assert f"interrupted by {sig.name}" in out
    assert err.startswith(f"runbook: interrupted by {sig.name}; partial record ") and err.count("\n") == 1, err
    assert files_holding(canary.encode(), place["tmp"], place["home"], place["outputs"]) == []
    assert canary not in out + err
    assert [p.name for p in place["tmp"].iterdir()] == []  # the private directory went
    assert list((place["home"] / "tmp").glob("runbook-*")) == []
    (entry,) = records.read_index(place["outputs"])
    assert entry["exit_code"] == 3 and entry["error"].startswith(f"interrupted by {sig.name}")
    doc = json.loads((place["outputs"] / entry["record"]["verdict"]).read_text())
    assert doc["error"].startswith(f"interrupted by {sig.name}")
    nb = json.loads((place["outputs"] / entry["record"]["notebook"]).read_text())
    assert any("resolved value: ***" in "".join(o.get("text", "")) for c in nb["cells"] for o in c.get("outputs", []))
    assert all(v.ok for v in archive.verify_all(place["outputs"]).values())
    assert archive.verify_chain(place["outputs"]) == []
    assert [p for p in everything_under(place["outputs"]) if p.is_dir() and not any(p.iterdir())] == []
    time.sleep(0.5)
    assert processes_mentioning(str(place["tmp"])) == []  # the kernel was stopped


def test_sigkill_leaves_no_secret_and_the_next_run_clears_what_it_left(place, monkeypatch):
    canary = "CANARY-sigkill-51c0"
    proc = start_holding_a_secret(place, canary)
    proc.kill()
    proc.wait(timeout=30)
    assert files_holding(canary.encode(), place["tmp"], place["home"], place["outputs"]) == []
    assert records.read_index(place["outputs"]) == []  # no record: it is whole or absent
    assert list(records.record_dirs(place["outputs"])) == []
    deadline = time.monotonic() + 10  # the orphaned kernel notices its parent is gone
    while processes_mentioning(str(place["tmp"])) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert processes_mentioning(str(place["tmp"])) == []
    # what the killed run left (its private directory, its unpublished record) goes with the next run
    monkeypatch.setattr("tempfile.tempdir", str(place["tmp"]))
    monkeypatch.setenv("RUNBOOK_HOME", str(place["home"]))
    kernel_session.sweep_stale_workdirs()
    record.sweep_stale_partials(place["outputs"])
    assert list(place["tmp"].iterdir()) == [] and list(place["outputs"].iterdir()) == []


@pytest.mark.runbook
def test_a_lab_run_killed_midway_leaves_none_of_the_twins_canaries(place):
    from runbook_lab.twin import Twin

    env = {k: v for k, v in place["env"].items() if k != "RUNBOOK_NOTEBOOKS"}
    with Twin() as twin:
        proc = subprocess.Popen([str(EXE), "run", "provider", "--site", str(twin.site_file), "--outputs",
                                 str(place["outputs"])], env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not [p for root in (place["tmp"], place["home"])
                                                    for p in root.rglob("runbook-*/kernel.log")]:
            time.sleep(0.05)  # the kernel has started: it is running the notebook
        time.sleep(1.5)
        assert proc.poll() is None
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
    assert proc.returncode == 143, err
    assert files_holding(b"CANARY-", place["tmp"], place["home"], place["outputs"]) == []
    assert "CANARY-" not in out + err
    assert list(place["tmp"].iterdir()) == [] and list((place["home"] / "tmp").glob("runbook-*")) == []


def test_sigterm_while_the_kernel_starts_leaves_nothing_behind(place):
    proc = subprocess.Popen([str(EXE), "run", "echo", "--site", str(place["site"]), "--outputs",
                             str(place["outputs"]), "-p", "mode", "sleep"], env=place["env"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not [p for root in (place["tmp"], place["home"])
                                                for p in root.rglob("runbook-*/kernel.log")]:
        time.sleep(0.02)  # the kernel is being started
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 143 and "Traceback" not in err, err
    assert list(place["tmp"].iterdir()) == [] and list((place["home"] / "tmp").glob("runbook-*")) == []
    assert [p for p in everything_under(place["outputs"]) if p.is_dir() and not any(p.iterdir())] == []
    assert [e["error"][:22] for e in records.read_index(place["outputs"])] in ([], ["interrupted by SIGTERM"])
    time.sleep(0.5)
    assert processes_mentioning(str(place["tmp"])) == [] and processes_mentioning(str(place["home"])) == []
