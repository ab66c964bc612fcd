"""Storage selector (guide: "Storage Selector Issues"): one check per ``storage.*`` id.

Every selector is judged the way the provider runs it (:mod:`runbook_lib.cel`): compiled and
type-checked as cel-go does, then evaluated for every storage of every online node in the order
``GET /nodes/{node}/storage`` lists them, the first match winning. A MachineClass that pins a
``node`` is only judged on that node.

Evidence names (filled by :mod:`runbook_lib.gather.storage`):

``expected``        ``provider_id``, ``cluster``, ``candidate`` (a selector to try instead of the
                    classes' own, or None), ``machine_class`` (only this class, or None)
``machineclasses``  every MachineClass: ``id``, ``provider``, ``autoprovision``, ``keys``,
                    ``ignored`` (``[{key, meant}]``: keys the provider does not read), ``selectors``
                    (``[{path, present, text, not_string}]``), ``node`` (pinned), ``error``
``nodes``           ``[{node, status}]`` of the provider's cluster
``storages``        node -> ``[{storage, type, content, enabled, active, shared, total, used, avail}]``
                    in API order, for every online node that answered
``storage_errors``  online node -> why its storages could not be listed
"""

from __future__ import annotations

import re
import weakref
from dataclasses import dataclass, field

from .. import cel
from ..evidence import Evidence
from ..model.machineclass import GIB
from ..model.storage import NO_VM_DISKS, STORAGE_TYPES, edit_distance, holds_disks
from . import Outcome, check, ok, problem, skipped, unknown

MAX_ROWS = 6  # storages explained per node in a finding's evidence
POOL_FIELDS = {"enabled", "active", "shared", "content", "total", "used", "avail", "type", "storage", "disable"}


# ------------------------------------------------------------------------------- what is judged


@dataclass(frozen=True)
class Subject:
    """One selector the provider would run: a class's, one of its additional disks', or a candidate."""

    label: str
    text: str
    node: str | None = None  # the node the class pins VMs to


@dataclass
class Evaluated:
    subject: Subject
    selector: cel.Selector
    picks: dict[str, cel.Pick] = field(default_factory=dict)  # node -> what the provider does there
    rows: dict[str, list[dict]] = field(default_factory=dict)  # node -> the storages it saw
    not_judged: dict[str, str] = field(default_factory=dict)  # node -> why it was not evaluated


def provider_classes(ev: Evidence) -> list[dict]:
    """The auto-provisioning MachineClasses of the site's provider (one when a class is named)."""
    expected = ev.get("expected")
    classes = [c for c in ev.get("machineclasses")
               if c.get("autoprovision") and c.get("provider") == expected["provider_id"]]
    if expected.get("machine_class"):
        classes = [c for c in classes if c["id"] == expected["machine_class"]]
    return classes


def usable(entry: dict) -> bool:
    return entry["present"] and not entry["not_string"] and bool(entry["text"].strip())


def subjects(ev: Evidence) -> list[Subject]:
    """The selectors to judge: the candidate when one is given, else every class's usable ones."""
    expected = ev.get("expected")
    if expected.get("candidate") is not None:
        node = None
        if expected.get("machine_class") and ev.has("machineclasses"):
            node = next((c["node"] for c in provider_classes(ev)), None)
        return [Subject("candidate selector", expected["candidate"], node)]
    out = []
    for c in provider_classes(ev):
        for entry in c["selectors"]:
            if usable(entry):
                where = "" if entry["path"] == "storage_selector" else f" {entry['path'].rsplit('.', 1)[0]}"
                out.append(Subject(f"machineclass {c['id']}{where}", entry["text"], c.get("node")))
    return out


_CACHE: "weakref.WeakKeyDictionary[Evidence, list[Evaluated]]" = weakref.WeakKeyDictionary()


def analyze(ev: Evidence) -> list[Evaluated]:
    """Every subject run through the provider's loop on every node it may land on (cached per evidence)."""
    if ev in _CACHE:
        return _CACHE[ev]
    storages = ev.get("storages")
    out = []
    for subject in subjects(ev):
        result = Evaluated(subject, cel.compile_selector(subject.text))
        unread = [n for n in ev.optional("storage_errors", {}) if n not in storages]
        nodes = [subject.node] if subject.node else list(storages) + unread
        for node in nodes:
            if node not in storages:
                result.not_judged[node] = (ev.optional("storage_errors", {}).get(node)
                                           or f"node {node} is not an online node of the cluster")
                continue
            result.rows[node] = storages[node]
            result.picks[node] = cel.pick(result.selector, node, storages[node])
        out.append(result)
    _CACHE[ev] = out
    return out


