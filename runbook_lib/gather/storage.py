"""Evidence for the storage-selector runbook: the machine classes in Omni, the pools in Proxmox.

Two independent groups run in parallel: Omni through omnictl (the MachineClasses and the
selectors in their provider data) and the provider's Proxmox cluster (its nodes, then
``GET /nodes/{node}/storage`` for every online node, in the order the API lists them: the order
the provider evaluates the selector in). The names of what they gather are documented in
:mod:`runbook_lib.checks.storage`.
"""

from __future__ import annotations

import re
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Callable

import yaml

from ..calls import CallLog
from ..errors import RunbookError
from ..evidence import Evidence
from ..model.storage import edit_distance
from ..site import Site
from ..sources.omni import Omnictl
from ..sources.proxmox import ProxmoxCluster
from . import in_parallel, provider_evidence

# The provider data keys the provider knows (internal/pkg/provider/data.go); it ignores any other.
PROVIDER_KEYS = ("cores", "sockets", "memory", "disk_size", "storage_selector", "node", "network_bridge", "vlan",
                 "cpu_type", "machine_type", "disk_ssd", "disk_discard", "disk_iothread", "disk_cache", "disk_aio",
                 "numa", "hugepages", "balloon", "additional_disks", "additional_nics", "pci_devices",
                 "network_firewall", "tags", "pool", "placement_strategy", "vmid_range", "network", "ha", "bios",
                 "vga", "usb_devices")
DISK_KEYS = ("disk_size", "storage_selector", "disk_ssd", "disk_discard", "disk_iothread", "disk_cache", "disk_aio")
STORAGE_FIELDS = ("storage", "type", "content", "enabled", "active", "shared", "total", "used", "avail")


@dataclass
class Options:
    selector: str = ""  # a candidate selector to try instead of the classes' own
    machine_class: str = ""  # only this MachineClass (empty: every class of the site's provider)
    workers: int = 4  # nodes whose storages are listed at the same time


def _norm(key: str) -> str:
    return re.sub(r"[^a-z0-9]", "", key.lower())


def meant_key(key: str, known: tuple[str, ...] = PROVIDER_KEYS) -> str | None:
    """The snake_case key an unknown provider-data key was probably meant to be, if any.

    ``storageSelector`` and ``Storage-Selector`` normalise to a known key; a near spelling
    (``storage_selecter``) is within two edits of one.
    """
    if key in known:
        return None
    norm = _norm(key)
    table = {_norm(k): k for k in known}
    if norm in table:
        return table[norm]
    close = [k for n, k in table.items() if edit_distance(norm, n) <= 2 and len(n) > 4]
    return close[0] if close else None


def go_string(value: Any) -> str | None:
    """A YAML scalar as go-yaml decodes it into a Go string field (None: not a scalar)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float, str)):
        return str(value)
    if value is None:
        return ""
    return None


def summarize_class(resource: dict) -> dict:
    """What the checks need of one MachineClass: its provider, and each selector the provider reads."""
    meta = resource.get("metadata") or {}
    spec = resource.get("spec") or {}
    auto = spec.get("autoprovision") or {}
    out: dict[str, Any] = {"id": meta.get("id", "?"), "provider": auto.get("providerid") or "",
                           "autoprovision": bool(auto), "keys": [], "ignored": [], "selectors": [],
                           "node": None, "error": ""}
    if not auto:
        return out
    raw = auto.get("providerdata") or ""
    try:
        data = yaml.safe_load(raw) if raw.strip() else {}
    except yaml.YAMLError as exc:
        out["error"] = f"providerdata is not valid YAML: {getattr(exc, 'problem', exc)}"
        return out
    if not isinstance(data, dict):
        out["error"] = f"providerdata is a YAML {type(data).__name__}, not a mapping"
        return out
    if isinstance(data.get("config"), dict):  # the README's Kubernetes-style manifest nests `config:`
        out["ignored"].append({"key": "config", "meant": None, "note": "nested keys are not read"})
        out["ignored"] += [{"key": f"config.{k}", "meant": meant_key(str(k))} for k in data["config"]]
    out["keys"] = [str(k) for k in data]
    out["ignored"] += [{"key": str(k), "meant": meant_key(str(k))} for k in data
                       if str(k) not in PROVIDER_KEYS and str(k) != "config"]
    out["node"] = go_string(data.get("node")) or None
    out["selectors"].append(_selector_entry("storage_selector", data))
    for i, disk in enumerate(data.get("additional_disks") or []):
        if isinstance(disk, dict):
            entry = _selector_entry(f"additional_disks[{i}].storage_selector", disk)
            entry["ignored"] = [{"key": str(k), "meant": meant_key(str(k), DISK_KEYS)} for k in disk
                                if str(k) not in DISK_KEYS]
            out["selectors"].append(entry)
    return out


def _selector_entry(path: str, data: dict) -> dict:
    present = "storage_selector" in data
    text = go_string(data.get("storage_selector")) if present else ""
    return {"path": path, "present": present, "text": text if text is not None else "",
            "not_string": text is None}


def summarize_storage(row: dict) -> dict:
    """One ``/nodes/{node}/storage`` entry, the fields the runbook reads, in API order."""
    return {k: row[k] for k in STORAGE_FIELDS if k in row}


def gather(site: Site, calls: CallLog, options: Options | None = None,
           progress: Callable[[str], None] | None = None) -> Evidence:
    opts = options or Options()
    ev = provider_evidence(site, candidate=opts.selector or None, machine_class=opts.machine_class or None)
    in_parallel(ev, {
        "omni": lambda e: _omni(e, site, calls),
        "proxmox": lambda e: _proxmox(e, site, calls, opts),
    }, progress)
    return ev


def _omni(ev: Evidence, site: Site, calls: CallLog) -> None:
    omni = Omnictl(site.omni, calls)
    ev.collect("machineclasses", lambda: [summarize_class(r) for r in omni.get("machineclasses")])


def _proxmox(ev: Evidence, site: Site, calls: CallLog, opts: Options) -> None:
    cluster = ProxmoxCluster(site.provider.cluster, site.proxmox[site.provider.cluster], calls)
    nodes = ev.collect("nodes", lambda: sorted(({"node": n.get("node"), "status": n.get("status", "unknown")}
                                                for n in cluster.get("/nodes")), key=lambda n: n["node"]))
    if nodes is None:
        ev.fail("storages", f"the nodes could not be listed: {ev.error('nodes')}")
        return
    online = [n["node"] for n in nodes if n["status"] == "online"]
    storages: dict[str, list[dict]] = {}
    errors: dict[str, str] = {}  # online nodes whose storages could not be listed, and why

    def one(node: str) -> None:
        try:
            rows = cluster.get(f"/nodes/{node}/storage")
        except RunbookError as exc:
            errors[node] = str(exc)
            return
        if not rows:  # PVE filters the list by Datastore.Audit: an empty list hides, it does not say "none"
            errors[node] = ("the API listed no storage at all (the site's credentials may lack "
                            "Datastore.Audit on /storage)")
            return
        storages[node] = [summarize_storage(r) for r in rows]

    with ThreadPoolExecutor(max_workers=max(1, min(opts.workers, len(online) or 1)),
                            thread_name_prefix="storage") as pool:
        list(pool.map(one, online))
    ev.put("storages", {n: storages[n] for n in online if n in storages})
    ev.put("storage_errors", dict(sorted(errors.items())))
