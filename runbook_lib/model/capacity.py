"""Proxmox capacity against what a machine class asks for (:func:`.machineclass.class_needs`).

Two questions, one set of rules: :func:`capacity` asks whether one VM of a class fits on each
online node now (idle CPUs, free memory, free space on the pool its selector picks there);
:func:`headroom` asks how many VMs of a class the cluster can still take, placing them one at a
time. In both, every disk goes to the storage the class's selector picks on that node
(:func:`.storage.pick_pool`), and only a pool that can take a disk now counts.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .machineclass import GIB, class_needs
from .storage import pick_pool, takes_disks

STORAGE_NOTE = "a storage matter: see the storage runbook"


@dataclass
class NodeFit:
    """One node against one machine class."""

    machine_class: str
    node: str
    cpu_free: float  # idle logical CPUs
    cpu_need: int
    mem_free: int  # bytes
    mem_need: int
    pool: str  # the storage of the first disk ("" when none is decided)
    disk_free: int | None  # bytes free on that pool (None: undecided)
    disk_need: int  # bytes all disks put on that pool
    short: list[str] = field(default_factory=list)  # what does not fit, in words
    notes: list[str] = field(default_factory=list)

    @property
    def fits(self) -> bool:
        return not self.short

    def line(self) -> str:
        disk = (f"{self.pool} {self.disk_free / GIB:.0f} GiB free (needs {self.disk_need / GIB:.0f})"
                if self.disk_free is not None else (self.notes[0] if self.notes else "pool undecided"))
        return (f"{self.node}: {self.cpu_free:.1f} idle CPUs (needs {self.cpu_need}), "
                f"{self.mem_free / GIB:.1f} GiB memory free (needs {self.mem_need / GIB:.1f}), {disk}")

    def to_row(self) -> dict:
        return {"class": self.machine_class, "node": self.node,
                "cpu free": round(self.cpu_free, 1), "cpu needed": self.cpu_need,
                "memory free (GiB)": round(self.mem_free / GIB, 1), "memory needed (GiB)": round(self.mem_need / GIB, 1),
                "pool": self.pool or "-",
                "disk free (GiB)": None if self.disk_free is None else round(self.disk_free / GIB, 1),
                "disk needed (GiB)": round(self.disk_need / GIB, 1), "fits": self.fits,
                "short of": "; ".join(self.short)}


def node_free(status: dict) -> tuple[float, int]:
    """(idle logical CPUs, free memory in bytes) from a ``/nodes/{node}/status`` summary."""
    cpus = float(status.get("cpus") or 0)
    cpu_free = cpus * (1.0 - min(max(float(status.get("cpu") or 0.0), 0.0), 1.0))
    mem_free = status.get("mem_available")
    if mem_free is None:
        mem_free = int(status.get("mem_total") or 0) - int(status.get("mem_used") or 0)
    return cpu_free, int(mem_free)


def _pool_for(selector: str, storages: list[dict], node: str) -> tuple[dict | None, str]:
    pool, why = pick_pool(selector, storages, node)
    if pool is not None and not takes_disks(pool):
        return None, f"it would pick {pool.get('storage')}, which cannot hold VM disks here"
    return pool, why


def fit(class_id: str, needs: dict, node: str, status: dict, storages: list[dict]) -> NodeFit:
    cpu_free, mem_free = node_free(status)
    result = NodeFit(class_id, node, cpu_free, needs["cores"], mem_free, needs["memory"], "", None, 0)
    if needs["cores"] > cpu_free:
        result.short.append(f"CPU ({cpu_free:.1f} idle, {needs['cores']} needed)")
    if needs["memory"] > mem_free:
        result.short.append(f"memory ({mem_free / GIB:.1f} GiB free, {needs['memory'] / GIB:.1f} GiB needed)")
    per_pool: dict[str, list] = {}
    for index, (selector, size) in enumerate(needs["disks"]):
        pool, why = _pool_for(selector, storages, node)
        if pool is None:
            result.notes.append(f"disk {index}: {why} (see the storage runbook)")
            continue
        entry = per_pool.setdefault(pool["storage"], [int(pool.get("avail") or 0), 0])
        entry[1] += size
        if index == 0:
            result.pool = pool["storage"]
    for name, (free, need) in per_pool.items():
        if name == result.pool:
            result.disk_free, result.disk_need = free, need
        if need > free:
            result.short.append(f"space on {name} ({free / GIB:.0f} GiB free, {need / GIB:.0f} GiB needed)")
    if not result.pool:
        result.disk_need = needs["disks"][0][1]
    return result


def capacity(classes: list[dict], node_status: dict, node_storage: dict) -> dict[str, list[NodeFit]]:
    """For each machine class that states its needs: how every online node (or its pinned node) fares."""
    out: dict[str, list[NodeFit]] = {}
    for cls in classes:
        needs = class_needs(cls.get("providerdata"))
        if needs is None:
            continue
        out[cls["id"]] = [fit(cls["id"], needs, node, status, node_storage.get(node) or [])
                          for node, status in sorted(node_status.items())
                          if not status.get("error") and (not needs["node"] or node == needs["node"])]
    return out


def headroom(needs: dict, nodes: dict, storage: dict, limit: int) -> tuple[int, dict[str, int], list[str]]:
    """How many VMs of one class Proxmox can still take (up to ``limit``), per node, and why not more.

    Memory is what each online node has free; a shared storage's free space counts once for the
    whole cluster; a VM cannot have more vCPUs than its node has. VMs are placed one at a time,
    round-robin over the nodes.
    """
    notes: list[str] = []
    mem_free, targets = {}, {}
    for node, n in sorted(nodes.items()):
        if needs["node"] and node != needs["node"]:
            continue
        if not n["online"]:
            notes.append(f"{node} is offline")
            continue
        if n["cpus"] < needs["cores"]:
            notes.append(f"{node} has {n['cpus']} CPUs, fewer than the {needs['cores']} vCPUs a VM asks for")
            continue
        placement = []
        for index, (selector, size) in enumerate(needs["disks"]):
            row, why = _pool_for(selector, storage.get(node) or [], node)
            if row is None:
                notes.append(f"{node}: disk {index} (`{selector}`): {why} ({STORAGE_NOTE})")
                placement = None
                break
            key = row["storage"] if row.get("shared") in (1, "1", True) else f"{node}/{row['storage']}"
            placement.append((key, size, int(row.get("avail") or 0)))
        if placement is None:
            continue
        mem_free[node] = n["mem_total"] - n["mem_used"]
        targets[node] = placement
    pool_free = {key: free for placement in targets.values() for key, _, free in placement}
    placed, per_node = 0, {node: 0 for node in targets}
    progress = True
    while placed < limit and progress:
        progress = False
        for node, placement in targets.items():
            if placed >= limit or mem_free[node] < needs["memory"]:
                continue
            need: dict[str, int] = {}
            for key, size, _ in placement:
                need[key] = need.get(key, 0) + size
            if any(pool_free[key] < size for key, size in need.items()):
                continue
            for key, size in need.items():
                pool_free[key] -= size
            mem_free[node] -= needs["memory"]
            per_node[node] += 1
            placed += 1
            progress = True
    return placed, per_node, notes