def pick_table(selector: str, storages: dict[str, list[dict]], nodes: list[str] | None = None) -> list[dict]:
    """Node by node, what a selector makes of each storage: the table the notebook shows.

    One row per (node, storage) in API order: ``matched`` (True, False, or None when it cannot
    be evaluated), ``first`` (the storage the provider takes), ``why`` (the terms that decided).
    A node where the provider fails gets one row whose ``why`` is the provider's error.
    """
    sel = cel.compile_selector(selector)
    rows = []
    for node in nodes or list(storages):
        raw = storages.get(node, [])
        result = cel.pick(sel, node, raw)
        for i, (row, storage) in enumerate(zip(result.rows, raw), 1):
            rows.append({"node": node, "order": i, "storage": row.storage, "storageType": row.storage_type,
                         "availableSpace (GiB)": round(row.available / GIB, 1),
                         "content": storage.get("content", ""), "enabled": storage.get("enabled"),
                         "active": storage.get("active"), "matched": row.matched, "first": row.first,
                         "why": row.error or cel.explain(sel, node, storage)})
        if result.error:
            rows.append({"node": node, "order": None, "storage": "-", "matched": None, "first": False,
                         "why": f"the provider fails: {result.error}"})
    return rows


def outcome_table(ev: Evidence) -> list[dict]:
    """One row per (selector, node): the pool the provider takes there, or the error it fails with."""
    rows = []
    for e in analyze(ev):
        for node, p in e.picks.items():
            rows.append({"selector": e.subject.label, "node": node, "takes": p.winner or "-",
                         "also matches": ", ".join(p.shadowed), "error": p.error})
        for node, why in e.not_judged.items():
            rows.append({"selector": e.subject.label, "node": node, "takes": "?", "also matches": "", "error": why})
    return rows


# ---------------------------------------------------------------------------------- helpers


def _no_subjects(ev: Evidence) -> Outcome:
    expected = ev.get("expected")
    which = f"MachineClass '{expected['machine_class']}'" if expected.get("machine_class") else "no MachineClass"
    if expected.get("machine_class"):
        return skipped(f"{which} of provider '{expected['provider_id']}' has a usable storage selector")
    return skipped(f"{which} of provider '{expected['provider_id']}' has a usable storage selector "
                   "(see storage.selector_missing)")


def _unanswered(ev: Evidence, judged: list[Evaluated]) -> list[str]:
    lines = []
    for e in judged:
        for node, why in e.not_judged.items():
            lines.append(f"{e.subject.label} on {node}: not judged: {why}")
    return sorted(set(lines))


def _finish(ev: Evidence, found: list[str], fine: str, fine_lines: list[str], bad: str, fix: str = "") -> Outcome:
    """problem when anything was found; else unknown when a node could not be judged; else ok."""
    judged = analyze(ev)
    if found:
        return problem(bad, found + _unanswered(ev, judged), fix)
    missing = _unanswered(ev, judged)
    if missing and not any(e.picks for e in judged):
        return unknown("no node's storages could be read", missing)
    if missing:
        return unknown(f"{fine} on the nodes that answered; others could not be read", missing + fine_lines)
    return ok(fine, fine_lines)


def grouped(e: Evaluated) -> list[tuple[str, cel.Pick]]:
    """The picks of one selector, nodes with the same outcome merged: ("pve1, pve2", pick of pve1)."""
    groups: dict[tuple, list[str]] = {}
    first: dict[tuple, cel.Pick] = {}
    for node, p in e.picks.items():
        key = (p.winner, tuple(p.matched), p.error.replace(node, "<node>"),
               tuple((r.storage, r.matched) for r in p.rows))
        groups.setdefault(key, []).append(node)
        first.setdefault(key, p)
    return [(", ".join(nodes), first[key]) for key, nodes in groups.items()]


def _why_lines(e: Evaluated, node: str, limit: int = MAX_ROWS) -> list[str]:
    rows = e.rows.get(node, [])
    lines = [f"  {r.get('storage')}: {cel.explain(e.selector, node, r)}" for r in rows[:limit]]
    if len(rows) > limit:
        lines.append(f"  ... {len(rows) - limit} more storage(s) on {node}")
    return lines


