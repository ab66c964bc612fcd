"""Proxmox storage as the provider uses it: which pools can hold a VM disk on which node.

Rows are those of ``GET /nodes/{node}/storage`` (``storage``, ``type``, ``content``, ``enabled``,
``active``, ``shared``, ``avail`` ...), in the order Proxmox lists them: the provider evaluates its
CEL ``storage_selector`` over them in that order and takes the first match. ``enabled`` and
``active`` are optional in PVE's answer; a row that does not say is not counted as disabled.
"""

from __future__ import annotations

from .. import cel

STORAGE_TYPES = {"dir", "nfs", "cifs", "glusterfs", "cephfs", "lvm", "lvmthin", "zfs", "zfspool", "rbd", "iscsi",
                 "iscsidirect", "btrfs", "pbs", "esxi"}
# storage types that cannot take a new VM disk, whatever their content says
NO_VM_DISKS = {"pbs": "a backup server", "cephfs": "a file system for ISOs, templates and backups",
               "iscsi": "a set of existing LUNs (new disks cannot be allocated on it)", "esxi": "an import source"}

NO_MATCH = "no storage matches the selector"
UNDECIDED = "the selector cannot be evaluated"


def content_types(row: dict) -> set[str]:
    return {c.strip() for c in str(row.get("content") or "").split(",") if c.strip()}


def _flag(row: dict, key: str) -> bool:
    value = row.get(key, 1)
    return value not in (0, "0", False, None)


def usable(row: dict) -> bool:
    """Enabled and active on this node."""
    return _flag(row, "enabled") and _flag(row, "active")


def holds_disks(row: dict) -> bool:
    """Its type and content allow VM disk images (whether it is usable right now aside)."""
    return "images" in content_types(row) and row.get("type") not in NO_VM_DISKS


def takes_disks(row: dict) -> bool:
    """A new VM disk can go there now: it holds disks and is enabled and active."""
    return holds_disks(row) and usable(row)


def pick_pool(selector: str, rows: list[dict], node: str) -> tuple[dict | None, str]:
    """The storage the provider would pick on ``node`` (first match in API order), or why none:
    :data:`NO_MATCH` or :data:`UNDECIDED` (the selector does not compile or fails to evaluate)."""
    row, why = cel.first_match(selector, node, rows)
    if row is not None:
        return row, ""
    return None, NO_MATCH if why == cel.no_match_error(selector) else UNDECIDED


def edit_distance(a: str, b: str) -> int:
    """Levenshtein distance (small strings only): how far a pool name in a selector is from a real one."""
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        cur = [i]
        for j, cb in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ca != cb)))
        prev = cur
    return prev[-1]
