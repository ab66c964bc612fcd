"""The index as a hash chain: tamper evidence that survives a rebuild.

Each line of ``index.jsonl`` carries ``prev_sha256``, the SHA-256 of the line before it as
written (:data:`GENESIS` for the first), and ``manifest_sha256``, the digest of its record's
manifest (every file of the record directory and its SHA-256) when the record was written. A line
changed, removed or inserted by hand breaks the link of the line after it (:func:`verify_chain`);
a record changed afterwards no longer matches its manifest. The functions here are pure: the
index file itself is :mod:`runbook_lib.records`' business.
"""

from __future__ import annotations

import hashlib
import json

GENESIS = "0" * 64


def link(previous_line: str) -> str:
    """The ``prev_sha256`` of the line after ``previous_line`` ("" : there is none)."""
    return _sha256(previous_line.encode("utf-8")) if previous_line else GENESIS


def entry_line(entry: dict) -> str:
    """An index entry as its line (without the newline), the bytes its successor's link hashes."""
    return json.dumps(entry, separators=(",", ":"))


def chain(entries: list[dict]) -> list[dict]:
    """The entries linked in order: each one's ``prev_sha256`` is the SHA-256 of the line before
    it (:data:`GENESIS` for the first). Used when the whole index is written again (rebuild,
    prune); :func:`runbook_lib.records.append_index` links one line at a time."""
    out, previous = [], ""
    for e in entries:
        e = {k: v for k, v in e.items() if k != "prev_sha256"}
        e["prev_sha256"] = link(previous)
        previous = entry_line(e)
        out.append(e)
    return out


def verify_chain(lines: list[str]) -> list[str]:
    """The breaks of the index's hash chain, one message each (none: intact). Lines written before
    the chain existed (no ``prev_sha256``) are accepted only before the first chained line."""
    problems, previous, chained = [], "", False
    for number, line in enumerate(lines, 1):
        try:
            entry = json.loads(line)
        except ValueError:
            problems.append(f"index line {number}: not JSON")
            previous = line
            continue
        claimed = entry.get("prev_sha256") if isinstance(entry, dict) else None
        run = entry.get("run_id", "?") if isinstance(entry, dict) else "?"
        if claimed is None:
            if chained:
                problems.append(f"index line {number} ({run}): not chained")
        elif claimed != link(previous):
            problems.append(f"index line {number} ({run}): the line before it was changed, removed or inserted")
        chained = chained or claimed is not None
        previous = line
    return problems


def manifest_sha256(manifest: dict[str, str]) -> str:
    """The digest of a record's manifest (``{file name: sha256}``), as the index keeps it."""
    return _sha256("".join(f"{name}  {digest}\n" for name, digest in sorted(manifest.items())).encode())


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