def _row(e: Evaluated, node: str, storage: str) -> dict:
    return next((r for r in e.rows.get(node, []) if r.get("storage") == storage), {})


def _state(row: dict) -> str:
    return f"enabled={row.get('enabled')}, active={row.get('active')}, content={row.get('content') or '-'}"


def usable_pools(ev: Evidence, nodes: list[str]) -> list[str]:
    """Pools that hold VM disks and are enabled and active on every one of ``nodes`` (shared first)."""
    storages = ev.optional("storages") or {}
    per_node = [{r["storage"]: r for r in storages.get(n, [])} for n in nodes if n in storages]
    if not per_node:
        return []
    names = set.intersection(*(set(p) for p in per_node))
    good = [n for n in names if all(holds_disks(p[n]) and p[n].get("enabled") and p[n].get("active")
                                    for p in per_node)]
    return sorted(good, key=lambda n: (not per_node[0][n].get("shared"), -int(per_node[0][n].get("avail") or 0), n))


def _suggest(ev: Evidence, e: Evaluated) -> str:
    pools = usable_pools(ev, list(e.picks) or list(e.rows))
    return f'storage_selector: name == "{pools[0]}"' if pools else 'storage_selector: name == "<pool>"'


def _error_lines(text: str) -> list[str]:
    return text.split("\n")


def _pool_names(ev: Evidence) -> set[str]:
    return {r["storage"] for rows in (ev.optional("storages") or {}).values() for r in rows}


# ------------------------------------------------------------------------------------ checks


@check("storage.selector_missing",
       fix="Write the provider data with the provider's snake_case keys (`storage_selector: name == \"<pool>\"`, "
           "`disk_size: ...`) and apply the MachineClass again; the provider ignores camelCase keys silently.")
def selector_missing(ev: Evidence):
    expected = ev.get("expected")
    if expected.get("candidate") is not None:
        return skipped("a candidate selector was given; the classes' own selectors are not judged")
    classes = provider_classes(ev)
    others = [c["id"] for c in ev.get("machineclasses") if c.get("provider") != expected["provider_id"]]
    if not classes:
        lines = [f"omnictl get machineclasses: {', '.join(others) or 'none'} (none auto-provisions with "
                 f"provider '{expected['provider_id']}')"]
        return skipped(f"no MachineClass auto-provisions with provider '{expected['provider_id']}'", lines)
    found, fine = [], []
    for c in classes:
        label = f"machineclass {c['id']}"
        if c["error"]:
            found.append(f"{label}: {c['error']}; the provider cannot read its storage_selector")
            continue
        ignored = [i for i in c["ignored"] if i.get("meant")]
        for entry in c["selectors"]:
            if usable(entry):
                fine.append(f"{label}: {entry['path']}: {entry['text']}")
                continue
            if not entry["present"]:
                where = entry["path"].rsplit(".", 1)[0] if "[" in entry["path"] else "providerdata"
                found.append(f"{label}: {where} has no storage_selector (keys: {', '.join(c['keys']) or 'none'})")
            elif entry["not_string"]:
                found.append(f"{label}: {entry['path']} is not a string")
            else:
                found.append(f"{label}: {entry['path']} is empty")
            found += [f"  `{i['key']}` is ignored: the provider reads `{i['meant']}`" for i in ignored]
            if not entry["not_string"]:
                error = cel.compile_selector(entry["text"]).error
                found.append(f"  the provider fails every machine request of the class with: {error}")
    if found:
        return problem("a MachineClass has no storage selector the provider can use", found)
    return ok(f"{len(classes)} MachineClass(es) of provider '{expected['provider_id']}' carry a storage_selector", fine)


_UNDECLARED = re.compile(r"undeclared reference to '([^']+)'")


def _uses_type(sel: cel.Selector) -> bool:
    return "type" in sel.identifiers()


def _only_type_errors(sel: cel.Selector) -> bool:
    return sel.stage == "check" and _uses_type(sel) and all("type(type)" in i.message for i in sel.issues)


@check("storage.selector_invalid",
       fix="Make the selector compile as CEL over the provider's four variables (name, node, storageType, "
           "availableSpace): quote pool names, give numbers compared with availableSpace a `u` suffix, and try it "
           "with `runbook run storage -p selector '<expr>'` before applying the MachineClass.")
