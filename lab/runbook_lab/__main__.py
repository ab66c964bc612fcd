"""``python -m runbook_lab serve --dir DIR [--scenario S]``: run a twin until SIGTERM.

``runbook lab up`` starts this detached and waits for ``DIR/ready``.
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
    serve.add_argument("--scenario", default=None, help="scenario name or YAML path (default: healthy)")
    args = parser.parse_args(argv)

    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    args.dir.mkdir(parents=True, exist_ok=True)
    ready = args.dir / "ready"
    ready.unlink(missing_ok=True)
    try:
        twin = Twin(args.scenario, workdir=args.dir)
        site = twin.start()
    except RunbookError as exc:
        print(f"lab twin: {exc}", file=sys.stderr)
        return 3
    try:
        tmp = ready.with_suffix(".tmp")
        tmp.write_text(json.dumps({"site": str(site), "pid": os.getpid(),
                                   "scenario": twin.scenario["name"]}))
        os.replace(tmp, ready)
        print(f"lab twin ready: {site}", flush=True)
        stop.wait()
    finally:
        ready.unlink(missing_ok=True)
        twin.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
