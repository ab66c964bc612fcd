"""``python -m runbook_lab serve --dir DIR [--scenario S | --hidden]``: run a twin until SIGTERM.

``runbook lab up`` starts this detached and waits for ``DIR/ready``. ``runbook drill start`` passes
``--hidden`` and the scenario's name on standard input: then neither the command line (``ps``), the
ready file, the site file's header nor this process's output names the scenario.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
from pathlib import Path

from runbook_lib.errors import RunbookError

from .twin import Twin


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m runbook_lab")
    sub = parser.add_subparsers(dest="verb", required=True)
    serve = sub.add_parser("serve", help="run a lab twin in the foreground until SIGTERM")
    serve.add_argument("--dir", required=True, type=Path, help="work directory of the twin")
    which = serve.add_mutually_exclusive_group()
    which.add_argument("--scenario", default=None, help="scenario name or YAML path (default: healthy)")
    which.add_argument("--hidden", action="store_true",
                       help="a drill: read the scenario's name from standard input and name it nowhere")
    args = parser.parse_args(argv)
    scenario = (sys.stdin.readline().strip() or None) if args.hidden else args.scenario

    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    args.dir.mkdir(parents=True, exist_ok=True)
    ready = args.dir / "ready"
    ready.unlink(missing_ok=True)
    try:
        twin = Twin(scenario, workdir=args.dir, hidden=args.hidden)
        site = twin.start()
    except RunbookError as exc:
        message = str(exc).replace(scenario, "(the drill's scenario)") if args.hidden and scenario else exc
        print(f"lab twin: {message}", file=sys.stderr)
        return 3
    try:
        tmp = ready.with_suffix(".tmp")
        shown = {"hidden": True} if args.hidden else {"scenario": twin.scenario["name"]}
        tmp.write_text(json.dumps({"site": str(site), "pid": os.getpid(), **shown}))
        os.replace(tmp, ready)
        print(f"lab twin ready: {site}", flush=True)
        stop.wait()
    finally:
        ready.unlink(missing_ok=True)
        twin.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