def selector_invalid(ev: Evidence):
    subs = subjects(ev)
    if not subs:
        return _no_subjects(ev)
    pools = _pool_names(ev)
    found, fine, type_only = [], [], []
    for s in subs:
        sel = cel.compile_selector(s.text)
        if sel.ok:
            fine.append(f"{s.label}: {s.text}: compiles (bool)")
            continue
        if _only_type_errors(sel):
            type_only.append(f"{s.label}: {s.text}")
            continue
        found.append(f"{s.label}: {s.text}")
        found += ["  " + line for line in _error_lines(sel.error)]
        found += ["  " + hint for hint in _hints(sel, pools)]
    for e in analyze(ev) if ev.has("storages") else []:
        for node, p in e.picks.items():
            failing = [r for r in p.rows if r.error]
            if e.selector.ok and failing:
                found.append(f"{e.subject.label} on {node}: evaluation fails for {failing[0].storage}: "
                             f"{failing[0].error}")
    if found:
        return problem("a storage selector does not compile as the provider's CEL", found)
    if type_only:
        return skipped("the only compile errors come from `type` (see storage.selector_type_keyword)",
                       type_only + fine)
    return ok("every storage selector compiles to a bool", fine)


def _hints(sel: cel.Selector, pools: set[str]) -> list[str]:
    hints = []
    for name in sorted({m.group(1) for i in sel.issues for m in _UNDECLARED.finditer(i.message)}):
        if name in pools:
            hints.append(f'`{name}` is a pool name, not a variable: quote it, name == "{name}"')
        elif name in POOL_FIELDS:
            hints.append(f"`{name}` is not a variable of the provider; only name, node, storageType and "
                         "availableSpace exist")
    if any("'(uint, int)'" in i.message or "'(int, uint)'" in i.message for i in sel.issues):
        hints.append("availableSpace is a uint: write the number with a u suffix (availableSpace > 100000000000u)")
    if sel.stage == "output":
        hints.append('a selector is a condition, e.g. name == "local-lvm", not a bare value')
    if sel.stage == "syntax" and sel.text.count('"') % 2:
        hints.append("a string literal is not closed")
    return hints


@check("storage.selector_type_keyword",
       fix='Compare the pool name instead: storage_selector: name == "<pool>" (the type is `storageType`, never `type`).')
def selector_type_keyword(ev: Evidence):
    subs = subjects(ev)
    if not subs:
        return _no_subjects(ev)
    found, fixes = [], []
    for s in subs:
        sel = cel.compile_selector(s.text)
        if not _uses_type(sel):
            continue
        found.append(f"{s.label}: {s.text}")
        found += ["  " + line for line in _error_lines(sel.error or "(compiles, but `type` is never the pool type)")]
        found.append("  `type` is CEL's built-in type identifier (a value of type type(type)), not a field of the "
                     "storage; the provider exposes the pool type as `storageType`")
        rewritten = _retype(sel)
        fixed = cel.compile_selector(rewritten)
        if fixed.ok and ev.has("storages"):
            storages = ev.get("storages")
            nodes = [s.node] if s.node else list(storages)
            winners = {n: cel.pick(fixed, n, storages[n]).winner for n in nodes if n in storages}
            shown = ", ".join(f"{n} -> {w or 'nothing'}" for n, w in winners.items())
            found.append(f"  with storageType it would read `{rewritten}` and pick: {shown}")
            picked = {w for w in winners.values() if w}
            if len(picked) == 1:
                fixes.append(f'{s.label}: storage_selector: name == "{picked.pop()}"')
    if not found:
        return ok("no selector uses `type`")
    fix = ("Compare the pool name instead: " + "; ".join(fixes) +
           " (the pool type is `storageType`, never `type`).") if fixes else ""
    return problem("a storage selector uses `type`, which CEL reserves for types", found, fix)


def _retype(sel: cel.Selector) -> str:
    """The selector with every `type` identifier spelled `storageType`."""
    offsets = sorted((n.offset for n in sel.nodes() if n.kind == "ident" and n.name == "type"), reverse=True)
    text = sel.text
    for off in offsets:
        text = text[:off] + "storageType" + text[off + len("type"):]
    return text


