"""The logs notebook's tables: error lines by message, and each log's last lines."""

from __future__ import annotations

import html

from ..evidence import Evidence

ERROR_COLUMNS = ["component", "count", "message"]


def errors(ev: Evidence) -> list[dict]:
    """Error lines of each log counted by message, most frequent first within a component."""
    rows = [{"component": name, "count": n, "message": message}
            for name, d in (ev.optional("logs") or {}).items() for message, n in d["errors"].items()]
    return rows or [{"component": "-", "count": 0, "message": "no error lines in the window"}]


def last_lines_html(ev: Evidence) -> str:
    """Each log's kept lines in a collapsed block, as they were logged (secrets masked)."""
    return "".join(
        f"<details><summary><b>{html.escape(name)}</b>: last {len(d['kept'])} of {d['lines']} lines</summary>"
        f"<pre>{html.escape(chr(10).join(d['kept']))}</pre></details>"
        for name, d in (ev.optional("logs") or {}).items())