@check("storage.selector_empty",
       fix="Name a pool that exists on every node a VM may land on and can hold VM disks, "
           "e.g. storage_selector: name == \"<pool>\".")
def selector_empty(ev: Evidence):
    if not subjects(ev):
        return _no_subjects(ev)
    found, fine, fixes = [], [], []
    for e in analyze(ev):
        if not e.selector.ok:
            fine.append(f"{e.subject.label}: not evaluated (it does not compile)")
            continue
        for nodes, p in grouped(e):
            if p.winner is None and not any(r.error for r in p.rows):
                found.append(f"{e.subject.label} on {nodes}: no pool matches `{e.subject.text}`; "
                             f"the provider fails with: {p.error}")
                found += _why_lines(e, p.node)
                fixes.append(f"{e.subject.label}: {_suggest(ev, e)}")
            elif p.winner:
                fine.append(f"{e.subject.label} on {nodes}: takes {p.winner}")
    fix = ("Select a pool that exists on every node a VM may land on and can hold VM disks: "
           + "; ".join(dict.fromkeys(fixes)) + ".") if fixes else ""
    return _finish(ev, found, "every selector matches a pool on every node", fine,
                   "a storage selector matches no pool", fix)


@check("storage.selector_multiple",
       fix="Pin one pool with an exact name: storage_selector: name == \"<pool>\".")
def selector_multiple(ev: Evidence):
    if not subjects(ev):
        return _no_subjects(ev)
    found, fine, fixes = [], [], []
    for e in analyze(ev):
        for nodes, p in grouped(e):
            if len(p.matched) > 1:
                found.append(f"{e.subject.label} on {nodes}: `{e.subject.text}` matches {', '.join(p.matched)}; "
                             f"the provider takes {p.winner} (first in API order) and never considers "
                             f"{', '.join(p.shadowed)}")
                fixes.append(f'{e.subject.label}: storage_selector: name == "{p.winner}" (or name the one you '
                             f"meant: {', '.join(p.shadowed)})")
            elif p.winner:
                fine.append(f"{e.subject.label} on {nodes}: only {p.winner} matches")
    fix = ("Pin one pool with an exact name; " + "; ".join(dict.fromkeys(fixes)) + ".") if fixes else ""
    return _finish(ev, found, "no selector matches more than one pool", fine,
                   "a storage selector matches several pools; the provider silently takes the first", fix)


def _near(value: str, pools: set[str]) -> list[tuple[str, str]]:
    """Pools a literal was probably meant to name: same letters in another case, or a couple of edits away."""
    out = []
    for pool in sorted(pools):
        if pool.lower() == value.lower():
            out.append((pool, "differs only in case"))
        else:
            d = edit_distance(value.lower(), pool.lower())
            if d <= (1 if len(pool) <= 4 else 2):
                out.append((pool, f"{d} edit(s) away"))
    return out


@check("storage.name_typo",
       fix='Use the exact pool name (CEL compares strings case-sensitively): storage_selector: name == "<pool>".')
def name_typo(ev: Evidence):
    subs = subjects(ev)
    if not subs:
        return _no_subjects(ev)
    ev.get("storages")  # the pools are the evidence: without them this cannot be judged
    pools = _pool_names(ev)
    found, fixes = [], []
    for s in subs:
        sel = cel.compile_selector(s.text)
        for lit in sel.literals():
            if lit.role not in ("name", "") or lit.value in pools:
                continue
            if lit.role == "" and lit.value in STORAGE_TYPES:
                continue
            if lit.op in ("startsWith", "endsWith", "contains"):
                test = {"startsWith": str.startswith, "endsWith": str.endswith, "contains": str.__contains__}[lit.op]
                if any(test(p, lit.value) for p in pools):
                    continue
                near = [(p, "matches only when case is ignored") for p in sorted(pools)
                        if test(p.lower(), lit.value.lower())]
            elif lit.op == "matches":
                continue
            else:
                near = _near(lit.value, pools)
            if near:
                found.append(f'{s.label}: "{lit.value}" names no pool; '
                             + ", ".join(f"{p} exists ({why})" for p, why in near))
                fixes.append(f'{s.label}: storage_selector: name == "{near[0][0]}"')
    if found:
        return problem("a storage selector misspells a pool name", found + [f"pools: {', '.join(sorted(pools))}"],
                       "Use the exact pool name (CEL compares strings case-sensitively): "
                       + "; ".join(dict.fromkeys(fixes)) + ".")
    return ok("no selector spells a pool name that is close to, but not, an existing one",
              [f"pools: {', '.join(sorted(pools))}"])


@check("storage.pool_inactive",
       fix="Enable the pool for that node (Datacenter > Storage > <pool>: Enable, and its Nodes list) and make it "
           "active (`pvesm status` on the node says why not), or pin the class to nodes where it is active (`node:`).")
def pool_inactive(ev: Evidence):
    if not subjects(ev):
        return _no_subjects(ev)
    found, fine = [], []
    for e in analyze(ev):
        named = {lit.value for lit in e.selector.literals() if lit.role == "name" and lit.op in ("_==_", "@in")}
        for node, p in e.picks.items():
            if p.winner:
                row = _row(e, node, p.winner)
                if not row.get("enabled") or not row.get("active"):
                    state = "disabled" if not row.get("enabled") else "inactive"
                    found.append(f"{e.subject.label} on {node}: the provider takes {p.winner}, which is {state} "
                                 f"there ({_state(row)}); creating the VM's disk fails")
                else:
                    fine.append(f"{e.subject.label} on {node}: {p.winner} is enabled and active")
            elif e.selector.ok:
                for pool in sorted(named):
                    row = _row(e, node, pool)
                    if row and (not row.get("enabled") or not row.get("active")):
                        state = "disabled" if not row.get("enabled") else "inactive"
                        found.append(f"{e.subject.label} on {node}: the selector names {pool}, which is {state} "
                                     f"there ({_state(row)}, availableSpace=0), so nothing matches")
    return _finish(ev, found, "every pool the selectors pick is enabled and active", fine,
                   "a selected pool is disabled or inactive on a node that may host the VM")


@check("storage.wrong_type",
       fix="Select a pool whose type and content can hold VM disks (content includes `images`; "
           "lvmthin, lvm, zfspool, rbd, dir/nfs with images), e.g. storage_selector: name == \"<pool>\".")
def wrong_type(ev: Evidence):
    if not subjects(ev):
        return _no_subjects(ev)
    found, fine, fixes, cannot_hold = [], [], [], False
    for e in analyze(ev):
        wanted = {lit.value for lit in e.selector.literals() if lit.role == "storageType" and lit.op in ("_==_", "@in")}
        for nodes, p in grouped(e):
            rows = e.rows.get(p.node, [])
            if p.winner:
                row = _row(e, p.node, p.winner)
                if not holds_disks(row):
                    cannot_hold = True
                    why = (f"a {row.get('type')} pool is {NO_VM_DISKS[row.get('type')]}" if row.get("type") in NO_VM_DISKS
                           else f"its content ({row.get('content') or 'none'}) does not include images")
                    found.append(f"{e.subject.label} on {nodes}: the provider takes {p.winner} "
                                 f"(type {row.get('type')}), which cannot hold VM disks: {why}")
                    fixes.append(f"{e.subject.label}: {_suggest(ev, e)}")
                else:
                    fine.append(f"{e.subject.label} on {nodes}: {p.winner} is {row.get('type')} with images")
            elif e.selector.ok and wanted:
                types = sorted({r.get("type") for r in rows})
                for t in sorted(wanted - set(types)):
                    close = [x for x in types if x.startswith(t) or t.startswith(x)]
                    hint = f"; did you mean {close[0]}?" if close else ""
                    found.append(f'{e.subject.label} on {nodes}: the selector asks for storageType "{t}", but the '
                                 f"pools there are {', '.join(_by_type(rows))}{hint}")
                    alternative = f'storage_selector: storageType == "{close[0]}" or ' if close else ""
                    fixes.append(f"{e.subject.label}: {alternative}{_suggest(ev, e)}")
    fix = ("Select a pool whose type and content can hold VM disks: " + "; ".join(dict.fromkeys(fixes)) + ".") \
        if fixes else ""
    bad = ("a selected pool's type or content cannot hold VM disks" if cannot_hold
           else "a selector asks for a storage type no pool there has")
    return _finish(ev, found, "every pool the selectors pick can hold VM disks", fine, bad, fix)


def _by_type(rows: list[dict]) -> list[str]:
    return [f"{r.get('storage')} ({r.get('type')})" for r in rows]
